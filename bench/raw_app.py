"""The raw baseline for bench/pipeline.py: the same flow with nothing but the bare essentials.

One uvicorn process holds all three parts:

* a bare FastAPI app (no auth, no telemetry, no middleware): POST /leads validates a small
  pydantic body, then in ONE transaction (asyncpg, no ORM) inserts the lead (its `created_at`
  is `clock_timestamp()` at insert) and an outbox row carrying the lead id and that timestamp;
* a relay: LISTEN/NOTIFY (statement trigger on the outbox) with a 1 s safety poll; reads the
  oldest unpublished rows (up to 500), produces them with acks=all, marks them published;
* one consumer (aiokafka, fetch_max_wait_ms=10, manual commit): per batch, one transaction
  inserting a projection row per event (`recorded_at` = `clock_timestamp()` at insert),
  then commits the offsets.

Configured by environment: RAW_DSN (its own database, created by pipeline.py),
KAFKA_BOOTSTRAP_SERVERS, RAW_TOPIC, RAW_PARTITIONS. Run with
`uvicorn bench.raw_app:app --host 127.0.0.1 --port N`.
"""

import asyncio
import contextlib
import json
import logging
import os
import uuid
from contextlib import asynccontextmanager
from datetime import datetime

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

log = logging.getLogger("raw_app")

DSN = os.environ.get("RAW_DSN", "postgresql://postgres@127.0.0.1:5432/gvn_raw")
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
TOPIC = os.environ.get("RAW_TOPIC", "raw.leads")
PARTITIONS = int(os.environ.get("RAW_PARTITIONS", "6"))
BATCH = 500

SCHEMA = """
CREATE TABLE IF NOT EXISTS leads (
    id uuid PRIMARY KEY, body jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE IF NOT EXISTS outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, key text NOT NULL,
    payload bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE TABLE IF NOT EXISTS projection (
    lead_id uuid PRIMARY KEY, occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_notify('raw_outbox', ''); RETURN NULL; END $$;
DROP TRIGGER IF EXISTS outbox_notify ON outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
"""


class LeadIn(BaseModel):
    kind: str
    title: str
    description: str
    target_market: str
    application_areas: list[str] = []
    technologies: list[str] = []


async def ensure_topic() -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        if TOPIC not in await admin.list_topics():
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
    finally:
        await admin.close()


async def relay(wake: asyncio.Event) -> None:
    conn = await asyncpg.connect(DSN)
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all",
                                enable_idempotence=False, linger_ms=2)
    await producer.start()
    try:
        await conn.add_listener("raw_outbox", lambda *_: wake.set())
        while True:
            wake.clear()  # before the read: a NOTIFY that lands during it is not lost
            rows = await conn.fetch(
                "SELECT id, key, payload FROM outbox WHERE published_at IS NULL "
                "ORDER BY id LIMIT $1", BATCH)
            if not rows:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), 1.0)
                continue
            futures = [await producer.send(TOPIC, key=r["key"].encode(), value=r["payload"])
                       for r in rows]
            await asyncio.gather(*futures)
            await conn.execute(
                "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                [r["id"] for r in rows])
    finally:
        await producer.stop()
        await conn.close()


async def consume(pool: asyncpg.Pool) -> None:
    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=BOOTSTRAP, group_id="raw.projection",
        enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=10,
        max_poll_records=500)
    await consumer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=1000, max_records=500)
            if not batch:
                continue
            rows = []
            for records in batch.values():
                for record in records:
                    event = json.loads(record.value)
                    rows.append((uuid.UUID(event["lead_id"]),
                                 datetime.fromisoformat(event["occurred_at"])))
            async with pool.acquire() as conn, conn.transaction():
                await conn.executemany(
                    "INSERT INTO projection (lead_id, occurred_at) VALUES ($1, $2) "
                    "ON CONFLICT DO NOTHING", rows)
            await consumer.commit({tp: recs[-1].offset + 1 for tp, recs in batch.items()})
    finally:
        await consumer.stop()


async def _guard(name: str, coro) -> None:  # noqa: ANN001
    try:
        await coro
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("%s died", name)
        os._exit(3)  # a dead relay or consumer would look like lost leads: fail loudly


@asynccontextmanager
async def lifespan(app: FastAPI):  # noqa: ANN201
    setup = await asyncpg.connect(DSN)
    try:
        await setup.execute(SCHEMA)
    finally:
        await setup.close()
    await ensure_topic()
    app.state.pool = await asyncpg.create_pool(DSN, min_size=2, max_size=20)
    tasks = [asyncio.create_task(_guard("relay", relay(asyncio.Event()))),
             asyncio.create_task(_guard("consumer", consume(app.state.pool)))]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    async with app.state.pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
    return {"status": "ready"}


@app.post("/leads", status_code=201)
async def submit(body: LeadIn) -> JSONResponse:
    lead_id = uuid.uuid4()
    async with app.state.pool.acquire() as conn, conn.transaction():
        created_at = await conn.fetchval(
            "INSERT INTO leads (id, body) VALUES ($1, $2::jsonb) RETURNING created_at",
            lead_id, body.model_dump_json())
        payload = json.dumps({"lead_id": str(lead_id), "occurred_at": created_at.isoformat(),
                              "lead": body.model_dump()}).encode()
        await conn.execute("INSERT INTO outbox (key, payload) VALUES ($1, $2)",
                           str(lead_id), payload)
    return JSONResponse({"id": str(lead_id)}, status_code=201)
