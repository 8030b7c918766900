"""The outbox relay: publishes a service's committed events in order, then marks them published.

One relay per service is active at a time (it holds a Postgres advisory lock on its schema);
other replicas stand by, so per-aggregate order holds however many replicas run.

A broker that lacks what the relay published (Tansu restarted with its memory storage, a
Kafka cluster rebuilt) is refilled from the retained rows before anything new is sent: it
holds fewer records on a topic than the outbox has marked published to it. Checked when the
relay becomes active, after every failure, and every minute while idle.

Writers wake the relay after they commit (`Relay.poke`): directly when it runs in the same
process, else with one NOTIFY per burst of commits. Not with a NOTIFY inside each writing
transaction: Postgres holds a database-wide lock from a notifying commit's start to its end,
which queues every writer of the database behind every other.
"""

import asyncio
import json
import logging
import time
import zlib
from collections import Counter
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from opentelemetry import propagate
from opentelemetry.trace import SpanKind

from shared.broker import end_offsets, ensure_topics
from shared.metrics import (
    EVENTS_PUBLISHED,
    OUTBOX_BACKLOG,
    OUTBOX_FAILED,
    OUTBOX_OLDEST_AGE,
    OUTBOX_REFILLS,
)
from shared.settings import Settings
from shared.telemetry import sampled, tracer

log = logging.getLogger(__name__)
HOUSEKEEPING_INTERVAL_S = 5.0  # backlog metrics and retention purge, when idle
# The idle check for a broker that lost its data is a safety net (activation and every
# failure check too) and costs a count of the retained rows and two clients: rarely.
BROKER_CHECK_INTERVAL_S = 60.0
TOPIC_CHECK_INTERVAL_S = 1.0
# Before refilling a rebuilt broker, let running consumers find their old positions gone
# (offset out of range: they start again from the earliest), so none skips refilled events.
REFILL_GRACE_S = 5.0
# What a row's own content causes (larger than the producer may send, headers that are not a
# JSON object of strings): sending it again cannot help.
UNSENDABLE = (MessageSizeTooLargeError, ValueError, TypeError, AttributeError)


def create_producer(settings: Settings) -> AIOKafkaProducer:
    """acks=all and no idempotent producer: the inbox makes redelivery harmless instead."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=False,
        linger_ms=2,
        request_timeout_ms=10000,
    )


class BrokerLost(Exception):
    """The broker no longer has what the relay sent it."""


class Relay:
    """Moves committed outbox rows of one service to Kafka."""

    def __init__(self, settings: Settings, *, service: str, dsn: str) -> None:
        self.settings = settings
        self.service = service
        self.dsn = dsn
        self.wake = asyncio.Event()
        self.producer: AIOKafkaProducer | None = None
        self._tracer = tracer(service)
        self._last_housekeeping = 0.0
        self._last_broker_check = time.monotonic()  # checked on becoming active
        self._topics_checked = 0.0
        self.active = False  # this replica holds the lock and publishes
        self._notifier: asyncpg.Connection | None = None
        self._notifying: asyncio.Task[None] | None = None
        self._notify_again = False

    def poke(self) -> None:
        """Outbox rows were committed in this process: publish them now, here, or tell the
        active replica (one NOTIFY at a time; commits meanwhile share the next one)."""
        if self.active:
            self.wake.set()
        elif self._notifying is None:
            self._notifying = asyncio.create_task(self._notify_active())
        else:
            self._notify_again = True

    async def _notify_active(self) -> None:
        try:
            again = True
            while again:
                self._notify_again = False
                if self._notifier is None:
                    self._notifier = await asyncpg.connect(self.dsn)
                await self._notifier.execute(f"NOTIFY {self.service}_outbox")
                again = self._notify_again
        except Exception as error:  # the active relay still polls: late, not lost
            log.warning("could not wake the relay of %s: %s", self.service, error)
            await self._close_notifier()
        finally:
            self._notifying = None

    async def _close_notifier(self) -> None:
        if self._notifier is not None:
            self._notifier.terminate()
            self._notifier = None

    async def run(self) -> None:
        """Run until cancelled, surviving database and broker outages."""
        backoff = 0.2
        while True:
            try:
                await self._run_with_lock()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("relay of %s interrupted: %s; retrying", self.service, error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            else:
                backoff = 0.2

    async def close(self) -> None:
        if self._notifying is not None:
            self._notifying.cancel()
        await self._close_notifier()
        await self._stop_producer()

    async def _stop_producer(self) -> None:
        if self.producer:
            await self.producer.stop()
            self.producer = None

    async def _run_with_lock(self) -> None:
        conn = await asyncpg.connect(self.dsn, server_settings={"search_path": self.service})
        try:
            lock_id = zlib.crc32(f"gvn-outbox-{self.service}".encode())
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_id):  # noqa: ASYNC110
                await asyncio.sleep(self.settings.outbox_poll_interval_s)  # standby replica
            await conn.add_listener(f"{self.service}_outbox", lambda *_: self.wake.set())
            await self.refill_if_broker_lost(conn)
            self.active = True
            log.info("relay of %s is active", self.service)
            while True:
                self.wake.clear()  # before the SELECT: a wake-up during it is not lost
                published = await self.publish_batch(conn)
                if published == 0:
                    await self._idle(conn)
                elif published < self.settings.outbox_batch_size:
                    await asyncio.sleep(self.settings.outbox_linger_ms / 1000)
        finally:
            self.active = False
            await conn.close()

    async def _idle(self, conn: asyncpg.Connection) -> None:
        now = time.monotonic()
        if now - self._last_housekeeping > HOUSEKEEPING_INTERVAL_S:
            self._last_housekeeping = now
            await self._observe_backlog(conn)
            await self._purge_expired(conn)
        if now - self._last_broker_check > BROKER_CHECK_INTERVAL_S:
            self._last_broker_check = now
            await self.refill_if_broker_lost(conn)
        try:
            await asyncio.wait_for(self.wake.wait(), self.settings.outbox_poll_interval_s)
        except TimeoutError:
            pass

    async def publish_batch(self, conn: asyncpg.Connection) -> int:
        """Publish the oldest unpublished rows, then mark them. If the broker fails, none are
        marked and all are sent again. A row no broker will ever take (too large, malformed)
        is marked failed, with the reason, so that it cannot hold up the rows behind it."""
        rows = await conn.fetch(
            "SELECT id, topic, key, headers, payload FROM outbox "
            "WHERE published_at IS NULL AND failed_at IS NULL ORDER BY id LIMIT $1",
            self.settings.outbox_batch_size,
        )
        if not rows:
            return 0
        producer = await self._producer()
        refused: dict[int, str] = {}
        try:
            await self._check_topics(producer, {row["topic"] for row in rows})
            sends = []
            for row in rows:
                try:
                    sends.append((row["id"], await self._send(producer, row)))
                except UNSENDABLE as error:
                    refused[row["id"]] = f"{type(error).__name__}: {error}"
            acks = await asyncio.gather(*(ack for _, ack in sends), return_exceptions=True)
            for (row_id, _), ack in zip(sends, acks, strict=True):
                if isinstance(ack, KafkaError) and not ack.retriable:
                    refused[row_id] = f"{type(ack).__name__}: {ack}"
                elif isinstance(ack, BaseException):
                    raise ack
        except Exception:
            self._topics_checked = 0.0
            await self._stop_producer()  # a fresh producer, fresh metadata, on the next try
            raise
        await conn.execute(
            "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
            [row["id"] for row in rows if row["id"] not in refused],
        )
        if refused:
            await conn.executemany(
                "UPDATE outbox SET failed_at = now(), error = $2 WHERE id = $1", refused.items())
            for row_id, reason in refused.items():
                log.error("outbox row %s of %s cannot be sent and is marked failed: %s",
                          row_id, self.service, reason)
        published = Counter(row["topic"] for row in rows if row["id"] not in refused)
        for topic, count in published.items():
            EVENTS_PUBLISHED.labels(self.service, topic).inc(count)
        return len(rows)

    async def _send(self, producer: AIOKafkaProducer, row: asyncpg.Record) -> Any:
        headers: dict[str, str] = json.loads(row["headers"])
        if sampled(headers):  # a recorded trace: show the send in it
            parent = propagate.extract(headers)
            with self._tracer.start_as_current_span(
                f"publish {row['topic']}", context=parent, kind=SpanKind.PRODUCER,
                attributes={"messaging.system": "kafka", "messaging.destination.name":
                            row["topic"], "messaging.message.id": headers.get("ce_id", "")},
            ):
                propagate.inject(headers)  # consumers continue from the producer span
        return await producer.send(
            row["topic"], key=row["key"].encode(), value=bytes(row["payload"]),
            headers=[(k, v.encode()) for k, v in headers.items()],
        )

    async def _check_topics(self, producer: AIOKafkaProducer, topics: set[str]) -> None:
        """Stop before sending to topics a rebuilt broker lost: the relay starts again and
        refills the broker first.

        Tansu's memory storage acknowledges records sent to a topic it no longer has and
        drops them, so the relay looks at fresh metadata (at most once a second, and after
        every failure) instead of trusting its cache.
        """
        now = time.monotonic()
        if now - self._topics_checked < TOPIC_CHECK_INTERVAL_S:
            return
        cluster = await producer.client.fetch_all_metadata()
        if not topics <= cluster.topics():
            raise BrokerLost(f"the broker lacks topics {sorted(topics - cluster.topics())}")
        self._topics_checked = now

    async def refill_if_broker_lost(self, conn: asyncpg.Connection) -> int:
        """Queue the retained events again for every topic on which the broker holds fewer
        records than this service published there; returns how many rows were queued."""
        published = {row["topic"]: row["n"] for row in await conn.fetch(
            "SELECT topic, count(*) AS n FROM outbox WHERE published_at IS NOT NULL "
            "GROUP BY topic")}
        if not published:
            return 0
        held = await end_offsets(self.settings, set(published))
        lacking = sorted(topic for topic, count in published.items()
                         if held.get(topic, 0) < count)
        if not lacking:
            return 0
        log.warning("the broker lacks events %s published to %s: refilling it from the outbox",
                    self.service, ", ".join(lacking))
        await ensure_topics(self.settings)
        await asyncio.sleep(REFILL_GRACE_S)
        status = await conn.execute(
            "UPDATE outbox SET published_at = NULL "
            "WHERE published_at IS NOT NULL AND topic = ANY($1::text[])", lacking)
        OUTBOX_REFILLS.labels(self.service).inc()
        self.wake.set()
        return int(status.split()[-1])

    async def _producer(self) -> AIOKafkaProducer:
        if self.producer is None:
            producer = create_producer(self.settings)
            try:
                await producer.start()
            except Exception:
                await producer.stop()
                raise
            self.producer = producer
        return self.producer

    async def _observe_backlog(self, conn: asyncpg.Connection) -> None:
        count, oldest, failed = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE failed_at IS NULL), "
            "min(created_at) FILTER (WHERE failed_at IS NULL), count(failed_at) "
            "FROM outbox WHERE published_at IS NULL"
        )
        OUTBOX_BACKLOG.labels(self.service).set(count)
        OUTBOX_FAILED.labels(self.service).set(failed)
        age = (datetime.now(oldest.tzinfo) - oldest).total_seconds() if oldest else 0.0
        OUTBOX_OLDEST_AGE.labels(self.service).set(age)

    async def _purge_expired(self, conn: asyncpg.Connection) -> None:
        await conn.execute(
            "DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)",
            self.settings.outbox_retention_days * 86400,
        )


async def replay(dsn: str, *, service: str, since: datetime) -> int:
    """Mark rows published, or marked failed, since `since` as unpublished, so the relay
    sends them again (a failed row fails again unless its cause was fixed, e.g. the broker's
    size limit raised)."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": service})
    try:
        status = await conn.execute(
            "UPDATE outbox SET published_at = NULL, failed_at = NULL, error = NULL "
            "WHERE published_at >= $1 OR failed_at >= $1", since
        )
        await conn.execute(f"NOTIFY {service}_outbox")
        return int(status.split()[-1])
    finally:
        await conn.close()
