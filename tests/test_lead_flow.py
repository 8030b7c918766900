"""End to end: a lead posted to scouting reaches matching, crm and kpi through the broker."""

import secrets
from datetime import UTC, datetime

import pytest

from tests.conftest import Platform, a_lead, eventually

pytestmark = pytest.mark.broker


async def leads_submitted(platform: Platform, who: str = "manager", *,
                          since: datetime | None = None) -> int:
    """The KPI as a manager reads it; `since` counts only leads submitted from then on."""
    params = {"from": since.isoformat()} if since else {}
    answer = await platform.kpi.get("/v1/kpis", params=params, headers=platform.auth(who))
    assert answer.status_code == 200, answer.text
    return next(k["value"] for k in answer.json()["kpis"] if k["key"] == "leads_submitted")


async def test_a_submitted_lead_reaches_every_service_in_one_trace(platform: Platform) -> None:
    since = datetime.now(UTC)  # count only this test's lead, not earlier tests' stragglers
    trace_id = secrets.token_hex(16)
    answer = await platform.scouting.post(
        "/v1/leads", json=a_lead(), headers={
            **platform.auth("scout"), "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"})
    assert answer.status_code == 201, answer.text
    lead = answer.json()
    assert lead["status"] == "submitted" and lead["cluster"] == "LITEK"
    assert lead["technologies"] == ["optical-coherence-tomography", "fibre-probes"]

    async def counted() -> bool:
        return await leads_submitted(platform, since=since) == 1

    await eventually(counted)
    demands = await platform.matching.get("/v1/demands", headers=platform.auth("manager"))
    assert lead["id"] in [d["lead_id"] for d in demands.json()]
    pipeline = await platform.crm.get("/v1/pipeline", headers=platform.auth("manager"))
    assert lead["id"] in [o["lead_id"] for o in pipeline.json()]

    [event] = await platform.sql("SELECT event_id FROM scouting.outbox WHERE key = $1", lead["id"])
    traces = {
        service: (await platform.sql(
            f"SELECT trace_id FROM {service}.inbox WHERE event_id = $1", event["event_id"]))
        for service in ("matching", "crm", "kpi")
    }
    assert {service: [r["trace_id"] for r in rows] for service, rows in traces.items()} == {
        "matching": [trace_id], "crm": [trace_id], "kpi": [trace_id]}


async def test_the_lead_is_counted_once_in_its_cluster_and_market(platform: Platform) -> None:
    market_before = (await platform.kpi.get(
        "/v1/kpis", params={"market": "SG"}, headers=platform.auth("ops"))).json()
    answer = await platform.scouting.post(
        "/v1/leads", json=a_lead(target_market="SG"), headers=platform.auth("scout"))
    assert answer.status_code == 201

    async def counted() -> bool:
        report = (await platform.kpi.get(
            "/v1/kpis", params={"market": "SG"}, headers=platform.auth("ops"))).json()
        return report["kpis"][0]["value"] == market_before["kpis"][0]["value"] + 1

    await eventually(counted)
    other_cluster = await platform.kpi.get("/v1/kpis", headers=platform.auth("other_partner"))
    assert other_cluster.json()["cluster"] == "BIOCAT"
