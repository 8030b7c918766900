"""Scouting's bulk-import API (/v1/lead-imports): upload a file, follow the job, read the report."""

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.scouting import imports
from services.scouting.import_jobs import (
    ImportJob,
    LeadImport,
    LeadImportRejection,
    LeadImportRow,
    create_job,
    job_for,
    report,
)
from shared import idempotency
from shared.auth import Caller, require_role
from shared.idempotency import IdempotencyKey
from shared.openapi import problem
from shared.uow import transaction

UPLOAD_PATH = "/v1/lead-imports"
router = APIRouter(prefix=UPLOAD_PATH, tags=["lead imports"])
Importer = Annotated[Caller, Depends(require_role("partner", "manager", "admin"))]
Reader = Annotated[Caller, Depends(require_role("partner", "manager", "ops", "admin"))]
CSV_EXAMPLE = (
    "kind,title,target_market,application_areas,technologies,counterpart_name,"
    "counterpart_website,urgency\nmarket_need,Handheld OCT for ENT clinics,JP,diagnostics,"
    "optical coherence tomography;fibre probes,Kansai Medical Optics KK,"
    "https://kansai-medical-optics.example.jp,high\n")
NDJSON_EXAMPLE = ('{"kind": "market_need", "title": "Handheld OCT for ENT clinics", '
                  '"target_market": "JP", "application_areas": ["diagnostics"]}\n')
# What the file check (imports.count_rows) takes, as patterns. The CSV header may name its
# columns in any order; documented is the order of imports.COLUMNS, each at most once.
CSV_HEADER = "".join(f",{name}" if name in imports.REQUIRED_COLUMNS else f"(,{name})?"
                     for name in imports.COLUMNS).removeprefix(",")
CSV_PATTERN = f"^{CSV_HEADER}\\r?\\n[^\\u0000]*[^\\s,\"\\u0000][^\\u0000]*$"
NDJSON_PATTERN = "[^ \\t\\n\\r\\u000b\\u000c]"  # some line that is not blank
UPLOAD_BODY = {"requestBody": {"required": True, "description": (
    "The file itself. CSV: a header line naming the columns (kind, title and target_market "
    "required; the others optional: " + ", ".join(imports.COLUMNS) + "), lists separated by "
    "`;`, counterpart_* and contact_* for the counterpart and its contact. NDJSON: one lead "
    "per line, shaped as the body of POST /v1/leads. UTF-8."), "content": {
    "text/csv": {"schema": {"type": "string", "pattern": CSV_PATTERN}, "example": CSV_EXAMPLE},
    "application/x-ndjson": {"schema": {"type": "string", "pattern": NDJSON_PATTERN},
                             "example": NDJSON_EXAMPLE}}}}
NO_IMPORT = {404: problem(404, "No such import (or not your cluster's)")}
UPLOAD_PROBLEMS = {413: problem(413, "Upload over the byte or row limit"),
                   415: problem(415, "Not text/csv or application/x-ndjson"),
                   422: problem(422, "Invalid request or unreadable file"),
                   409: problem(409, "Idempotency-Key used for another file"),
                   429: problem(429, "Too many imports running, or too many writes by this key")}


class LeadImportPublic(BaseModel):
    """A bulk import job: where it stands and what it did so far."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "0b7f6c1e-8d0a-4a55-9a57-5b0f1f3f6a10", "format": "csv", "status": "running",
        "cluster": "LITEK", "submitted_by": "5d1c8f0e-2b44-4d8e-a6c2-0c3f5e7a9b21",
        "rows_total": 50000, "rows_processed": 12500, "rows_accepted": 12480,
        "rows_rejected": 20, "percent": 25, "error": None,
        "created_at": "2025-05-12T09:30:00Z", "finished_at": None,
        "rejections": "/v1/lead-imports/0b7f6c1e-8d0a-4a55-9a57-5b0f1f3f6a10/rejections",
        "accepted": "/v1/lead-imports/0b7f6c1e-8d0a-4a55-9a57-5b0f1f3f6a10/accepted"}]})

    id: UUID = Field(description="The job's id.")
    format: Literal["csv", "ndjson"] = Field(description="The upload's format.")
    status: Literal["queued", "running", "done", "failed"] = Field(
        description="queued → running → done, or failed (see `error`).")
    cluster: str = Field(description="The cluster the imported leads belong to.")
    submitted_by: UUID = Field(description="The API key that uploaded the file.")
    rows_total: int | None = Field(description="Rows in the file (blank rows not counted).")
    rows_processed: int = Field(description="Rows handled so far: accepted + rejected.")
    rows_accepted: int = Field(description="Rows saved as leads (each announced as submitted); "
                               "see `accepted` for their lead ids.")
    rows_rejected: int = Field(description="Rows refused; see `rejections` for why.")
    percent: int | None = Field(description="rows_processed as a whole percentage of rows_total.")
    error: str | None = Field(description="Why a failed job stopped; rows it had processed stay "
                              "as counted.")
    created_at: datetime = Field(description="When the upload was accepted.")
    finished_at: datetime | None = Field(description="When the job ended (done or failed).")
    rejections: str = Field(description="Path of the rejected rows' report.")
    accepted: str = Field(description="Path of the accepted rows' report: each row's lead id.")


class RowError(BaseModel):
    """One reason a row was refused."""

    location: str = Field(description="The CSV column or the JSON path (`counterpart.name`) at "
                          "fault; empty for the row as a whole.", examples=["target_market"])
    message: str = Field(description="What is wrong.",
                         examples=["Value error, unknown market 'XX'; one of CA, US-EAST, …"])


class RejectedRow(BaseModel):
    """A row of the upload that was not imported; nothing of it was saved."""

    row_number: int = Field(description="The row's place in the file: 1 is the first row under "
                            "a CSV header, or the first non-blank NDJSON line.", examples=[7])
    errors: list[RowError] = Field(description="Every reason it was refused.")


class RejectedRowPage(BaseModel):
    """One page of an import's report of rejected rows."""

    items: list[RejectedRow] = Field(description="Rejected rows in file order.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: done.")


class AcceptedRow(BaseModel):
    """A row of the upload that was saved as a lead."""

    row_number: int = Field(description="The row's place in the file, counted as for rejected "
                            "rows.", examples=[1])
    lead_id: UUID = Field(description="The lead it became (`GET /v1/leads/{lead_id}`).")


class AcceptedRowPage(BaseModel):
    """One page of an import's report of accepted rows."""

    items: list[AcceptedRow] = Field(description="Accepted rows in file order.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: done.")


def present(job: LeadImport) -> dict[str, Any]:
    """The job as the API shows it, with its progress as a percentage."""
    percent = job.rows_processed * 100 // job.rows_total if job.rows_total else None
    public = LeadImportPublic.model_validate({
        **job.model_dump(), "percent": percent,
        "rejections": f"{UPLOAD_PATH}/{job.id}/rejections",
        "accepted": f"{UPLOAD_PATH}/{job.id}/accepted"})
    return public.model_dump(mode="json")


@router.post("", status_code=202, response_model=LeadImportPublic,
             openapi_extra=UPLOAD_BODY,
             responses={**UPLOAD_PROBLEMS, 202: {"description": "The job was created",
                                                 "headers": idempotency.LOCATION}})
async def start_import(
    caller: Importer, request: Request,
    cluster: Annotated[imports.ClusterCode | None, Query(description=(
        "Admin keys only (they belong to no cluster): the cluster the leads go to."))] = None,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Import up to `IMPORT_MAX_ROWS` leads from a CSV or NDJSON file. The file is checked as
    a whole first (format, header, row count); then a job validates it row by row: a valid row
    becomes a lead exactly as `POST /v1/leads` would make it (duplicates refused unless
    `duplicate_check` is `confirmed_new`), an invalid one is reported and saves nothing.
    Follow the job at `Location`."""
    fmt = imports.format_of(request.headers.get("content-type", ""))
    importer = imports.importer_for(caller, cluster)
    settings, jobs = request.app.state.settings, request.app.state.imports
    jobs.check_capacity()
    path, digest = await imports.spool(request.stream(), max_bytes=settings.import_max_bytes)
    try:
        total = await asyncio.to_thread(imports.count_rows, path, fmt=fmt,
                                        limit=settings.import_max_rows)
        job = ImportJob(id=uuid4(), path=path, fmt=fmt, caller=importer)
        return await _create(request, job, rows_total=total, key=key,
                             fingerprint={"sha256": digest, "format": fmt,
                                          "cluster": importer.cluster})
    except BaseException:
        imports.discard(path)
        raise


async def _create(request: Request, job: ImportJob, *, rows_total: int, key: str | None,
                  fingerprint: dict[str, Any]) -> JSONResponse:
    """Record the job and its Idempotency-Key in one transaction, then start it."""
    jobs, key_id = request.app.state.imports, job.caller.key_id
    lock = await jobs.claim(job.id)  # held before the job exists, so it is never orphaned
    try:
        async with transaction(request.app.state.db) as tx:
            prior = await idempotency.claim(tx, api_key_id=key_id, key=key, body=fingerprint)
            if prior is None:
                answer = present(await create_job(tx, job, rows_total=rows_total))
                await idempotency.remember(tx, api_key_id=key_id, key=key, status_code=202,
                                           body=answer)
    except BaseException:
        await lock.close()
        raise
    if prior is not None:
        await lock.close()
        imports.discard(job.path)
        return prior
    jobs.start(job, lock)
    return JSONResponse(answer, status_code=202, headers={"Location": f"{UPLOAD_PATH}/{job.id}"})


@router.get("/{import_id}", response_model=LeadImportPublic, responses=NO_IMPORT)
async def get_import(import_id: UUID, caller: Reader, request: Request) -> dict[str, Any]:
    """The job's status and counts; poll it while it runs."""
    return present(await job_for(request.app.state.db, import_id, caller))


Cursor = Annotated[str | None, Query(max_length=9, pattern=r"^[0-9]+$",
                                     description="`next_cursor` of the previous page.")]
PageSize = Annotated[int, Query(ge=1, le=1000)]


async def _report_page(request: Request, caller: Caller, import_id: UUID,
                       table: type[LeadImportRejection | LeadImportRow], *, cursor: str | None,
                       limit: int) -> dict[str, Any]:
    db = request.app.state.db
    await job_for(db, import_id, caller)
    rows = await report(db, table, import_id, after=int(cursor or 0), limit=limit + 1)
    more = len(rows) > limit
    return {"items": [row.model_dump(exclude={"import_id"}) for row in rows[:limit]],
            "next_cursor": str(rows[limit - 1].row_number) if more else None}


@router.get("/{import_id}/rejections", response_model=RejectedRowPage, responses=NO_IMPORT)
async def list_rejections(import_id: UUID, caller: Reader, request: Request,
                          cursor: Cursor = None, limit: PageSize = 100) -> dict[str, Any]:
    """Every rejected row with its reasons, in file order (so far, while the job runs)."""
    return await _report_page(request, caller, import_id, LeadImportRejection, cursor=cursor,
                              limit=limit)


@router.get("/{import_id}/accepted", response_model=AcceptedRowPage, responses=NO_IMPORT)
async def list_accepted(import_id: UUID, caller: Reader, request: Request,
                        cursor: Cursor = None, limit: PageSize = 100) -> dict[str, Any]:
    """Every accepted row with the id of the lead it became, in file order (so far, while the
    job runs): how a partner system maps its rows to leads."""
    return await _report_page(request, caller, import_id, LeadImportRow, cursor=cursor,
                              limit=limit)
