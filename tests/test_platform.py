"""Platform plumbing: schema isolation per service role, health, metrics, the ops view,
and one active outbox relay however many replicas run."""

import asyncio

import asyncpg
import pytest

from services.scouting.domain import normalise_technologies
from shared.outbox import Relay
from shared.settings import SERVICES
from tests.conftest import Platform, a_lead, eventually

pytestmark = pytest.mark.broker


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_role_cannot_touch_another_services_schema(
    platform: Platform, service: str,
) -> None:
    conn = await asyncpg.connect(platform.settings.service_database_url(service))
    try:
        assert await conn.fetchval(f"SELECT count(*) >= 0 FROM {service}.outbox")
        for other in set(SERVICES) - {service}:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch(f"SELECT * FROM {other}.outbox LIMIT 1")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE public.sneaky (id int)")
    finally:
        await conn.close()


async def test_the_fact_log_is_append_only_even_for_its_own_service(platform: Platform) -> None:
    conn = await asyncpg.connect(platform.settings.service_database_url("kpi"))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM kpi.facts")
    finally:
        await conn.close()


@pytest.mark.parametrize("service", SERVICES)
async def test_every_service_reports_health_readiness_and_metrics(
    platform: Platform, service: str,
) -> None:
    client = platform.clients[service]
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": True, "broker": True}
    metrics = (await client.get("/metrics")).text
    for name in ("gvn_events_published_total", "gvn_outbox_backlog", "gvn_handler_seconds"):
        assert name in metrics


async def test_ops_follow_one_leads_journey_and_the_event_rates(platform: Platform) -> None:
    lead = (await platform.scouting.post("/v1/leads", json=a_lead(),
                                         headers=platform.auth("scout"))).json()

    async def journey() -> list:
        answer = await platform.kpi.get(f"/v1/ops/journeys/{lead['id']}",
                                        headers=platform.auth("ops"))
        return answer.json()
    [step] = await eventually(journey)
    assert step["event_type"] == "eu.lasergo.scouting.lead.submitted.v1"
    rates = (await platform.kpi.get("/v1/ops/event-rates", headers=platform.auth("ops"))).json()
    assert rates["eu.lasergo.scouting.lead.submitted.v1"] >= 1
    forbidden = await platform.kpi.get("/v1/ops/event-rates", headers=platform.auth("manager"))
    assert forbidden.status_code == 403


async def test_a_second_relay_of_a_service_stands_by_while_the_first_is_active(
    platform: Platform,
) -> None:
    standby = Relay(platform.settings, service="scouting",
                    dsn=platform.settings.service_database_url("scouting"))
    task = asyncio.create_task(standby.run())
    try:
        lead = (await platform.scouting.post("/v1/leads", json=a_lead(),
                                             headers=platform.auth("scout"))).json()

        async def published() -> bool:
            rows = await platform.sql(
                "SELECT published_at FROM scouting.outbox WHERE key = $1", lead["id"])
            return rows[0]["published_at"] is not None
        await eventually(published)
        assert standby.producer is None  # it never published: the active relay holds the lock
        holders = await platform.sql(
            "SELECT count(*) AS n FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND a.usename = 'gvn_scouting' AND l.granted "
            "AND a.datname = current_database()")
        assert holders[0]["n"] == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await standby.close()


async def test_a_standby_replica_that_commits_events_wakes_the_active_relay(
    platform: Platform,
) -> None:
    heard: list[str] = []
    listener = await asyncpg.connect(platform.settings.service_database_url("scouting"))
    await listener.add_listener("scouting_outbox", lambda *args: heard.append(args[2]))
    standby = Relay(platform.settings, service="scouting",
                    dsn=platform.settings.service_database_url("scouting"))
    try:
        assert not standby.active
        for _ in range(3):  # a burst of commits on this replica
            standby.poke()

        async def woken() -> bool:
            return len(heard) >= 1
        await eventually(woken)
        assert heard == ["scouting_outbox"] * len(heard) and len(heard) <= 2  # one per burst
    finally:
        await standby.close()
        await listener.close()


async def test_requests_succeed_after_the_database_dropped_the_services_connections(
    platform: Platform,
) -> None:
    """As after a Postgres restart or failover: pooled connections are dead, not the server."""
    headers = platform.auth("partner")
    assert (await platform.scouting.get("/v1/leads", headers=headers)).status_code == 200
    await platform.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE usename = 'gvn_scouting' AND datname = current_database()")

    async def all_gone() -> bool:
        rows = await platform.sql(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE usename = 'gvn_scouting' "
            "AND datname = current_database() AND backend_type = 'client backend'")
        return rows[0]["n"] == 0
    await eventually(all_gone)
    await asyncio.sleep(0.1)  # the client side notices the closed sockets
    posted = await platform.scouting.post("/v1/leads", json=a_lead(), headers=headers)
    assert posted.status_code == 201, posted.text
    listed = await platform.scouting.get("/v1/leads", headers=headers)
    assert listed.status_code == 200
    assert posted.json()["id"] in [lead["id"] for lead in listed.json()["items"]]


def test_technology_tags_are_normalised_and_deduplicated() -> None:
    assert normalise_technologies(
        ["  Optical Coherence  Tomography ", "optical coherence tomography", "", "C++ / OpenCV"]
    ) == ["optical-coherence-tomography", "c++-opencv"]


def test_every_setting_is_documented_in_the_readme() -> None:
    from pathlib import Path

    from shared.settings import Settings

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert [name for name in Settings.model_fields if f"`{name.upper()}`" not in readme] == []


async def test_consumer_lag_is_exported_per_group_and_partition(platform: Platform) -> None:
    """From the broker's committed offsets on Apache Kafka, from the consumer's own view on
    Tansu; either way a caught-up group shows 0 on each partition of its topics."""
    lead = (await platform.scouting.post("/v1/leads", json=a_lead(),
                                         headers=platform.auth("scout"))).json()

    async def handled() -> list:
        return await platform.sql("SELECT 1 FROM kpi.facts WHERE subject = $1", lead["id"])
    await eventually(handled)

    async def lag_lines() -> list[str]:
        text = (await platform.kpi.get("/metrics")).text
        return [line for line in text.splitlines() if line.startswith("gvn_consumer_lag{")
                and 'group="gvn.kpi.facts"' in line and 'topic="scouting.leads"' in line
                and line.endswith(" 0.0")]
    lines = await eventually(lag_lines, timeout=30)
    assert {line.split('partition="')[1].split('"')[0] for line in lines} <= {"0", "1", "2"}


async def topic_settings(bootstrap: str, topic: str) -> dict[str, str]:
    """retention.ms and min.insync.replicas as the broker reports them for a topic."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [answer] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    entries = answer.resources[0][4]
    return {entry[0]: entry[1] for entry in entries
            if entry[0] in ("retention.ms", "min.insync.replicas")}


async def test_topics_are_created_with_the_retention_and_min_isr_of_the_settings(
    platform: Platform,
) -> None:
    settings = platform.settings
    assert await topic_settings(settings.kafka_bootstrap_servers, "scouting.leads") == {
        "retention.ms": str(int(settings.kafka_retention_hours * 3_600_000)),
        "min.insync.replicas": str(settings.kafka_min_insync_replicas)}
