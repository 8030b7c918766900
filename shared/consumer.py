"""Idempotent event consumers: handler effects and an inbox row commit together, then the offset.

A batch is handled in one transaction; if that fails, its events are retried one at a time,
and an event that keeps failing goes to the consumer group's dead-letter topic. When the
database itself is unreachable nothing is dead-lettered: the consumer waits and tries again.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from opentelemetry import propagate
from opentelemetry.trace import SpanKind
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from shared.broker import dead_letter_topic, ensure_topics
from shared.contracts import EventData
from shared.db import Database
from shared.events import Event, InvalidEvent, decode_headers, parse_record
from shared.metrics import (
    CONSUMER_LAG,
    EVENTS_CONSUMED,
    EVENTS_DEAD_LETTERED,
    EVENTS_RETRIED,
    HANDLER_SECONDS,
)
from shared.outbox import create_producer
from shared.settings import Settings
from shared.tables import inbox
from shared.telemetry import tracer
from shared.uow import Transaction, transaction

log = logging.getLogger(__name__)

Handler = Callable[[Transaction, Event[Any]], Awaitable[None]]
Batch = dict[TopicPartition, list[ConsumerRecord]]
ANY_EVENT = "*"  # handler key of a consumer that takes every event type on its topics
LAG_INTERVAL_S = 5.0
METADATA_MAX_AGE_MS = 3000
ADMIN_LAG_RETRY_S = 60.0


def is_infrastructure_error(error: BaseException) -> bool:
    """The database is down or gone: not the event's fault, so never dead-letter for it."""
    if isinstance(error, OperationalError | InterfaceError | OSError | ConnectionError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


class EventConsumer:
    """One consumer group member: polls, handles in a transaction, commits offsets after."""

    def __init__(
        self, settings: Settings, *, service: str, name: str, db: Database,
        handlers: dict[str, Handler], topics: list[str],
    ) -> None:
        self.settings = settings
        self.service = service
        self.name = f"{service}.{name}"
        self.group = f"gvn.{service}.{name}"
        self.db = db
        self.handlers = handlers
        self.topics = topics
        self.consumer: AIOKafkaConsumer | None = None
        self._producer = create_producer(settings)
        self._tracer = tracer(service)
        self._positions: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        self.consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
            max_poll_records=500,
            session_timeout_ms=10000,
            heartbeat_interval_ms=1000,
            # Topics a rebuilt broker gets again are noticed within seconds, not the default
            # five minutes (until then a member that rejoined without them would sit idle).
            metadata_max_age_ms=METADATA_MAX_AGE_MS,
        )
        await self.consumer.start()
        await self._producer.start()

    async def stop(self) -> None:
        """Leave the group without committing anything more."""
        if self.consumer:
            await self.consumer.stop()
            self.consumer = None
        await self._producer.stop()

    async def run(self) -> None:
        """Consume until cancelled, exporting the lag; broker or database outages are
        waited out."""
        lag = asyncio.create_task(self.watch_lag(), name=f"{self.name}-lag")
        try:
            await self._consume()
        finally:
            lag.cancel()

    async def _consume(self) -> None:
        backoff = 0.2
        while True:
            try:
                if self.consumer is None:
                    await self.start()
                batch = await self.poll()
                await self.handle(batch)
                await self.commit(batch)
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("consumer %s interrupted: %s; retrying", self.name, error)
                await self._restart_after(backoff)
                backoff = min(backoff * 2, 5.0)

    async def poll(self) -> Batch:
        assert self.consumer is not None
        batch = await self.consumer.getmany(timeout_ms=1000, max_records=500)
        self._observe_lag(batch)
        return batch

    async def handle(self, batch: Batch) -> None:
        """Handle every record of a batch; invalid ones go straight to the dead-letter topic."""
        events: list[tuple[ConsumerRecord, Event[Any]]] = []
        for records in batch.values():
            for record in records:
                headers = decode_headers(record.headers)
                if ANY_EVENT not in self.handlers and headers.get("ce_type") not in self.handlers:
                    continue  # another consumer's business
                try:
                    events.append((record, parse_record(headers, record.value)))
                except InvalidEvent as error:
                    await self.dead_letter(record, error)
        if not events:
            return
        try:
            await self._handle_in_one_transaction([event for _, event in events])
        except Exception as error:
            if is_infrastructure_error(error):
                raise
            log.warning("batch of %d failed in %s (%s); handling one by one",
                        len(events), self.name, error)
            for record, event in events:
                await self._handle_with_retries(record, event)

    async def commit(self, batch: Batch) -> None:
        if batch and self.consumer:
            await self.consumer.commit({tp: recs[-1].offset + 1 for tp, recs in batch.items()})

    async def dead_letter(self, record: ConsumerRecord, error: BaseException) -> None:
        """Park an event on the group's dead-letter topic with the reason in its headers."""
        extra = {
            "dlq_error": str(error)[:2000],
            "dlq_error_type": type(error).__name__,
            "dlq_consumer": self.name,
            "dlq_original_topic": record.topic,
            "dlq_original_partition": str(record.partition),
            "dlq_original_offset": str(record.offset),
            "dlq_failed_at": datetime.now(UTC).isoformat(),
        }
        headers = list(record.headers or []) + [(k, v.encode()) for k, v in extra.items()]
        topic = dead_letter_topic(self.group)
        await ensure_topics(self.settings, [topic])  # rare; and a rebuilt broker may lack it
        await self._producer.send_and_wait(
            topic, key=record.key, value=record.value, headers=headers
        )
        EVENTS_DEAD_LETTERED.labels(self.service, self.name).inc()
        log.error("dead-lettered %s:%s@%s: %s", record.topic, record.partition, record.offset,
                  error, extra={"consumer": self.name})

    async def _handle_in_one_transaction(self, events: list[Event[Any]]) -> None:
        """One transaction: the batch's inbox rows in one statement, then new events' handlers."""
        started = time.perf_counter()
        outcomes: list[str] = []
        async with transaction(self.db) as tx:
            fresh = await self._record_in_inbox(tx, events)
            for event in events:
                if event.id not in fresh:
                    outcomes.append("duplicate")
                    continue
                fresh.discard(event.id)  # a second copy in the same batch is a duplicate too
                await self._apply(tx, event)
                outcomes.append("handled")
        HANDLER_SECONDS.labels(self.service, self.name).observe(time.perf_counter() - started)
        for outcome in outcomes:
            EVENTS_CONSUMED.labels(self.service, self.name, outcome).inc()

    async def _record_in_inbox(self, tx: Transaction, events: list[Event[Any]]) -> set[UUID]:
        """Insert the inbox rows; the ids it returns are the events not seen before."""
        rows = [{"consumer": self.name, "event_id": e.id, "event_type": e.type,
                 "trace_id": e.trace_id} for e in events]
        inserted = await tx.session.execute(
            insert(inbox).values(rows).on_conflict_do_nothing().returning(inbox.c.event_id))
        return set(inserted.scalars())

    async def _apply(self, tx: Transaction, event: Event[Any]) -> None:
        """Run the event's handler inside a consumer span that continues the producer's trace."""
        with self._tracer.start_as_current_span(
            f"process {event.data.topic}", context=propagate.extract(event.trace),
            kind=SpanKind.CONSUMER,
            attributes={"messaging.system": "kafka", "messaging.message.id": str(event.id),
                        "messaging.consumer.group.name": self.group},
        ):
            tx.cause = event
            handler = self.handlers.get(event.type) or self.handlers[ANY_EVENT]
            await handler(tx, event)

    async def _handle_with_retries(self, record: ConsumerRecord, event: Event[Any]) -> None:
        delay = self.settings.consumer_retry_backoff_ms / 1000
        for attempt in range(1, self.settings.consumer_max_attempts + 1):
            try:
                await self._handle_in_one_transaction([event])
                return
            except Exception as error:
                if is_infrastructure_error(error):
                    raise
                if attempt == self.settings.consumer_max_attempts:
                    await self.dead_letter(record, error)
                    return
                EVENTS_RETRIED.labels(self.service, self.name).inc()
                await asyncio.sleep(delay)
                delay *= 2

    async def _restart_after(self, delay: float) -> None:
        try:
            await self.stop()
        except Exception:
            log.debug("stopping %s after an error failed", self.name, exc_info=True)
        self._producer = create_producer(self.settings)
        await asyncio.sleep(delay)

    def _observe_lag(self, batch: Batch) -> None:
        """Remember how far this member got; the lag watcher turns it into a figure."""
        for tp, records in batch.items():
            self._positions[tp] = records[-1].offset + 1

    async def watch_lag(self) -> None:
        """Export lag per partition every few seconds: the group's committed offsets against
        the end offsets, from the broker's admin API; where that fails (Tansu cannot answer
        it), this member's own positions against the high-water marks it saw, and the admin
        API is tried again a minute later."""
        admin_after = 0.0
        while True:
            await asyncio.sleep(LAG_INTERVAL_S)
            lags = None
            if time.monotonic() >= admin_after:
                try:
                    lags = await self._lag_from_broker()
                except Exception as error:
                    log.debug("no admin offsets for %s: %s", self.group, error)
                    admin_after = time.monotonic() + ADMIN_LAG_RETRY_S
            for tp, lag in (lags if lags is not None else self._lag_seen()).items():
                CONSUMER_LAG.labels(self.service, self.group, tp.topic, str(tp.partition)).set(lag)

    async def _lag_from_broker(self) -> dict[TopicPartition, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap_servers)
        await admin.start()
        try:
            committed = await admin.list_consumer_group_offsets(self.group)
        finally:
            await admin.close()
        if self.consumer is None or not committed:
            return {}
        ends = await self.consumer.end_offsets(list(committed))
        return {tp: max(ends[tp] - meta.offset, 0) for tp, meta in committed.items()
                if tp in ends and meta.offset >= 0}

    def _lag_seen(self) -> dict[TopicPartition, int]:
        if self.consumer is None:
            return {}
        lags = {}
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is not None and tp in self._positions:
                lags[tp] = max(highwater - self._positions[tp], 0)
        return lags


def handlers_for(*pairs: tuple[type[EventData] | str, Handler]) -> dict[str, Handler]:
    """The routing table of a consumer: event contract (or ANY_EVENT) to handler."""
    return {(key if isinstance(key, str) else key.event_type): handler for key, handler in pairs}
