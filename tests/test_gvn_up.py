"""`gvn up` and `gvn down` as an operator runs them: real processes on the platform's ports.

Each `gvn up` gets a temporary data folder and a fresh database on the run's Postgres; the
tests that start one need the machine's ports 8001-8004 and 9092/9093 free.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
from aiokafka import AIOKafkaConsumer

from shared import processes
from tests.conftest import _database_url, a_lead, drop_database
from tests.test_cli import GVN, gvn

SERVICE_PORTS = (8001, 8002, 8003, 8004)
PORTS = (*SERVICE_PORTS, 9092, 9093)
needs_ports = pytest.mark.skipif(bool(set(PORTS) & set(processes.listeners())),
                                 reason="the platform's default ports are taken on this machine")


@dataclass
class Up:
    """One `gvn up` in the background, its output in a log file."""

    process: subprocess.Popen[bytes]
    log: Path
    started: list[psutil.Process] = field(default_factory=list)  # its children, once up

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def ready(self, *, timeout: float = 240.0) -> str:  # noqa: ASYNC109 - a deadline
        """Wait until it says the platform is up; its output."""
        deadline = time.monotonic() + timeout
        while "stops everything" not in (output := self.output()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"gvn up did not come up:\n{output}")
            await asyncio.sleep(0.2)
        self.started = descendants(self.process.pid)
        return output


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@asynccontextmanager
async def gvn_up(*args: str, env: dict[str, str], log: Path) -> AsyncIterator[Up]:
    """`gvn up` started as a child that dies with this process; whatever happens in the
    block, it and everything it started are stopped at the end."""
    up = Up(processes.spawn([*GVN, "up", *args], log_file=log, env=env), log)
    try:
        yield up
    finally:
        started = [*up.started, *descendants(up.process.pid)]
        await asyncio.to_thread(processes.stop, up.process, timeout=60)
        for process in await asyncio.to_thread(processes.wait_gone, started, timeout=20):
            process.kill()


@asynccontextmanager
async def environment(folder: Path) -> AsyncIterator[dict[str, str]]:
    """gvn up's environment: a data folder, a database of its own (dropped at the end) on the
    run's Postgres, and no KAFKA_BOOTSTRAP_SERVERS, so that it starts its broker."""
    name = f"gvn_up_{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    try:
        yield env | {"DATABASE_URL": _database_url(name), "DATA_DIR": str(folder / "data")}
    finally:
        await drop_database(name)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    async with environment(tmp_path) as env:
        yield env


def held_ports() -> list[int]:
    return sorted(set(PORTS) & set(processes.listeners()))


def path_without_java() -> str:
    return os.pathsep.join(folder for folder in os.environ["PATH"].split(os.pathsep)
                           if not (Path(folder) / "java").exists())


async def all_ready() -> bool:
    async with httpx.AsyncClient(timeout=5) as client:
        answers = [await client.get(f"http://127.0.0.1:{port}/readyz") for port in SERVICE_PORTS]
    return all(answer.status_code == 200 for answer in answers)


def demo_keys(output: str) -> dict[str, str]:
    return dict(line.split()[:2] for line in output.splitlines()
                if line.startswith(("  scout-", "  manager-")))


@needs_ports
async def test_gvn_up_without_java_runs_the_whole_platform_on_tansu_and_ctrl_c_stops_it(
    env: dict[str, str], tmp_path: Path,
) -> None:
    async with gvn_up(env=env | {"PATH": path_without_java()}, log=tmp_path / "up.log") as up:
        output = await up.ready()
        assert "(embedded Tansu, memory only; chosen: Apache Kafka" in output
        assert "needs Java 17+" in output
        assert await all_ready()
        async with httpx.AsyncClient() as client:
            mine = await client.get("http://127.0.0.1:8001/v1/leads", headers={
                "Authorization": f"Bearer {demo_keys(output)['scout-tokyo']}"})
        assert len(mine.json()["items"]) == 2  # the demo leads of the Tokyo scout
        up.process.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(up.process.wait, 60) == 0
        assert processes.wait_gone(up.started, timeout=0) == []
        assert held_ports() == []
        assert up.output().rstrip().endswith("stopped.")


@dataclass
class Killed:
    env: dict[str, str]
    started: list[psutil.Process]


@pytest.fixture(scope="module")
async def killed_platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Killed]:
    """A gvn up on Tansu that came up and was then killed with SIGKILL, as a crash would."""
    folder = tmp_path_factory.mktemp("killed")
    async with environment(folder) as env:
        async with gvn_up("--broker", "tansu", "--no-demo", env=env,
                          log=folder / "up-killed.log") as up:
            await up.ready()
            up.process.kill()
            await asyncio.to_thread(up.process.wait)
            yield Killed(env=env, started=up.started)


@needs_ports
async def test_a_gvn_up_killed_with_sigkill_leaves_nothing_it_started_running(
    killed_platform: Killed,
) -> None:
    assert len(killed_platform.started) == 5  # Tansu and the four services
    left = await asyncio.to_thread(processes.wait_gone, killed_platform.started, timeout=10)
    assert left == [], [process.cmdline() for process in left]
    assert held_ports() == []


@needs_ports
async def test_gvn_up_comes_up_again_after_a_kill_refuses_a_second_start_and_stops_with_gvn_down(
    killed_platform: Killed, tmp_path: Path,
) -> None:
    env = killed_platform.env
    await asyncio.to_thread(processes.wait_gone, killed_platform.started, timeout=10)
    async with gvn_up("--broker", "tansu", "--no-demo", env=env, log=tmp_path / "up.log") as up:
        await up.ready()
        assert await all_ready()
        second = await gvn("up", "--broker", "tansu", env=env)
        assert second.returncode == 1
        assert f"already runs from {env['DATA_DIR']} (gvn up, pid {up.process.pid})" \
            in second.stderr

        down = await gvn("down", env=env)
        assert down.returncode == 0, down.stderr
        assert f"gvn up (pid {up.process.pid}) and all it started stopped" in down.stdout
        assert up.process.poll() == 0
        assert processes.wait_gone(up.started, timeout=0) == []
        assert held_ports() == []
        assert not (Path(env["DATA_DIR"]) / "gvn-up.pid").exists()
    again = await gvn("down", env=env)
    assert again.returncode == 1 and "no platform running" in again.stderr


HOLD_8003 = "import socket, time; s = socket.create_server(('127.0.0.1', 8003)); time.sleep(120)"


@needs_ports
async def test_gvn_up_refuses_a_port_held_by_another_process_and_names_the_holder(
    env: dict[str, str],
) -> None:
    holder = processes.spawn([sys.executable, "-c", HOLD_8003])
    try:
        while 8003 not in processes.listeners():
            assert holder.poll() is None
            await asyncio.sleep(0.05)
        refused = await gvn("up", "--broker", "tansu", env=env)
        assert refused.returncode == 1
        assert f"port 8003 is taken by pid {holder.pid} ({sys.executable} -c" in refused.stderr
        assert f"stop it with `kill {holder.pid}`" in refused.stderr
        assert "broker" not in refused.stdout  # refused before it started anything
        assert held_ports() == [8003]
    finally:
        processes.stop(holder)


async def test_gvn_up_with_broker_kafka_where_there_is_no_java_says_why_and_exits_2(
    env: dict[str, str],
) -> None:
    refused = await gvn("up", "--broker", "kafka", env=env | {"PATH": path_without_java()})
    assert refused.returncode == 2
    assert "--broker kafka cannot run here" in refused.stderr
    assert "needs Java 17+" in refused.stderr


async def test_gvn_down_without_a_running_platform_says_so(tmp_path: Path) -> None:
    done = await gvn("down", env={"DATA_DIR": str(tmp_path)})
    assert done.returncode == 1 and "no platform running" in done.stderr


async def records_on(topic: str, *, timeout: float = 30.0) -> dict[bytes, tuple[int, int, int]]:  # noqa: ASYNC109
    """Every record of a topic on the broker at 9092, by key: partition, offset, timestamp."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers="127.0.0.1:9092", group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        found, deadline = {}, time.monotonic() + timeout
        while True:
            for tp, batch in (await consumer.getmany(timeout_ms=500)).items():
                found.update({r.key: (tp.partition, r.offset, r.timestamp) for r in batch})
            if partitions := list(consumer.assignment()):
                ends = await consumer.end_offsets(partitions)
                if all([await consumer.position(tp) >= ends[tp] for tp in partitions]):
                    return found
            assert time.monotonic() < deadline, f"{topic} not read to its end within {timeout}s"
    finally:
        await consumer.stop()


@needs_ports
@pytest.mark.timeout(600)
async def test_apache_kafka_under_gvn_up_keeps_a_leads_event_across_a_restart(
    env: dict[str, str], tmp_path: Path,
) -> None:
    async with gvn_up("--broker", "kafka", env=env, log=tmp_path / "up-1.log") as up:
        output = await up.ready()
        assert "(Apache Kafka " in output and ", KRaft, data in " in output
        async with httpx.AsyncClient() as client:
            posted = await client.post("http://127.0.0.1:8001/v1/leads", json=a_lead(), headers={
                "Authorization": f"Bearer {demo_keys(output)['scout-tokyo']}"})
        assert posted.status_code == 201, posted.text
        key = posted.json()["id"].encode()
        deadline = time.monotonic() + 30
        while key not in (before := await records_on("scouting.leads")):
            assert time.monotonic() < deadline, "the lead's event never reached Kafka"
            await asyncio.sleep(0.5)
        assert (await gvn("down", env=env)).returncode == 0

    async with gvn_up("--broker", "kafka", env=env, log=tmp_path / "up-2.log") as up:
        await up.ready()
        after = await records_on("scouting.leads")
        # The same record where it was, written when it was: kept, not sent again.
        assert after.get(key) == before[key]
        assert (await gvn("down", env=env)).returncode == 0
        assert held_ports() == []


def postmaster(pgdata: Path) -> psutil.Process | None:
    return processes.named_in(pgdata / "postmaster.pid",
                              running=lambda command: Path(command[0]).name == "postgres")


@needs_ports
async def test_an_embedded_postgres_that_outlived_a_killed_gvn_up_is_reused_and_then_stopped(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env |= {"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/gvn",  # nothing answers there
            "DATA_DIR": str(tmp_path / "data")}
    pgdata = tmp_path / "data" / "postgres"
    try:
        async with gvn_up("--broker", "tansu", "--no-demo", env=env,
                          log=tmp_path / "up-1.log") as up:
            assert "starting an embedded one" in await up.ready()
            up.process.kill()
            assert await asyncio.to_thread(processes.wait_gone, up.started, timeout=10) == []
        server = postmaster(pgdata)
        assert server is not None  # pg_ctl made it a daemon: no parent-death signal reaches it

        async with gvn_up("--broker", "tansu", "--no-demo", env=env,
                          log=tmp_path / "up-2.log") as up:
            assert f"reusing the embedded one in {pgdata} (pid {server.pid})" in await up.ready()
            assert await all_ready()
            assert (await gvn("down", env=env)).returncode == 0
        assert processes.wait_gone([server], timeout=0) == []
    finally:
        if left := postmaster(pgdata):
            left.send_signal(signal.SIGINT)  # Postgres's fast shutdown
            await asyncio.to_thread(processes.wait_gone, [left], timeout=20)
