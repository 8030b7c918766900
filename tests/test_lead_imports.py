"""Bulk import of leads (CSV, NDJSON) against the real stack: every good row becomes a lead that
flows on like a POSTed one, every bad row is reported with its reasons and writes nothing."""

import asyncio
import csv
import io
import json
import os
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.scouting.import_jobs import ImportJob, ImportJobs, create_job
from services.scouting.imports import SPOOL_PREFIX, discard_stale_spools
from shared.auth import Caller
from shared.uow import transaction
from tests.conftest import Platform, a_lead, eventually

CSV = {"Content-Type": "text/csv"}
NDJSON = {"Content-Type": "application/x-ndjson"}


def csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    columns = list(dict.fromkeys(column for row in rows for column in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue().encode()


def ndjson_bytes(lines: list[Any]) -> bytes:
    return b"".join((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n"
                    for line in lines)


async def upload(platform: Platform, body: bytes, *, who: str = "partner",
                 headers: dict[str, str] = CSV, **params: str) -> Any:
    return await platform.scouting.post("/v1/lead-imports", content=body, params=params,
                                        headers={**platform.auth(who), **headers})


async def started(platform: Platform, body: bytes, **options: Any) -> dict[str, Any]:
    answer = await upload(platform, body, **options)
    assert answer.status_code == 202, answer.text
    return answer.json()


async def finished(platform: Platform, job: dict[str, Any], *, who: str = "partner") -> dict:
    async def done() -> dict | None:
        answer = await platform.scouting.get(f"/v1/lead-imports/{job['id']}",
                                             headers=platform.auth(who))
        state = answer.json()
        return state if state["status"] in ("done", "failed") else None

    return await eventually(done, timeout=60)


async def report(platform: Platform, url: str) -> list[dict[str, Any]]:
    """A whole import report, two rows a page, so paging is exercised too."""
    items, cursor = [], None
    while True:
        page = (await platform.scouting.get(
            url, params={"limit": 2, **({"cursor": cursor} if cursor else {})},
            headers=platform.auth("partner"))).json()
        items += page["items"]
        if not (cursor := page["next_cursor"]):
            return items


async def rejected_rows(platform: Platform, job: dict[str, Any]) -> dict[int, list[dict]]:
    items = await report(platform, job["rejections"])
    return {item["row_number"]: item["errors"] for item in items}


async def accepted_rows(platform: Platform, job: dict[str, Any]) -> dict[int, str]:
    """Row number -> lead id."""
    items = await report(platform, job["accepted"])
    return {item["row_number"]: item["lead_id"] for item in items}


async def imported(platform: Platform, marker: str) -> list[Any]:
    return await platform.sql(
        "SELECT * FROM scouting.leads WHERE title LIKE $1 ORDER BY submitted_at", f"%{marker}%")


async def reach_kpi(platform: Platform, lead_ids: list[str]) -> None:
    async def counted() -> bool:
        [row] = await platform.sql("SELECT count(*) FROM kpi.facts WHERE subject = ANY($1)",
                                   lead_ids)
        return row["count"] == len(lead_ids)

    await eventually(counted)


def locations(report: dict[int, list[dict]]) -> dict[int, set[str]]:
    return {row: {error["location"] for error in errors} for row, errors in report.items()}


def good_row(marker: str, **overrides: str) -> dict[str, str]:
    return {
        "kind": "market_need", "title": f"Raman probe for breast surgery {marker}",
        # Words of its own besides the marker: rows of other tests are not near-identical.
        "description": f"Surgeons want margins checked in the theatre (ref {marker}a "
                       f"{marker}b {marker}c).", "target_market": "JP",
        "application_areas": "diagnostics;therapy",
        "technologies": "Raman Spectroscopy; fibre probes",
        "counterpart_name": f"Osaka Optics {marker} KK",
        "counterpart_website": f"https://osaka-{marker}.example.jp", "counterpart_country": "JP",
        "contact_name": "Dr. Aiko Tanaka", "contact_email": "a.tanaka@osaka.example.jp",
        "urgency": "high", "estimated_value_eur": "120000", "source": "mission",
        "source_date": "2025-03-01", "evidence_links": "https://a.example/1;https://a.example/2",
        "duplicate_check": "",
    } | overrides


async def test_a_csv_import_saves_good_rows_as_leads_and_reports_each_bad_row(
    platform: Platform,
) -> None:
    marker = uuid.uuid4().hex[:10]
    counterpart = {"name": f"Kyoto Scopes {marker}", "website": f"https://kyoto-{marker}.example"}
    earlier = await platform.scouting.post("/v1/leads", headers=platform.auth("partner"), json=(
        a_lead(title="Kyoto endoscopy tender", counterpart=counterpart, duplicate_check="warn")))
    assert earlier.status_code == 201, earlier.text
    rows = [
        good_row(marker),
        good_row(marker, title=f"Wrong market {marker}", target_market="XX"),
        good_row(marker, title=""),
        good_row(marker, title=f"Unknown urgency {marker}", urgency="asap"),
        good_row(marker, title=f"Same counterpart again {marker}"),
        good_row(marker, title=f"Kyoto endoscopes wanted {marker}", counterpart_name="Other KK",
                 counterpart_website=f"https://www.kyoto-{marker}.example/en"),
        good_row(marker, title=f"Same counterpart, confirmed {marker}",
                 duplicate_check="confirmed_new"),
        {"kind": "distributor_candidate", "title": f"Singapore distributor {marker}",
         "target_market": "SG"},
        good_row(marker, title=f"Website but no name {marker}", counterpart_name=""),
    ]
    too_many = ",".join(good_row(marker, title=f"Too many values {marker}").values())
    body = csv_bytes(rows) + f"market_need,Too few values {marker},JP\n{too_many},x\n".encode()
    answer = await upload(platform, body)
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert answer.headers["location"] == f"/v1/lead-imports/{job['id']}"
    assert job["rows_total"] == 11 and job["cluster"] == "LITEK"

    state = await finished(platform, job)
    assert (state["status"], state["rows_processed"], state["rows_accepted"],
            state["rows_rejected"], state["percent"]) == ("done", 11, 3, 8, 100)
    report = await rejected_rows(platform, job)
    assert locations(report) == {2: {"target_market"}, 3: {"title"}, 4: {"urgency"},
                                 5: {"duplicate_check"}, 6: {"duplicate_check"},
                                 9: {"counterpart_name"}, 10: {""}, 11: {""}}
    assert "unknown market 'XX'" in report[2][0]["message"]
    assert earlier.json()["id"] in report[6][0]["message"]
    assert "fewer values" in report[10][0]["message"]
    assert "more values" in report[11][0]["message"]

    leads = await imported(platform, marker)
    assert [lead["title"] for lead in leads] == [rows[0]["title"], rows[6]["title"],
                                                rows[7]["title"]]
    # The partner system maps its rows to the leads they became.
    assert await accepted_rows(platform, job) == {
        number: str(lead["id"]) for number, lead in zip((1, 7, 8), leads, strict=True)}
    assert {(lead["cluster"], lead["submitted_by"]) for lead in leads} == {
        ("LITEK", platform.key_ids["partner"])}
    first = (await platform.scouting.get(f"/v1/leads/{leads[0]['id']}",
                                         headers=platform.auth("partner"))).json()
    assert first["technologies"] == ["raman-spectroscopy", "fibre-probes"]
    assert first["has_contact"] and first["estimated_value_eur"] == 120000
    assert first["application_areas"] == ["diagnostics", "therapy"]
    assert first["evidence_links"] == ["https://a.example/1", "https://a.example/2"]
    ids = [str(lead["id"]) for lead in leads]
    events = await platform.sql("SELECT event_type FROM scouting.outbox WHERE key = ANY($1)", ids)
    assert [e["event_type"] for e in events] == ["eu.lasergo.scouting.lead.submitted.v1"] * 3
    history = await platform.sql(
        "SELECT to_status FROM scouting.lead_transitions WHERE lead_id = ANY($1::uuid[])", ids)
    assert len(history) == 3
    await reach_kpi(platform, ids)


async def test_an_ndjson_import_saves_good_lines_and_reports_each_bad_line(
    platform: Platform,
) -> None:
    marker = uuid.uuid4().hex[:10]
    good = a_lead(title=f"Photoacoustic imaging {marker}", duplicate_check="warn",
                  counterpart={"name": f"Haifa Imaging {marker}", "country": "IL"},
                  counterpart_contact={"name": "Noa Levi", "phone": "+972 4 123 4567"},
                  target_market="IL")
    lines = [
        good,
        b'{"kind": "market_need", "title": ',
        a_lead(title=f"Wrong market {marker}", target_market="XX"),
        {key: value for key, value in good.items() if key != "title"},
        a_lead(title=f"Sets its own status {marker}", status="qualified"),
        b"[1, 2, 3]",
        b"   ",
        good | {"title": f"Haifa again {marker}"},
        a_lead(title=f"Auckland wound imaging {marker}", target_market="NZ"),
    ]
    answer = await upload(platform, ndjson_bytes(lines), headers=NDJSON)
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert job["rows_total"] == 8 and job["format"] == "ndjson"

    state = await finished(platform, job)
    assert (state["status"], state["rows_accepted"], state["rows_rejected"]) == ("done", 2, 6)
    report = await rejected_rows(platform, job)
    assert locations(report) == {2: {""}, 3: {"target_market"}, 4: {"title"}, 5: {"status"},
                                 6: {""}, 7: {"duplicate_check"}}
    leads = await imported(platform, marker)
    assert [lead["title"] for lead in leads] == [good["title"], lines[8]["title"]]
    assert leads[0]["contact_sealed"] is not None
    await reach_kpi(platform, [str(lead["id"]) for lead in leads])


async def test_rows_retyping_a_saved_lead_or_an_earlier_row_are_rejected_as_duplicates(
    platform: Platform,
) -> None:
    marker = uuid.uuid4().hex[:10]
    saved = a_lead(title=f"Confocal endomicroscope {marker} for gastric biopsy",
                   description=f"Nagoya gastroenterologists want {marker} confocal probes",
                   duplicate_check="warn")
    earlier = await platform.scouting.post("/v1/leads", json=saved,
                                           headers=platform.auth("partner"))
    assert earlier.status_code == 201, earlier.text
    new = a_lead(title=f"Laser speckle imager {marker} burn depth",
                 description=f"Sapporo burn units want {marker} speckle imagers",
                 duplicate_check="warn")
    lines = [
        saved | {"title": f"Confocal endomicroscope {marker} for the gastric biopsy"},
        new,
        new | {"title": f"Laser speckle imager {marker} for burn depth"},
        new | {"target_market": "KR"},  # the same words in another market: no duplicate
    ]
    job = await started(platform, ndjson_bytes(lines), headers=NDJSON)
    state = await finished(platform, job)
    assert (state["rows_accepted"], state["rows_rejected"]) == (2, 2)
    report = await rejected_rows(platform, job)
    assert locations(report) == {1: {"duplicate_check"}, 3: {"duplicate_check"}}
    assert earlier.json()["id"] in report[1][0]["message"]
    assert "similar_text" in report[1][0]["message"] and "similar_text" in report[3][0]["message"]


async def test_a_row_with_a_nul_character_is_rejected_alone(platform: Platform) -> None:
    marker = uuid.uuid4().hex[:10]
    rows = [{"kind": "market_need", "title": f"{title} {marker}", "target_market": "JP"}
            for title in ("Before", "Nul \x00 inside", "After")]  # Postgres text holds no NUL
    job = await started(platform, csv_bytes(rows))
    state = await finished(platform, job)
    assert (state["status"], state["rows_accepted"], state["rows_rejected"]) == ("done", 2, 1)
    assert locations(await rejected_rows(platform, job)) == {2: {"title"}}


async def test_a_row_the_database_refuses_is_rejected_alone(platform: Platform) -> None:
    marker = uuid.uuid4().hex[:10]
    constraint = f"test_refuses_{marker}"
    await platform.sql(f"ALTER TABLE scouting.leads ADD CONSTRAINT {constraint} "
                       f"CHECK (title NOT LIKE '%refused {marker}%') NOT VALID")
    try:
        rows = [{"kind": "market_need", "title": f"{title} {marker}", "target_market": "JP"}
                for title in ("Before", "A row the database refused", "After")]
        state = await finished(platform, job := await started(platform, csv_bytes(rows)))
    finally:
        await platform.sql(f"ALTER TABLE scouting.leads DROP CONSTRAINT {constraint}")
    assert (state["status"], state["rows_accepted"], state["rows_rejected"]) == ("done", 2, 1)
    [error] = (await rejected_rows(platform, job))[2]
    assert "cannot store" in error["message"] and constraint in error["message"]
    leads = await imported(platform, marker)
    assert [lead["title"] for lead in leads] == [f"Before {marker}", f"After {marker}"]
    assert await accepted_rows(platform, job) == {1: str(leads[0]["id"]), 3: str(leads[1]["id"])}


async def test_progress_is_visible_while_a_long_import_runs_and_always_matches_the_leads(
    platform: Platform,
) -> None:
    marker, total = uuid.uuid4().hex[:10], 3000
    rows = [{"kind": "market_need", "title": f"Imported need {marker} {n:05d}",
             "description": f"batch {uuid.uuid4().hex}", "target_market": "KR"}
            for n in range(total)]
    job = await started(platform, csv_bytes(rows))
    seen, deadline = [], time.monotonic() + 60
    while not seen or seen[-1]["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline, seen[-1]
        [row] = await platform.sql(
            "SELECT status, rows_processed, rows_accepted, rows_rejected, (SELECT count(*) "
            "FROM scouting.leads WHERE title LIKE $2) AS leads FROM scouting.lead_imports "
            "WHERE id = $1", uuid.UUID(job["id"]), f"%{marker}%")
        seen.append(dict(row))
        assert row["rows_accepted"] == row["leads"]  # one snapshot: counts agree with leads
        assert row["rows_processed"] == row["rows_accepted"] + row["rows_rejected"]
        await asyncio.sleep(0.01)
    assert seen[-1]["status"] == "done" and seen[-1]["rows_accepted"] == total
    assert any(s["status"] == "running" and 0 < s["rows_processed"] < total for s in seen)
    state = (await platform.scouting.get(f"/v1/lead-imports/{job['id']}",
                                         headers=platform.auth("partner"))).json()
    assert state["percent"] == 100 and state["finished_at"] is not None


async def test_an_import_is_visible_only_to_its_own_cluster(platform: Platform) -> None:
    marker = uuid.uuid4().hex[:10]
    job = await started(platform, csv_bytes([good_row(marker, target_market="XX")]))
    await finished(platform, job)
    for who, status in {"partner": 200, "manager": 200, "ops": 200, "admin": 200,
                        "other_partner": 404, "scout": 403}.items():
        for path in (f"/v1/lead-imports/{job['id']}", job["rejections"], job["accepted"]):
            answer = await platform.scouting.get(path, headers=platform.auth(who))
            assert answer.status_code == status, (who, path)
    missing = await platform.scouting.get(f"/v1/lead-imports/{uuid.uuid4()}",
                                          headers=platform.auth("partner"))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_an_admin_names_the_cluster_and_a_partner_only_its_own(platform: Platform) -> None:
    marker = uuid.uuid4().hex[:10]
    body = csv_bytes([good_row(marker, counterpart_name="", counterpart_website="",
                                     counterpart_country="")])
    assert (await upload(platform, body, who="admin")).status_code == 403  # names no cluster
    assert (await upload(platform, body, who="partner", cluster="BIOCAT")).status_code == 403
    assert (await upload(platform, body, who="scout")).status_code == 403
    assert (await upload(platform, body, who="ops")).status_code == 403
    job = await started(platform, body, who="admin", cluster="BIOCAT")
    assert (await finished(platform, job, who="admin"))["rows_accepted"] == 1
    [lead] = await imported(platform, marker)
    assert lead["cluster"] == "BIOCAT"
    theirs = await platform.scouting.get(f"/v1/lead-imports/{job['id']}",
                                         headers=platform.auth("other_partner"))
    assert theirs.status_code == 200


def spooled_files() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob(f"{SPOOL_PREFIX}*"))


async def import_count(platform: Platform) -> int:
    [row] = await platform.sql("SELECT count(*) FROM scouting.lead_imports")
    return row["count"]


@pytest.fixture
def small_limits(platform: Platform) -> Any:
    app = platform.apps["scouting"]
    settings = app.state.settings
    app.state.settings = settings.model_copy(update={"import_max_rows": 5,
                                                     "import_max_bytes": 2048})
    yield
    app.state.settings = settings


async def test_uploads_over_the_row_or_byte_limit_are_refused_upfront(
    platform: Platform, small_limits: None,
) -> None:
    before, files = await import_count(platform), spooled_files()
    rows = [good_row("limit", title=f"Row {n}") for n in range(6)]
    too_many = await upload(platform, csv_bytes([{"kind": r["kind"], "title": r["title"],
                                                  "target_market": "JP"} for r in rows]))
    assert too_many.status_code == 413 and too_many.json()["title"] == "Too many rows"
    assert "at most 5 rows" in too_many.json()["detail"]
    too_big = await upload(platform, csv_bytes(rows[:2]) + b"\n" * 2048)
    assert too_big.status_code == 413 and "2048 bytes" in too_big.json()["detail"]
    declared = await upload(platform, b"kind,title\n", headers={
        **CSV, "Content-Length": str(10**12)})
    assert declared.status_code == 413
    assert declared.headers["content-type"] == "application/problem+json"
    assert await import_count(platform) == before
    assert spooled_files() == files  # refused uploads leave nothing on disk


@pytest.mark.parametrize(("body", "headers"), [
    (b"", CSV), (b"kind,title,target_market\n", CSV), (b"\n\n", CSV), (b"", NDJSON),
    (b"\n  \n", NDJSON),
])
async def test_an_empty_file_is_refused(platform: Platform, body: bytes,
                                        headers: dict[str, str]) -> None:
    before = await import_count(platform)
    answer = await upload(platform, body, headers=headers)
    assert answer.status_code == 422 and answer.json()["title"] in ("Empty import",
                                                                    "Bad CSV header")
    assert await import_count(platform) == before


@pytest.mark.parametrize("content_type", [
    "application/json", "text/plain", "multipart/form-data; boundary=x",
    "text/csv; charset=latin-1", None,
])
async def test_a_file_of_another_type_is_refused_with_415(
    platform: Platform, content_type: str | None,
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    answer = await platform.scouting.post("/v1/lead-imports", content=b"kind,title\n",
                                          headers={**platform.auth("partner"), **headers})
    assert answer.status_code == 415
    assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("body", "problem"), [
    (b"kind,title,target_market,colour\nmarket_need,A title,JP,red\n", {"unknown": ["colour"]}),
    (b"kind,target_market\nmarket_need,JP\n", {"missing": ["title"]}),
    (b"kind,title,title,target_market\nmarket_need,A,B,JP\n", {}),
    (b"kind,title,target_market\nmarket_need,Caf\xe9,JP\n", {"title": "Not UTF-8"}),
])
async def test_a_file_that_cannot_be_read_as_leads_is_refused_whole(
    platform: Platform, body: bytes, problem: dict[str, Any],
) -> None:
    before = await import_count(platform)
    answer = await upload(platform, body)
    assert answer.status_code == 422, answer.text
    assert problem.items() <= answer.json().items()
    assert await import_count(platform) == before


async def test_a_retried_upload_with_the_same_idempotency_key_starts_one_job(
    platform: Platform,
) -> None:
    marker = uuid.uuid4().hex[:10]
    body = csv_bytes([good_row(marker)])
    headers = {**CSV, "Idempotency-Key": str(uuid.uuid4())}
    first = await upload(platform, body, headers=headers)
    again = await upload(platform, body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    await finished(platform, first.json())
    assert len(await imported(platform, marker)) == 1


async def test_jobs_orphaned_by_a_crash_are_failed_but_live_ones_are_left_alone(
    platform: Platform,
) -> None:
    jobs = platform.apps["scouting"].state.imports
    orphan, alive = uuid.uuid4(), uuid.uuid4()
    for job_id in (orphan, alive):
        await platform.sql(
            "INSERT INTO scouting.lead_imports (id, format, status, cluster, submitted_by, "
            "rows_total, rows_processed, rows_accepted) VALUES ($1, 'csv', 'running', 'LITEK', "
            "$2, 1000, 500, 500)", job_id, platform.key_ids["partner"])
    lock = await jobs.claim(alive)
    try:
        assert await jobs.recover() >= 1
        statuses = await platform.sql(
            "SELECT id, status, error, finished_at FROM scouting.lead_imports "
            "WHERE id = ANY($1::uuid[])", [orphan, alive])
        state = {row["id"]: row for row in statuses}
        assert state[orphan]["status"] == "failed" and state[orphan]["finished_at"]
        assert "Interrupted" in state[orphan]["error"]
        assert state[alive]["status"] == "running"
    finally:
        await lock.close()
    await jobs.recover()
    [row] = await platform.sql("SELECT status FROM scouting.lead_imports WHERE id = $1", alive)
    assert row["status"] == "failed"


async def running_job(
    platform: Platform, tmp_path: Path, marker: str,
) -> tuple[ImportJobs, ImportJob]:
    """A 20,000-row job on a runner of its own, once its first batch is saved."""
    app = platform.apps["scouting"]
    jobs = ImportJobs(db=app.state.db, vault=app.state.vault,
                      dsn=platform.settings.service_database_url("scouting"))
    path = tmp_path / "leads.csv"
    path.write_bytes(csv_bytes([{"kind": "market_need", "title": f"Long {marker} {n}",
                                 "target_market": "AU", "duplicate_check": "confirmed_new"}
                                for n in range(20000)]))
    partner = Caller(key_id=platform.key_ids["partner"], role="partner", cluster="LITEK",
                     name="partner")
    job = ImportJob(id=uuid.uuid4(), path=path, fmt="csv", caller=partner)
    lock = await jobs.claim(job.id)
    async with transaction(app.state.db) as tx:
        await create_job(tx, job, rows_total=20000)
    jobs.start(job, lock)

    async def started() -> bool:
        [row] = await platform.sql("SELECT rows_processed FROM scouting.lead_imports "
                                   "WHERE id = $1", job.id)
        return row["rows_processed"] > 0

    await eventually(started)
    return jobs, job


async def test_a_job_stopped_with_the_service_is_failed_and_its_counts_match_its_leads(
    platform: Platform, tmp_path: Path,
) -> None:
    marker = uuid.uuid4().hex[:10]
    jobs, job = await running_job(platform, tmp_path, marker)
    await jobs.stop()
    [row] = await platform.sql("SELECT * FROM scouting.lead_imports WHERE id = $1", job.id)
    assert row["status"] == "failed" and "service stopped" in row["error"]
    assert 0 < row["rows_accepted"] < 20000
    assert len(await imported(platform, marker)) == row["rows_accepted"]
    assert not job.path.exists()


async def test_a_job_failed_elsewhere_stops_without_saving_more_than_it_counted(
    platform: Platform, tmp_path: Path,
) -> None:
    marker = uuid.uuid4().hex[:10]
    jobs, job = await running_job(platform, tmp_path, marker)
    await platform.sql("UPDATE scouting.lead_imports SET status = 'failed', error = 'lost' "
                       "WHERE id = $1", job.id)  # as recovery does when a job's lock is lost
    await eventually(lambda: asyncio.sleep(0, result=not jobs.tasks))
    [row] = await platform.sql("SELECT * FROM scouting.lead_imports WHERE id = $1", job.id)
    assert (row["status"], row["error"]) == ("failed", "lost")
    assert len(await imported(platform, marker)) == row["rows_accepted"] < 20000


def test_uploads_orphaned_on_disk_are_removed_once_stale(tmp_path: Path) -> None:
    stale, fresh = (Path(tempfile.gettempdir()) / f"{SPOOL_PREFIX}{uuid.uuid4().hex}"
                    for _ in range(2))
    for path in (stale, fresh):
        path.write_bytes(b"kind,title\n")
    os.utime(stale, (time.time() - 2 * 86400,) * 2)
    try:
        assert discard_stale_spools(older_than=timedelta(days=1)) >= 1
        assert not stale.exists() and fresh.exists()
    finally:
        fresh.unlink(missing_ok=True)


async def test_the_openapi_document_describes_the_import_endpoints(platform: Platform) -> None:
    document = (await platform.scouting.get("/openapi.json")).json()
    upload_op = document["paths"]["/v1/lead-imports"]["post"]
    assert set(upload_op["requestBody"]["content"]) == {"text/csv", "application/x-ndjson"}
    assert {"202", "413", "415"} <= set(upload_op["responses"])
    job = document["components"]["schemas"]["LeadImportPublic"]
    assert all(field.get("description") for field in job["properties"].values())
    assert "/v1/lead-imports/{import_id}/rejections" in document["paths"]
    accepted = document["components"]["schemas"]["AcceptedRow"]
    assert set(accepted["properties"]) == {"row_number", "lead_id"}
    assert all(field.get("description") for field in accepted["properties"].values())
