"""Test fixtures: a real broker, a fresh Postgres database per run, the four services.

The broker is chosen by GVN_TEST_BROKER: `kafka` (default; Apache Kafka, one KRaft node from
the Maven-fetched jars) or `tansu` (the zero-install broker of `gvn up`); it is started here and
stopped. The database named by DATABASE_URL's server (127.0.0.1:5432 by default) gets a new
database `gvn_test_<random>` for this run, dropped at the end.
"""

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.scouting.contacts import new_key
from services.scouting.settings import ScoutingSettings
from shared.broker import Broker, KafkaCluster, TansuBroker
from shared.events import Event
from shared.keys import create_key
from shared.migrations import migrate_all
from shared.settings import SERVICES, Settings

INTERNAL_TOKEN = "internal-test-token"

TEST_BROKER = os.environ.get("GVN_TEST_BROKER", "kafka")
assert TEST_BROKER in ("kafka", "tansu"), f"GVN_TEST_BROKER={TEST_BROKER}: kafka or tansu"
SERVER_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _database_url(name: str) -> str:
    return urlunsplit(urlsplit(SERVER_URL)._replace(path=f"/{name}"))


async def drop_database(name: str) -> None:
    """Drop a database a test made, connections and all."""
    conn = await asyncpg.connect(_database_url("postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def pytest_report_header() -> str:
    return f"broker under test: {TEST_BROKER} (GVN_TEST_BROKER)"


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    broker: Broker = KafkaCluster(1) if TEST_BROKER == "kafka" else TansuBroker()
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
async def settings(broker: Broker) -> AsyncIterator[Settings]:
    name = f"gvn_test_{uuid.uuid4().hex[:10]}"
    # Scouting's settings are a superset of the platform's: every service takes them.
    settings = ScoutingSettings(
        database_url=_database_url(name), kafka_bootstrap_servers=broker.bootstrap,
        kafka_topic_partitions=3, consumer_retry_backoff_ms=20, outbox_poll_interval_s=0.2,
        db_pool_size=5, contact_encryption_key=new_key(), internal_api_token=INTERNAL_TOKEN,
        write_rate_per_minute=0,  # the limiter has its own test; the rest must not be throttled
        auth_cache_seconds=0,  # revocations are checked at once
    )
    try:  # dropped even when a migration fails
        await migrate_all(settings)
        yield settings
    finally:
        await drop_database(name)


@dataclass
class Platform:
    """The four services running in this process, each behind its own HTTP client."""

    settings: Settings
    apps: dict[str, Any]
    clients: dict[str, httpx.AsyncClient]
    keys: dict[str, str] = field(default_factory=dict)
    key_ids: dict[str, uuid.UUID] = field(default_factory=dict)

    def __getattr__(self, service: str) -> httpx.AsyncClient:
        return self.clients[service]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """Read any schema as the database owner: the tests' view from outside."""
        conn = await asyncpg.connect(self.settings.database_url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()


KEYS = {
    "scout": ("scout", "LITEK"), "other_scout": ("scout", "LITEK"),
    "partner": ("partner", "LITEK"), "other_partner": ("partner", "BIOCAT"),
    "manager": ("manager", "LITEK"), "ops": ("ops", None), "admin": ("admin", None),
}


@pytest.fixture(scope="session")
async def platform(settings: Settings) -> AsyncIterator[Platform]:
    import importlib

    async with AsyncExitStack() as stack:
        apps, clients = {}, {}
        for service in SERVICES:
            app = importlib.import_module(f"services.{service}.main").create_app(settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            apps[service] = app
            clients[service] = await stack.enter_async_context(httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url=f"http://{service}"))
        platform = Platform(settings=settings, apps=apps, clients=clients)
        for who, (role, cluster) in KEYS.items():
            key_id, token = await create_key(settings, role=role, cluster=cluster, name=who)
            platform.keys[who], platform.key_ids[who] = token, key_id
        yield platform


async def eventually(check: Callable[[], Awaitable[Any]], *, timeout: float = 20.0) -> Any:  # noqa: ASYNC109
    """Poll `check` until it returns something truthy; fail with its last answer otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(0.05)


async def publish(platform: Platform, topic: str, *, key: bytes, value: bytes,
                  headers: dict[str, str]) -> None:
    """Put one record on the broker, as another service (or a foreign producer) would."""
    producer = AIOKafkaProducer(bootstrap_servers=platform.settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topic, key=key, value=value,
                                     headers=[(k, v.encode()) for k, v in headers.items()])
    finally:
        await producer.stop()


async def publish_event(platform: Platform, event: Event[Any]) -> None:
    await publish(platform, event.data.topic, key=event.subject.encode(), value=event.body(),
                  headers=event.headers())


def a_lead(**overrides: Any) -> dict[str, Any]:
    lead = {
        "kind": "market_need", "title": "Handheld OCT for ENT clinics",
        "description": "ENT clinics in Osaka want a handheld OCT probe under 1 kg.",
        "target_market": "JP", "application_areas": ["diagnostics"],
        "technologies": ["Optical Coherence Tomography", "fibre probes"],
        "duplicate_check": "confirmed_new",  # tests of the duplicate warning say "warn"
    }
    return lead | overrides
