"""Delivery guarantees with the real broker: redelivery is a no-op, outages lose nothing,
poison messages are parked on the dead-letter topic and the consumer moves on."""

import asyncio
import json
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.kpi import handlers as kpi_handlers
from shared.broker import Broker
from shared.consumer import ANY_EVENT, EventConsumer
from shared.contracts import all_topics
from shared.outbox import replay
from tests.conftest import Platform, a_lead, eventually, publish
from tests.test_lead_flow import leads_submitted

pytestmark = pytest.mark.broker


async def submit(platform: Platform, **overrides) -> dict:
    answer = await platform.scouting.post("/v1/leads", json=a_lead(**overrides),
                                          headers=platform.auth("scout"))
    assert answer.status_code == 201, answer.text
    return answer.json()


async def facts_about(platform: Platform, lead_id: str) -> int:
    return len(await platform.sql("SELECT 1 FROM kpi.facts WHERE subject = $1", lead_id))


def kpi_consumer(platform: Platform) -> EventConsumer:
    """A consumer identical to the kpi service's own (same group, same inbox name)."""
    return EventConsumer(platform.settings, service="kpi", name="facts",
                         db=platform.apps["kpi"].state.db, topics=all_topics(),
                         handlers={ANY_EVENT: kpi_handlers.record_fact})


async def test_an_event_redelivered_after_a_crash_changes_nothing(platform: Platform) -> None:
    kpi = platform.apps["kpi"].state
    running = kpi.consumers[0]
    task = next(t for t in kpi.tasks if t.get_name() == running.name)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await running.stop()
    since = datetime.now(UTC)
    lead = await submit(platform)

    # Handle the lead and commit to the database, then "crash" before the offset commit.
    crashing = kpi_consumer(platform)
    await crashing.start()
    async def handled() -> bool:
        await crashing.handle(await crashing.poll())
        return await facts_about(platform, lead["id"]) == 1
    await eventually(handled)
    await crashing.stop()

    restarted = kpi_consumer(platform)
    duplicates = await inbox_duplicates(restarted)
    kpi.consumers[0] = restarted
    kpi.tasks.append(asyncio.create_task(restarted.run(), name=restarted.name))

    async def redelivered() -> bool:
        return await inbox_duplicates(restarted) > duplicates
    await eventually(redelivered)
    assert await facts_about(platform, lead["id"]) == 1
    assert await leads_submitted(platform, since=since) == 1


async def inbox_duplicates(consumer: EventConsumer) -> float:
    from shared.metrics import EVENTS_CONSUMED

    return EVENTS_CONSUMED.labels("kpi", consumer.name, "duplicate")._value.get()


async def test_a_lead_posted_while_the_broker_is_down_arrives_when_it_is_back(
    platform: Platform, broker: Broker,
) -> None:
    since = datetime.now(UTC)
    broker.stop()
    try:
        lead = await submit(platform, title="Posted during a broker outage")
        [row] = await platform.sql(
            "SELECT published_at FROM scouting.outbox WHERE key = $1", lead["id"])
        assert row["published_at"] is None
        await asyncio.sleep(1.0)  # the relay tries, fails and keeps the row
    finally:
        broker.start()  # same ports; Tansu comes back empty and its topics come back by themselves

    async def arrived() -> bool:
        return await facts_about(platform, lead["id"]) == 1
    await eventually(arrived, timeout=60)
    assert await leads_submitted(platform, since=since) == 1


async def dead_letters(platform: Platform, topic: str) -> list:
    """Everything on a dead-letter topic, read from the beginning to the end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=platform.settings.kafka_bootstrap_servers,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in await _partitions(consumer, topic)]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batch = await consumer.getmany(timeout_ms=1000)
            records += [record for part in batch.values() for record in part]
        return records
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # noqa: SLF001 - test reads a fresh topic
    return consumer.partitions_for_topic(topic) or set()


async def test_a_poison_event_is_dead_lettered_and_later_events_still_flow(
    platform: Platform,
) -> None:
    poison_id = str(uuid.uuid4())
    headers = {"ce_specversion": "1.0", "ce_id": poison_id, "ce_source": "/gvn/scouting",
               "ce_type": "eu.lasergo.scouting.lead.submitted.v1",
               "ce_time": datetime.now(UTC).isoformat(), "content-type": "application/json"}
    await publish(platform, "scouting.leads", key=b"poison",
                  value=json.dumps({"lead_id": "not-a-uuid"}).encode(), headers=headers)
    good = await submit(platform, title="Sent after the poison")

    async def parked() -> list:
        records = await dead_letters(platform, "gvn.kpi.facts.dlq")
        return [r for r in records if dict(r.headers).get("ce_id") == poison_id.encode()]
    [letter] = await eventually(parked)
    reasons = dict(letter.headers)
    assert b"lead_id" in reasons["dlq_error"]
    assert reasons["dlq_original_topic"] == b"scouting.leads"
    assert reasons["dlq_consumer"] == b"kpi.facts"

    async def good_one_handled() -> bool:
        return await facts_about(platform, good["id"]) == 1
    await eventually(good_one_handled)
    assert await platform.sql("SELECT 1 FROM kpi.facts WHERE event_id = $1",
                              uuid.UUID(poison_id)) == []


async def test_an_outbox_row_no_broker_takes_is_marked_failed_and_later_events_still_flow(
    platform: Platform,
) -> None:
    """Larger than any producer may send: retrying it forever would hold up every event."""
    [poison] = await platform.sql(
        "INSERT INTO scouting.outbox (event_id, topic, key, event_type, headers, payload) "
        "VALUES ($1, 'scouting.leads', 'huge', 'eu.lasergo.scouting.lead.submitted.v1', "
        "'{}'::jsonb, $2) RETURNING id", uuid.uuid4(), b"x" * (2 * 1024 * 1024))
    good = await submit(platform, title="Sent after the oversized row")

    async def good_one_handled() -> bool:
        return await facts_about(platform, good["id"]) == 1
    await eventually(good_one_handled)
    [row] = await platform.sql("SELECT published_at, failed_at, error FROM scouting.outbox "
                               "WHERE id = $1", poison["id"])
    assert row["published_at"] is None and row["failed_at"] is not None
    assert "MessageSizeTooLarge" in row["error"]

    # Replaying retries it (it fails again: nothing here raised the size limit).
    await replay(platform.settings.service_database_url("scouting"), service="scouting",
                 since=row["failed_at"])

    async def failed_again() -> bool:
        [again] = await platform.sql("SELECT failed_at FROM scouting.outbox WHERE id = $1",
                                     poison["id"])
        return again["failed_at"] is not None and again["failed_at"] > row["failed_at"]
    await eventually(failed_again)


async def test_replaying_the_outbox_publishes_again_and_is_counted_once(
    platform: Platform,
) -> None:
    since = datetime.now(UTC)
    lead = await submit(platform, title="Replayed")
    async def arrived() -> bool:
        return await facts_about(platform, lead["id"]) == 1
    await eventually(arrived)
    started = datetime.now(UTC)

    requeued = await replay(platform.settings.service_database_url("scouting"),
                            service="scouting", since=datetime(2000, 1, 1, tzinfo=UTC))
    assert requeued >= 1

    async def republished() -> bool:
        rows = await platform.sql("SELECT published_at FROM scouting.outbox WHERE key = $1",
                                  lead["id"])
        return rows[0]["published_at"] is not None and rows[0]["published_at"] >= started
    await eventually(republished)
    await asyncio.sleep(1.0)  # give the consumers time to see the copies
    assert await facts_about(platform, lead["id"]) == 1
    assert await leads_submitted(platform, since=since) == 1


async def test_an_event_whose_handler_keeps_failing_is_retried_then_dead_lettered(
    platform: Platform,
) -> None:
    """A buggy producer re-announces an existing lead under a new event id: matching cannot
    store a second demand for it, retries with backoff, parks it, and keeps going."""
    from shared.contracts.scouting import LeadSubmitted
    from shared.events import Event
    from shared.metrics import EVENTS_RETRIED

    lead = await submit(platform, title="Announced twice")
    async def demand_stored() -> list:
        return await platform.sql("SELECT 1 FROM matching.demands WHERE lead_id = $1",
                                  uuid.UUID(lead["id"]))
    await eventually(demand_stored)
    retried = EVENTS_RETRIED.labels("matching", "matching.leads")._value.get()

    twin = Event(data=LeadSubmitted(
        lead_id=lead["id"], kind="market_need", title="Announced twice", target_market="JP",
        cluster="LITEK", submitted_by=platform.key_ids["scout"],
        submitted_at=datetime.now(UTC)))
    await publish(platform, "scouting.leads", key=lead["id"].encode(), value=twin.body(),
                  headers=twin.headers())
    later = await submit(platform, title="After the twin")

    async def parked() -> list:
        return [r for r in await dead_letters(platform, "gvn.matching.leads.dlq")
                if dict(r.headers).get("ce_id") == str(twin.id).encode()]
    [letter] = await eventually(parked)
    assert dict(letter.headers)["dlq_error_type"] == b"IntegrityError"
    attempts = platform.settings.consumer_max_attempts
    retried_now = EVENTS_RETRIED.labels("matching", "matching.leads")._value.get()
    assert retried_now >= retried + attempts - 1

    async def later_stored() -> list:
        return await platform.sql("SELECT 1 FROM matching.demands WHERE lead_id = $1",
                                  uuid.UUID(later["id"]))
    await eventually(later_stored)
    assert await facts_about(platform, lead["id"]) == 2  # kpi logs both events: it keeps every fact
