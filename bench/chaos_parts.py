"""The parts of bench/chaos.py: the poster (retries with one Idempotency-Key per lead), the
faults (SIGKILL of services and Kafka nodes, and their restarts), and the audit of effects."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.harness import EFFECTS, LEAD_SUBMITTED, Services, say
from bench.pipeline import a_lead
from shared.broker import KafkaCluster, dead_letter_topic
from shared.settings import SERVICES, Settings

RETRIED_STATUSES = {429, 500, 502, 503, 504}


class Poster:
    """Posts numbered leads at a constant rate; each is sent until a 201 (or a 4xx) answers.

    At most `max_inflight` leads are being sent (or waiting to be sent again) at a time: while
    scouting is down, the leads due meanwhile queue here instead of each retrying on its own,
    which would flood this process (and the machine) with connection attempts."""

    def __init__(self, url: str, tokens: list[str], *, run_id: str, rate: float, leads: int,
                 give_up_s: float = 300.0, max_inflight: int = 32) -> None:
        self.url, self.tokens, self.run_id = url, tokens, run_id
        self.rate, self.leads, self.give_up_s = rate, leads, give_up_s
        self.lead = a_lead()
        self.accepted: dict[int, str] = {}  # lead number -> lead id
        self.replayed = 0  # 201s that said Idempotent-Replayed: the first answer was lost
        self.retries: Counter[str] = Counter()  # why a POST was sent again
        self.waits: list[float] = []  # seconds from a lead's first POST to its 201
        self.refused: Counter[int] = Counter()
        self.gave_up: list[int] = []
        self.slots = asyncio.Semaphore(max_inflight)

    def title(self, number: int) -> str:
        return f"{self.lead['title']} chaos{self.run_id}n{number}"

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
        timeout = httpx.Timeout(10.0, connect=2.0)
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
            loop = asyncio.get_running_loop()
            started, tasks = loop.time(), []
            for number in range(self.leads):
                await asyncio.sleep(max(0.0, started + number / self.rate - loop.time()))
                tasks.append(asyncio.create_task(self.post(client, number)))
            await asyncio.gather(*tasks)

    async def post(self, client: httpx.AsyncClient, number: int) -> None:
        async with self.slots:
            await self.send_until_answered(client, number)

    async def send_until_answered(self, client: httpx.AsyncClient, number: int) -> None:
        body = json.dumps({**self.lead, "title": self.title(number)})
        headers = {"authorization": f"Bearer {self.tokens[number % len(self.tokens)]}",
                   "content-type": "application/json",
                   "idempotency-key": f"chaos-{self.run_id}-{number}"}
        began = time.monotonic()
        deadline, backoff = began + self.give_up_s, 0.1
        while time.monotonic() < deadline:
            try:
                response = await client.post(self.url, content=body, headers=headers)
                reason = str(response.status_code)
            except httpx.TransportError as error:  # refused, reset, timed out: scouting is down
                response, reason = None, type(error).__name__
            if response is not None and response.status_code == 201:
                self.accepted[number] = response.json()["id"]
                self.replayed += response.headers.get("idempotent-replayed") == "true"
                self.waits.append(time.monotonic() - began)
                return
            if response is not None and response.status_code not in RETRIED_STATUSES:
                self.refused[response.status_code] += 1
                say(f"  lead {number} refused: {response.status_code} {response.text[:300]}")
                return
            self.retries[reason] += 1
            await asyncio.sleep(backoff * random.uniform(0.5, 1.5))
            backoff = min(backoff * 2, 1.0)
        self.gave_up.append(number)

    def summary(self) -> str:
        waits = sorted(self.waits) or [0.0]
        return (f"{len(self.accepted)} accepted, {self.replayed} replayed, "
                f"{len(self.gave_up)} given up, refused {dict(self.refused)}; retries "
                f"{dict(self.retries)}; first POST to 201: p50 {waits[len(waits) // 2]:.2f}s, "
                f"p99 {waits[int(len(waits) * 0.99)]:.2f}s, max {waits[-1]:.1f}s")


class Faults:
    """SIGKILLs services and Kafka partition leaders, spread over a time span, and restarts
    each. Service kills and broker kills run side by side, each kind one at a time."""

    def __init__(self, cluster: KafkaCluster, services: Services, *, service_kills: int,
                 broker_kills: int, max_pause: float, broker_pause: float,
                 seed: int | None) -> None:
        self.cluster, self.services = cluster, services
        self.planned = {"service": service_kills, "broker": broker_kills}
        self.max_pause, self.broker_pause = max_pause, broker_pause
        self.rng = random.Random(seed)
        self.service_kills = self.broker_kills = 0
        self.kills_by_service: Counter[str] = Counter()
        self.broker_nodes_killed: list[int] = []
        self.restart_failures: list[str] = []
        self.last_fault = time.monotonic()

    async def run(self, *, spread_over: float, posting: asyncio.Task[None]) -> None:
        started = time.monotonic()
        await asyncio.gather(self.kill_services(started, spread_over, posting),
                             self.kill_brokers(started, spread_over, posting))

    async def kill_services(self, started: float, span: float, posting: asyncio.Task) -> None:
        planned = self.planned["service"]
        for n in range(1, planned + 1):
            await _until(started + n * span / (planned + 1), posting)
            service = self.rng.choice(SERVICES)
            self.services.kill(service)
            self.last_fault = time.monotonic()
            self.service_kills += 1
            self.kills_by_service[service] += 1
            pause = 0.0 if self.rng.random() < 0.3 else self.rng.uniform(0, self.max_pause)
            say(f"  [{time.monotonic() - started:6.1f}s] kill -9 {service}; "
                f"start again in {pause:.1f}s")
            await asyncio.sleep(pause)
            self.services.start(service)
            try:
                await self.services.wait_ready(service, within_s=120)
            except RuntimeError as error:  # noted; the run goes on (and checks at the end)
                self.restart_failures.append(f"{service}: {str(error)[:300]}")
                say(f"  WARNING: {service} did not come back: {str(error)[:300]}")

    async def kill_brokers(self, started: float, span: float, posting: asyncio.Task) -> None:
        planned = self.planned["broker"]
        for n in range(1, planned + 1):
            await _until(started + n * span / (planned + 1), posting)
            partition = self.rng.randrange(6)
            node = await self.cluster.leader("scouting.leads", partition)
            if node not in self.cluster.ids:  # no leader just now: take any live node
                node = self.rng.choice([i for i in self.cluster.ids if self.cluster.alive(i)])
            self.cluster.kill(node)
            self.last_fault = time.monotonic()
            self.broker_kills += 1
            self.broker_nodes_killed.append(node)
            say(f"  [{time.monotonic() - started:6.1f}s] kill -9 Kafka node {node} (leader of "
                f"scouting.leads/{partition}); start again in {self.broker_pause:.0f}s")
            await asyncio.sleep(self.broker_pause)
            self.cluster.start_node(node, wait=False)  # from the main thread (see harness)
            try:
                await asyncio.to_thread(self.cluster.wait_until_ready, timeout=120)
            except RuntimeError as error:  # noted; the run goes on (and checks at the end)
                self.restart_failures.append(f"Kafka node {node}: {error}")
                say(f"  WARNING: Kafka node {node} did not come back: {error}")
                continue
            say(f"  [{time.monotonic() - started:6.1f}s] Kafka node {node} back")


async def _until(moment: float, posting: asyncio.Task) -> None:
    """Sleep until `moment`, or only until the posting ends (the rest follow at once)."""
    delay = moment - time.monotonic()
    if delay > 0 and not posting.done():
        await asyncio.wait([posting], timeout=delay)


class Audit:
    """Reads every consumer's effects of the accepted leads, as the database owner."""

    def __init__(self, settings: Settings, accepted: dict[int, str], *, run_id: str) -> None:
        self.settings = settings
        self.accepted = accepted
        self.run_id = run_id

    @property
    def ids(self) -> list[str]:
        return sorted(set(self.accepted.values()))

    async def present(self, conn: asyncpg.Connection) -> dict[str, list[str]]:
        """Per consumer, the accepted leads it has an effect for (one entry per effect)."""
        ids = self.ids
        return {name: [r[0] for r in await conn.fetch(query, ids)]
                for name, (_, query) in EFFECTS.items()}

    async def wait_for_convergence(self, *, within_s: float) -> float | None:
        """The moment every accepted lead had its effect in every consumer, or None."""
        deadline = time.monotonic() + within_s
        conn = await asyncpg.connect(self.settings.database_url)
        try:
            while time.monotonic() < deadline:
                present = await self.present(conn)
                if all(len(set(p)) >= len(self.ids) for p in present.values()):
                    return time.monotonic()
                await asyncio.sleep(0.5)
            return None
        finally:
            await conn.close()

    async def check(self) -> dict[str, Any]:
        conn = await asyncpg.connect(self.settings.database_url)
        try:
            present = await self.present(conn)
            figures = await self.scouting_figures(conn)
            consumers = {name: await self.consumer_figures(conn, name, effects)
                         for name, effects in present.items()}
        finally:
            await conn.close()
        lost = set().union(*(set(self.ids) - set(effects) for effects in present.values()))
        duplicated = (sum(c["duplicated"] for c in consumers.values())
                      + figures["source_duplicates"])
        return {**figures, "accepted": len(self.ids), "consumers": consumers,
                "lost": len(lost), "duplicated": duplicated}

    async def consumer_figures(self, conn: asyncpg.Connection, name: str,
                               effects: list[str]) -> dict[str, Any]:
        missing = sorted(set(self.ids) - set(effects))
        inbox = await conn.fetchval(
            f"SELECT count(*) FROM {name}.inbox WHERE event_type = $1", LEAD_SUBMITTED)
        return {"handled": len(set(effects)), "lost": len(missing),
                "duplicated": len(effects) - len(set(effects)), "inbox": inbox,
                "dead_lettered": await self.dead_lettered(EFFECTS[name][0]),
                "missing_sample": missing[:3]}

    async def scouting_figures(self, conn: asyncpg.Connection) -> dict[str, Any]:
        titles = await conn.fetch("SELECT id::text, title FROM scouting.leads WHERE title LIKE $1",
                                  f"% chaos{self.run_id}n%")
        per_number = Counter(t["title"].rsplit("n", 1)[-1] for t in titles)
        extra_events = await conn.fetchval(
            "SELECT count(*) - count(DISTINCT key) FROM scouting.outbox WHERE event_type = $1",
            LEAD_SUBMITTED)
        failed, unpublished = await conn.fetchrow(
            "SELECT count(failed_at), count(*) FILTER (WHERE published_at IS NULL AND "
            "failed_at IS NULL) FROM scouting.outbox")
        unacknowledged = {t["id"] for t in titles} - set(self.ids)
        return {"scouting_leads": len(titles),
                "records_on_scouting_leads": await self.records_on("scouting.leads"),
                "source_duplicates": sum(n - 1 for n in per_number.values()),
                "unacknowledged_leads": len(unacknowledged),
                "events_per_lead_above_one": extra_events,
                "outbox_failed": failed, "outbox_unpublished": unpublished}

    async def dead_lettered(self, group: str) -> int:
        """Records on the group's dead-letter topic (0 when it was never made)."""
        return await self.records_on(dead_letter_topic(group))

    async def records_on(self, topic: str) -> int:
        """Records on a topic (0 when it was never made)."""
        servers = self.settings.kafka_bootstrap_servers
        admin = AIOKafkaAdminClient(bootstrap_servers=servers)
        await admin.start()
        try:
            if topic not in await admin.list_topics():
                return 0
            [described] = await admin.describe_topics([topic])
        finally:
            await admin.close()
        partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=None)
        await consumer.start()
        try:
            ends = await consumer.end_offsets(partitions)
            starts = await consumer.beginning_offsets(partitions)
            return sum(ends[tp] - starts[tp] for tp in partitions)
        finally:
            await consumer.stop()
