"""Delivery under faults, with the services as real processes (`gvn serve`) as in production.

On Apache Kafka the services run on a three-node cluster (replication factor 3, min ISR 2);
on Tansu (one process, memory only) on a broker of their own. Every accepted lead must be
handled exactly once by matching, crm and kpi, whatever is killed, wiped or replayed.
"""

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from services.scouting.contacts import new_key
from shared import processes
from shared.broker import Broker, KafkaCluster, TansuBroker, end_offsets, free_port, partitions
from shared.keys import create_key
from shared.migrations import migrate_all
from shared.settings import SERVICES, Settings
from tests.conftest import TEST_BROKER, _database_url, a_lead, drop_database, eventually
from tests.test_delivery import dead_letters

pytestmark = [pytest.mark.broker, pytest.mark.timeout(600)]
LEAD_SUBMITTED = "eu.lasergo.scouting.lead.submitted.v1"


@dataclass
class Deployment:
    """The four services as child processes on a broker and a database of their own."""

    broker: Broker
    settings: Settings
    logs: Path
    ports: dict[str, int] = field(default_factory=dict)
    running: dict[str, object] = field(default_factory=dict)
    scout: str = ""
    accepted: list[str] = field(default_factory=list)

    def start(self, service: str) -> None:
        env = {**os.environ, "DATABASE_URL": self.settings.database_url,
               "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap,
               "KAFKA_TOPIC_PARTITIONS": "3",
               "KAFKA_REPLICATION_FACTOR": str(self.settings.kafka_replication_factor),
               "KAFKA_MIN_INSYNC_REPLICAS": str(self.settings.kafka_min_insync_replicas),
               "PORT": str(self.ports[service]), "LOG_LEVEL": "WARNING",
               "WRITE_RATE_PER_MINUTE": "0", "OUTBOX_POLL_INTERVAL_S": "0.2",
               "CONSUMER_RETRY_BACKOFF_MS": "20", "AUTH_CACHE_SECONDS": "0",
               "CONTACT_ENCRYPTION_KEY": new_key(), "INTERNAL_API_TOKEN": "faults"}
        self.running[service] = processes.spawn(
            [sys.executable, "-m", "shared.cli", "serve", service],
            env=env, log_file=self.logs / f"{service}.log")

    def kill(self, service: str) -> None:
        """kill -9: no shutdown, no offset commit, no goodbye to the group."""
        processes.kill(self.running.pop(service))

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    async def ready(self, *services: str) -> None:
        async with httpx.AsyncClient(timeout=2) as client:
            async def all_ready() -> bool:
                for service in services or SERVICES:
                    try:
                        if (await client.get(f"{self.url(service)}/readyz")).status_code != 200:
                            return False
                    except httpx.HTTPError:
                        return False
                return True
            await eventually(all_ready, timeout=90)

    async def post_leads(self, count: int, *, rate: float = 20.0) -> None:
        """POST leads at a steady rate; the ones answered 201 are `accepted`. A scouting
        that is down refuses the connection: that lead was never accepted."""
        async with httpx.AsyncClient(base_url=self.url("scouting"), timeout=10) as client:
            for _ in range(count):
                try:
                    answer = await client.post(
                        "/v1/leads", json=a_lead(title=f"Fault run lead {uuid.uuid4().hex[:8]}"),
                        headers={"Authorization": f"Bearer {self.scout}",
                                 "Idempotency-Key": str(uuid.uuid4())})
                    if answer.status_code == 201:
                        self.accepted.append(answer.json()["id"])
                except httpx.TransportError:
                    pass
                await asyncio.sleep(1 / rate)

    async def sql(self, query: str, *args: object) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.settings.database_url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    async def effects(self) -> dict[str, dict[str, int]]:
        """Per service, how many times each lead's submission took effect there."""
        counts = {
            "kpi": "SELECT subject AS lead, count(*) AS n FROM kpi.facts "
                   f"WHERE event_type = '{LEAD_SUBMITTED}' GROUP BY subject",
            "matching": "SELECT lead_id::text AS lead, count(*) AS n FROM matching.demands "
                        "GROUP BY lead_id",
            "crm": "SELECT lead_id::text AS lead, count(*) AS n FROM crm.opportunities "
                   "GROUP BY lead_id",
        }
        return {service: {row["lead"]: row["n"] for row in await self.sql(query)}
                for service, query in counts.items()}

    async def every_lead_handled_once(self) -> None:
        """Wait until each accepted lead took effect in every consumer; then none twice."""
        async def missing() -> dict[str, int]:  # per service, the leads not handled yet
            effects = await self.effects()
            return {s: sum(lead not in seen for lead in self.accepted)
                    for s, seen in effects.items()}

        async def converged() -> bool:
            return not any((await missing()).values())
        try:
            await eventually(converged, timeout=240)  # generous: CI machines are shared
        except AssertionError:
            raise AssertionError(f"leads not handled, per service: {await missing()} of "
                                 f"{len(self.accepted)}; logs in {self.logs}") from None
        await asyncio.sleep(1.0)  # late redeliveries would show now
        effects = await self.effects()
        twice = {s: [lead for lead, n in seen.items() if n > 1] for s, seen in effects.items()}
        assert twice == {"kpi": [], "matching": [], "crm": []}
        assert len(set(self.accepted)) == len(self.accepted)


@pytest.fixture(scope="module")
async def deployment(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployment]:
    broker: Broker = KafkaCluster(3) if TEST_BROKER == "kafka" else TansuBroker()
    broker.start()
    name = f"gvn_test_faults_{uuid.uuid4().hex[:8]}"
    settings = Settings(database_url=_database_url(name), kafka_bootstrap_servers=broker.bootstrap)
    if isinstance(broker, KafkaCluster):
        settings = broker.settings_for(settings)
    deployment = Deployment(broker=broker, settings=settings,
                            logs=tmp_path_factory.mktemp("fault-logs"),
                            ports={service: free_port() for service in SERVICES})
    try:
        await migrate_all(settings)
        _, deployment.scout = await create_key(settings, role="scout", cluster="LITEK",
                                               name="fault scout")
        for service in SERVICES:
            deployment.start(service)
        await deployment.ready()
        yield deployment
    finally:
        for service in list(deployment.running):
            processes.stop(deployment.running.pop(service))
        broker.stop()
        await drop_database(name)


async def test_every_lead_is_handled_once_when_the_partition_leader_is_killed_kafka_only(
    deployment: Deployment,
) -> None:
    if not isinstance(deployment.broker, KafkaCluster):
        pytest.skip("Tansu is one process: there is no partition leader to fail over")
    from tests.test_platform import topic_settings

    configured = await topic_settings(deployment.broker.bootstrap, "scouting.leads")
    assert configured["min.insync.replicas"] == "2"
    flow = asyncio.create_task(deployment.post_leads(80))
    await asyncio.sleep(1.5)
    leader = await deployment.broker.leader("scouting.leads", 0)
    deployment.broker.kill(leader)
    await flow  # two of three replicas are left: min ISR 2 still takes every write
    deployment.broker.start_node(leader)
    assert len(deployment.accepted) == 80  # the flow resumed by itself, nothing refused
    await deployment.every_lead_handled_once()


@pytest.mark.parametrize("victims", [("kpi", "matching"), ("scouting", "crm")])
async def test_a_service_killed_mid_flow_loses_nothing_and_applies_nothing_twice(
    deployment: Deployment, victims: tuple[str, ...],
) -> None:
    flow = asyncio.create_task(deployment.post_leads(60))
    await asyncio.sleep(1.0)
    for service in victims:
        deployment.kill(service)
    await asyncio.sleep(1.0)
    for service in victims:
        deployment.start(service)
    await flow
    await deployment.ready(*victims)
    await deployment.every_lead_handled_once()


async def test_a_wiped_broker_is_refilled_from_the_outboxes(deployment: Deployment) -> None:
    await deployment.post_leads(20)
    await deployment.every_lead_handled_once()
    before = len(deployment.accepted)

    deployment.broker.wipe()  # every node's data gone; a new, empty cluster on the same ports
    await deployment.post_leads(20)
    await deployment.every_lead_handled_once()
    assert len(deployment.accepted) >= before + 20

    async def refilled() -> bool:
        held = await end_offsets(deployment.settings, {"scouting.leads"})
        published = await deployment.sql("SELECT count(*) AS n FROM scouting.outbox "
                                         "WHERE topic = 'scouting.leads'")
        return held.get("scouting.leads", 0) >= published[0]["n"]
    await eventually(refilled, timeout=60)


async def test_events_published_but_not_consumed_survive_a_restart_that_empties_the_broker(
    deployment: Deployment,
) -> None:
    """As `gvn up` stopped and started again on Tansu, whose memory storage starts empty:
    kpi had not read the leads yet; after the restart it handles each exactly once."""
    deployment.kill("kpi")
    deployment.accepted.clear()
    await deployment.post_leads(10)

    async def all_published() -> bool:
        rows = await deployment.sql(
            "SELECT count(*) AS n FROM scouting.outbox WHERE published_at IS NULL")
        return rows[0]["n"] == 0
    await eventually(all_published)
    for service in list(deployment.running):
        processes.stop(deployment.running.pop(service))
    deployment.broker.wipe()
    for service in SERVICES:
        deployment.start(service)
    await deployment.ready()
    await deployment.every_lead_handled_once()


async def test_a_consumer_group_reset_to_the_earliest_offsets_applies_nothing_twice(
    deployment: Deployment,
) -> None:
    await deployment.post_leads(10)
    await deployment.every_lead_handled_once()
    handled = len(await deployment.sql("SELECT 1 FROM kpi.inbox"))
    deployment.kill("kpi")
    await reset_to_earliest(deployment.settings, group="gvn.kpi.facts")
    deployment.start("kpi")
    await deployment.ready("kpi")

    async def reread() -> bool:  # every event it had committed is read again...
        return await kpi_duplicates(deployment) >= handled
    await eventually(reread, timeout=90)
    await deployment.every_lead_handled_once()  # ...and none applied a second time


async def reset_to_earliest(settings: Settings, *, group: str) -> None:
    """What `kafka-consumer-groups --reset-offsets --to-earliest` does, done as a member of
    the group so that it works on either broker: join, take every partition (once the killed
    member's session has timed out), commit the beginning offsets, leave."""
    from shared.contracts import all_topics

    every = await partitions(settings, set(all_topics()))
    consumer = AIOKafkaConsumer(*all_topics(), bootstrap_servers=settings.kafka_bootstrap_servers,
                                group_id=group, enable_auto_commit=False,
                                session_timeout_ms=10000, heartbeat_interval_ms=1000)
    await consumer.start()
    try:
        async def owns_every_partition() -> bool:
            await consumer.getmany(timeout_ms=500)
            return consumer.assignment() == set(every)
        await eventually(owns_every_partition, timeout=60)
        await consumer.commit(await consumer.beginning_offsets(every))
    finally:
        await consumer.stop()


async def kpi_duplicates(deployment: Deployment) -> float:
    """Redelivered events the kpi process saw and dropped, from its /metrics."""
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"{deployment.url('kpi')}/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("gvn_events_consumed_total") and 'outcome="duplicate"' in line)


async def test_poison_events_are_dead_lettered_while_good_events_keep_flowing(
    deployment: Deployment,
) -> None:
    from tests.conftest import publish

    class Target:  # what tests.conftest.publish needs of a platform
        settings = deployment.settings

    envelope = {"ce_specversion": "1.0", "ce_source": "/gvn/scouting", "ce_type": LEAD_SUBMITTED,
                "ce_time": datetime.now(UTC).isoformat(), "content-type": "application/json"}
    poison = {  # event id -> (headers, body)
        str(uuid.uuid4()): ({}, b"\xff not json and no envelope"),
        str(uuid.uuid4()): (envelope, b"{truncated"),
        str(uuid.uuid4()): (envelope, json.dumps({"lead_id": "not-a-uuid"}).encode()),
    }
    flow = asyncio.create_task(deployment.post_leads(30))
    for event_id, (headers, body) in poison.items():
        await publish(Target, "scouting.leads", key=b"poison", value=body,
                      headers={**headers, "ce_id": event_id} if headers else headers)
        await asyncio.sleep(0.3)
    await flow
    await deployment.every_lead_handled_once()
    typed = {event_id for event_id, (headers, _) in poison.items() if headers}
    for consumer in ("gvn.kpi.facts", "gvn.matching.leads", "gvn.crm.leads"):
        letters = await dead_letters(Target, f"{consumer}.dlq")
        assert typed <= {dict(r.headers).get("ce_id", b"").decode() for r in letters}, consumer
    # Without an envelope it is no one's event type: only kpi, which takes every event, parks it.
    kpi_letters = await dead_letters(Target, "gvn.kpi.facts.dlq")
    assert b"\xff not json and no envelope" in {r.value for r in kpi_letters}
    assert all(process.poll() is None for process in deployment.running.values())
