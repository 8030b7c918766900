"""Scouting's API at the edge: bad input is refused with problem+json and changes nothing;
keys are checked; a retried POST with the same Idempotency-Key returns the first answer."""

import json
import re
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer

from shared.keys import revoke
from tests.conftest import Platform, a_lead


async def counts(platform: Platform) -> tuple[int, int]:
    [row] = await platform.sql(
        "SELECT (SELECT count(*) FROM scouting.leads) AS leads, "
        "(SELECT count(*) FROM scouting.outbox) AS events")
    return row["leads"], row["events"]


BAD_BODIES = {
    "malformed JSON": (b'{"kind": "market_need", "title": ', 400),
    "wrong types": (json.dumps(a_lead(title=42, application_areas="diagnostics")).encode(), 422),
    "missing fields": (json.dumps({"title": "Only a title"}).encode(), 422),
    "unknown fields": (json.dumps(a_lead(status="converted")).encode(), 422),
    "unknown market": (json.dumps(a_lead(target_market="XX")).encode(), 422),
    "too many tags": (json.dumps(a_lead(technologies=["t"] * 21)).encode(), 422),
    "oversized body": (json.dumps(a_lead(description="x" * 70_000)).encode(), 413),
    "not an object": (b"[1, 2, 3]", 422),
}


@pytest.mark.parametrize("case", BAD_BODIES)
async def test_bad_input_is_refused_with_a_problem_and_nothing_is_written(
    platform: Platform, case: str,
) -> None:
    body, status = BAD_BODIES[case]
    before = await counts(platform)
    answer = await platform.scouting.post(
        "/v1/leads", content=body,
        headers={**platform.auth("scout"), "Content-Type": "application/json"})
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert await counts(platform) == before


@pytest.mark.parametrize(("body", "content_type", "status"), [
    (json.dumps(a_lead()).encode(), "text/plain", 415),
    (json.dumps(a_lead()).encode(), None, 415),
    (b"title=Vein+finder", "application/x-www-form-urlencoded", 415),
    (b"", "application/json", 422),  # the body is required
])
async def test_a_body_that_is_not_json_is_refused(
    platform: Platform, body: bytes, content_type: str | None, status: int,
) -> None:
    before = await counts(platform)
    headers = platform.auth("scout") | ({"Content-Type": content_type} if content_type else {})
    answer = await platform.scouting.post("/v1/leads", content=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    if status == 415:  # says what to send instead
        assert "application/json" in answer.json()["detail"]
    else:
        assert answer.json()["errors"][0]["location"] == "body"
    assert await counts(platform) == before


async def test_a_body_sent_in_chunks_is_held_to_the_same_limit(platform: Platform) -> None:
    body = json.dumps(a_lead(description="x" * 70_000)).encode()

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length to refuse it by
        for start in range(0, len(body), 8192):
            yield body[start:start + 8192]

    before = await counts(platform)
    answer = await platform.scouting.post(
        "/v1/leads", content=chunks(),
        headers={**platform.auth("scout"), "Content-Type": "application/json"})
    assert answer.status_code == 413
    assert "65536 bytes" in answer.json()["detail"]
    assert await counts(platform) == before


async def test_validation_problems_name_every_offending_field(platform: Platform) -> None:
    answer = await platform.scouting.post(
        "/v1/leads", json=a_lead(title=42, target_market="XX", owner="me"),
        headers=platform.auth("scout"))
    locations = {error["location"] for error in answer.json()["errors"]}
    assert locations == {"body.title", "body.target_market", "body.owner"}


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer gvn_000000000000_nottherealsecret"},
    {"Authorization": "Bearer something-else"}, {"X-API-Key": ""},
])
async def test_calls_without_a_valid_key_are_unauthorized(
    platform: Platform, headers: dict[str, str],
) -> None:
    answer = await platform.scouting.post("/v1/leads", json=a_lead(), headers=headers)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["www-authenticate"].startswith("Bearer")


async def test_a_revoked_key_is_unauthorized_everywhere(platform: Platform) -> None:
    from shared.keys import create_key

    key_id, token = await create_key(platform.settings, role="manager", cluster="LITEK",
                                     name="leaving manager")
    auth = {"Authorization": f"Bearer {token}"}
    assert (await platform.kpi.get("/v1/kpis", headers=auth)).status_code == 200
    assert await revoke(platform.settings, key_id=key_id)
    for client, path in [(platform.kpi, "/v1/kpis"), (platform.crm, "/v1/pipeline"),
                         (platform.matching, "/v1/demands")]:
        answer = await client.get(path, headers=auth)
        assert answer.status_code == 401 and "revoked" in answer.json()["detail"]
    assert not await revoke(platform.settings, key_id=key_id)


async def test_a_scout_key_on_a_manager_route_is_forbidden(platform: Platform) -> None:
    for client, path in [(platform.kpi, "/v1/kpis"), (platform.crm, "/v1/pipeline"),
                         (platform.matching, "/v1/demands")]:
        answer = await client.get(path, headers=platform.auth("scout"))
        assert answer.status_code == 403, path
        assert answer.headers["content-type"] == "application/problem+json"


async def test_ops_cannot_submit_leads(platform: Platform) -> None:
    answer = await platform.scouting.post("/v1/leads", json=a_lead(), headers=platform.auth("ops"))
    assert answer.status_code == 403


async def test_a_scout_sees_its_own_lead_but_not_another_scouts(platform: Platform) -> None:
    lead = (await platform.scouting.post("/v1/leads", json=a_lead(),
                                         headers=platform.auth("scout"))).json()
    path = f"/v1/leads/{lead['id']}"
    assert (await platform.scouting.get(path, headers=platform.auth("scout"))).status_code == 200
    assert (await platform.scouting.get(path, headers=platform.auth("manager"))).status_code == 200
    assert (await platform.scouting.get(path, headers=platform.auth("ops"))).status_code == 200
    for other in ("other_scout", "other_partner"):
        assert (await platform.scouting.get(path, headers=platform.auth(other))).status_code == 404


@pytest.mark.parametrize("idempotency_key", [None, "submit-once"])
async def test_a_submitted_lead_is_saved_with_its_history_audit_row_and_one_event(
    platform: Platform, idempotency_key: str | None,
) -> None:
    headers = platform.auth("partner")
    if idempotency_key:
        headers["Idempotency-Key"] = f"{idempotency_key}-{uuid.uuid4()}"
    answer = await platform.scouting.post("/v1/leads", json=a_lead(title="Raman probe for KR"),
                                          headers=headers)
    assert answer.status_code == 201
    lead = answer.json()
    assert answer.headers["location"] == f"/v1/leads/{lead['id']}"
    assert (lead["status"], lead["title"], lead["scout_id"]) == (
        "submitted", "Raman probe for KR", None)  # a partner system is not a scout
    lead_id = uuid.UUID(lead["id"])
    [saved] = await platform.sql("SELECT title, status FROM scouting.leads WHERE id = $1",
                                 lead_id)
    assert tuple(saved) == ("Raman probe for KR", "submitted")
    history = await platform.sql("SELECT from_status, to_status FROM scouting.lead_transitions "
                                 "WHERE lead_id = $1", lead_id)
    assert [tuple(row) for row in history] == [(None, "submitted")]
    audit = await platform.sql("SELECT action FROM scouting.audit_log WHERE subject = $1",
                               lead["id"])
    assert [row["action"] for row in audit] == ["lead.submit"]
    events = await platform.sql("SELECT event_type, payload FROM scouting.outbox WHERE key = $1",
                                lead["id"])
    assert [row["event_type"] for row in events] == ["eu.lasergo.scouting.lead.submitted.v1"]
    assert json.loads(events[0]["payload"])["title"] == "Raman probe for KR"


@pytest.mark.parametrize("duplicate_check", ["warn", "confirmed_new"])
async def test_a_leads_lists_are_kept_as_given_and_empty_ones_as_empty(
    platform: Platform, duplicate_check: str,
) -> None:
    given = {"application_areas": ["therapy", "sensing"],
             "technologies": ["Raman", "C++ firmware", "NIR #2"],
             "evidence_links": ["https://example.org/tender?id=7", "https://example.jp/a"]}
    for lists in (given, dict.fromkeys(given, [])):
        tag = uuid.uuid4().hex[:8]
        answer = await platform.scouting.post(
            "/v1/leads", headers=platform.auth("scout"),
            json=a_lead(title=f"Lists {tag}", description=f"Kept {tag}",
                        duplicate_check=duplicate_check, **lists))
        assert answer.status_code == 201, answer.text
        read = (await platform.scouting.get(f"/v1/leads/{answer.json()['id']}",
                                            headers=platform.auth("scout"))).json()
        assert [read[name] for name in given] == [answer.json()[name] for name in given]
        assert read["application_areas"] == lists["application_areas"]
        assert read["technologies"] == (["raman", "c++-firmware", "nir-#2"]
                                        if lists["technologies"] else [])
        assert read["evidence_links"] == lists["evidence_links"]


async def test_a_retried_post_with_the_same_idempotency_key_returns_the_first_lead(
    platform: Platform,
) -> None:
    headers = {**platform.auth("scout"), "Idempotency-Key": str(uuid.uuid4())}
    before = await counts(platform)
    first = await platform.scouting.post("/v1/leads", json=a_lead(), headers=headers)
    again = await platform.scouting.post("/v1/leads", json=a_lead(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert await counts(platform) == (before[0] + 1, before[1] + 1)

    changed = await platform.scouting.post("/v1/leads", json=a_lead(title="Something else"),
                                           headers=headers)
    assert changed.status_code == 409  # the key is taken by another request
    assert await counts(platform) == (before[0] + 1, before[1] + 1)


async def test_another_key_may_use_the_same_idempotency_key(platform: Platform) -> None:
    key = str(uuid.uuid4())
    mine = await platform.scouting.post(
        "/v1/leads", json=a_lead(), headers={**platform.auth("scout"), "Idempotency-Key": key})
    theirs = await platform.scouting.post(
        "/v1/leads", json=a_lead(),
        headers={**platform.auth("other_scout"), "Idempotency-Key": key})
    assert mine.json()["id"] != theirs.json()["id"]


async def test_published_lead_events_are_standard_cloudevents(platform: Platform) -> None:
    from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
    from cloudevents.core.formats.json import JSONFormat

    lead = (await platform.scouting.post("/v1/leads", json=a_lead(),
                                         headers=platform.auth("scout"))).json()
    consumer = AIOKafkaConsumer("scouting.leads", group_id=f"test-{uuid.uuid4()}",
                                bootstrap_servers=platform.settings.kafka_bootstrap_servers,
                                auto_offset_reset="earliest", fetch_max_wait_ms=10)
    await consumer.start()
    try:
        record = None
        while record is None:
            batch = await consumer.getmany(timeout_ms=1000)
            record = next((r for part in batch.values() for r in part
                           if r.key == lead["id"].encode()), None)
    finally:
        await consumer.stop()
    event = from_binary(KafkaMessage(headers=dict(record.headers), key=record.key,
                                     value=record.value), JSONFormat())
    attributes = event.get_attributes()
    assert attributes["specversion"] == "1.0"
    assert attributes["type"] == "eu.lasergo.scouting.lead.submitted.v1"
    assert attributes["source"] == "/gvn/scouting"
    assert attributes["subject"] == lead["id"]
    assert uuid.UUID(attributes["id"]) and attributes["time"].tzinfo
    assert attributes["correlationid"]
    assert attributes["datacontenttype"] == "application/json"
    data = event.get_data()
    assert data["lead_id"] == lead["id"]
    assert "description" not in data  # free text may hold personal data: never in events
    assert dict(record.headers)["traceparent"]


def test_the_openapi_document_describes_every_field_and_operation() -> None:
    from services.scouting.main import create_app
    from services.scouting.settings import ScoutingSettings

    spec = create_app(ScoutingSettings()).openapi()
    undocumented = [
        f"{name}.{prop}" for name, schema in spec["components"]["schemas"].items()
        if not name.startswith(("HTTPValidationError", "ValidationError"))
        for prop, detail in schema.get("properties", {}).items()
        if "description" not in detail and "$ref" not in detail
    ]
    assert undocumented == []
    operations = [op for path in spec["paths"].values() for op in path.values()]
    assert all(op.get("description") or op.get("summary") for op in operations)
    assert all(path.startswith(("/v1/", "/internal/v1/", "/healthz", "/readyz", "/metrics",
                                "/asyncapi.json")) for path in spec["paths"])
    assert spec["components"]["schemas"]["LeadCreate"]["properties"]["title"]["examples"]
    submit = spec["paths"]["/v1/leads"]["post"]
    assert submit["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/LeadCreate"}
    assert [p["name"] for p in submit["parameters"]] == ["Idempotency-Key"]
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(spec)))
    assert refs <= set(spec["components"]["schemas"])  # every reference resolves


async def test_text_with_a_nul_character_is_refused_not_a_server_error(platform: Platform) -> None:
    before = await counts(platform)
    posted = await platform.scouting.post("/v1/leads", json=a_lead(title="Bad \u0000 title"),
                                          headers=platform.auth("scout"))
    searched = await platform.scouting.get("/v1/leads", params={"q": "a\u0000b"},
                                           headers=platform.auth("scout"))
    assert posted.status_code == searched.status_code == 422
    assert "NUL" in posted.json()["detail"]
    assert await counts(platform) == before


async def test_far_future_dates_and_large_values_are_handled(platform: Platform) -> None:
    far = await platform.scouting.get("/v1/leads", params={"submitted_to": "9999-12-31"},
                                      headers=platform.auth("scout"))
    assert far.status_code == 200
    big = await platform.scouting.post("/v1/leads", json=a_lead(estimated_value_eur=10**10),
                                       headers=platform.auth("scout"))
    assert big.status_code == 201 and big.json()["estimated_value_eur"] == 10**10


async def test_a_key_that_writes_too_fast_is_slowed_down_with_429(platform: Platform) -> None:
    from shared.keys import create_key
    from shared.ratelimit import WriteLimiter

    _, token = await create_key(platform.settings, role="scout", cluster="LITEK", name="eager")
    auth = {"Authorization": f"Bearer {token}"}
    app = platform.apps["scouting"]
    usual, app.state.write_limiter = app.state.write_limiter, WriteLimiter(per_minute=60, burst=3)
    try:
        answers = [await platform.scouting.post("/v1/leads", json=a_lead(), headers=auth)
                   for _ in range(4)]
        reads = await platform.scouting.get("/v1/leads", headers=auth)
        others = await platform.scouting.post("/v1/leads", json=a_lead(),
                                              headers=platform.auth("scout"))
    finally:
        app.state.write_limiter = usual
    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert reads.status_code == 200 and others.status_code == 201
    assert len(reads.json()["items"]) == 3
