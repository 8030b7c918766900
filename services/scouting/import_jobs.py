"""Bulk import, the jobs: one background task per upload saves its rows in batches.

Each batch is one transaction holding its leads (with their transitions, audit rows and
lead.submitted events), its rejections and the job's counters: progress shows while the job
runs, and the counts always agree with the leads. A job holds a Postgres advisory lock while it
lives, so at start-up a job whose lock is free was orphaned by a crash and is marked failed.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import sqlalchemy as sa
import sqlmodel
from fastapi import FastAPI
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError
from sqlmodel import Column, SQLModel

from services.scouting import import_duplicates, imports
from services.scouting.contacts import ContactVault
from services.scouting.handlers import lead_submitted
from services.scouting.models import Lead, LeadTransition, NewLead
from shared.auth import Caller
from shared.db import Database
from shared.problems import Problem
from shared.tables import audit_log
from shared.uow import Transaction, transaction

log = logging.getLogger(__name__)
BATCH_ROWS = 500  # rows per transaction: the step of progress, and all a crash can cut short
RUNNING_PER_PROCESS = 2  # validation is CPU work: more at once only slows each of them
ACTIVE_PER_PROCESS = 8  # running or waiting; each holds one connection for its lock
UNFINISHED = ("The rows counted in rows_processed were handled as reported; the rest were "
              "not imported: upload them again.")
INTERRUPTED = f"Interrupted: the service stopped during the import. {UNFINISHED}"
ORPHANED = f"Interrupted: the service running the import stopped unexpectedly. {UNFINISHED}"
ACTIVE = ("queued", "running")
STALE_SPOOL = timedelta(days=1)  # no import runs that long: such an upload was orphaned
RECOVER_SQL = sa.text(
    "UPDATE lead_imports SET status = 'failed', error = :error, finished_at = now() "
    "WHERE status IN ('queued', 'running') AND CASE WHEN status IN ('queued', 'running') "
    "THEN pg_try_advisory_xact_lock(hashtextextended('lead-import:' || id::text, 0)) END")


class JobGone(Exception):
    """The job is no longer running here: recovery failed it (its lock was lost)."""


class LeadImport(SQLModel, table=True):
    """A bulk import job: its upload's format, who sent it, and how far it got."""

    __tablename__ = "lead_imports"

    id: UUID = sqlmodel.Field(default_factory=uuid4, primary_key=True)
    format: str
    status: str = "queued"  # queued -> running -> done | failed
    cluster: str
    submitted_by: UUID
    rows_total: int | None = None
    rows_processed: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    error: str | None = None
    created_at: datetime = sqlmodel.Field(sa_column=Column(sa.DateTime(timezone=True)))
    finished_at: datetime | None = sqlmodel.Field(
        default=None, sa_column=Column(sa.DateTime(timezone=True)))


class LeadImportRejection(SQLModel, table=True):
    """A row an import refused, with every reason as {location, message}."""

    __tablename__ = "lead_import_rejections"

    import_id: UUID = sqlmodel.Field(primary_key=True)
    row_number: int = sqlmodel.Field(primary_key=True)
    errors: list[dict[str, str]] = sqlmodel.Field(sa_column=Column(JSONB, nullable=False))


class LeadImportRow(SQLModel, table=True):
    """A row an import accepted, and the lead it became."""

    __tablename__ = "lead_import_rows"

    import_id: UUID = sqlmodel.Field(primary_key=True)
    row_number: int = sqlmodel.Field(primary_key=True)
    lead_id: UUID


@dataclass(frozen=True)
class ImportJob:
    """What a runner needs: the job's id, its spooled upload, and whom it imports as."""

    id: UUID
    path: Path
    fmt: str
    caller: Caller  # bound to the cluster the leads go to


async def create_job(tx: Transaction, job: ImportJob, *, rows_total: int) -> LeadImport:
    """Record a queued import; its runner starts once this commits."""
    record = LeadImport(id=job.id, format=job.fmt, cluster=job.caller.cluster,
                        submitted_by=job.caller.key_id, rows_total=rows_total,
                        created_at=datetime.now(UTC))
    tx.session.add(record)
    await tx.audit(api_key_id=job.caller.key_id, action="lead_import.create", subject=str(job.id))
    return record


async def job_for(db: Database, job_id: UUID, caller: Caller) -> LeadImport:
    """The job, if the caller's cluster owns it (others' jobs answer 404, not 403)."""
    async with db.sessions() as session:
        job = await session.get(LeadImport, job_id)
    if job is None or not caller.may_act_for(job.cluster):
        raise Problem(404, "Not found", f"No lead import {job_id} visible to this key.")
    return job


async def report(db: Database, table: type[LeadImportRejection | LeadImportRow], job_id: UUID,
                 *, after: int, limit: int) -> list[Any]:
    """A job's rejected or accepted rows after row `after`, in file order."""
    query = (sa.select(table).where(table.import_id == job_id, table.row_number > after)
             .order_by(table.row_number).limit(limit))
    async with db.sessions() as session:
        return list((await session.execute(query)).scalars())


async def store_batch(tx: Transaction, job_id: UUID, rows: list[imports.Row]) -> None:
    """Save a batch's accepted leads and rejections; the job's counters move with them."""
    await import_duplicates.reject_duplicates(tx.session, rows)
    await _save_accepted(tx, [row for row in rows if row.lead])
    accepted = [{"import_id": job_id, "row_number": row.number, "lead_id": row.lead.id}
                for row in rows if row.lead]  # a row the database refused has no lead now
    rejected = [{"import_id": job_id, "row_number": row.number, "errors": row.errors}
                for row in rows if row.lead is None]
    if accepted:
        await tx.session.execute(sa.insert(LeadImportRow.__table__), accepted)
    if rejected:
        await tx.session.execute(sa.insert(LeadImportRejection.__table__), rejected)
    counted = await tx.session.execute(
        sa.update(LeadImport).where(LeadImport.id == job_id, LeadImport.status == "running")
        .values(rows_processed=LeadImport.rows_processed + len(rows),
                rows_accepted=LeadImport.rows_accepted + len(accepted),
                rows_rejected=LeadImport.rows_rejected + len(rejected)))
    if counted.rowcount != 1:
        raise JobGone(job_id)  # the batch rolls back: nothing saved beyond the counts


async def _save_accepted(tx: Transaction, accepted: list[imports.Row]) -> None:
    """Save the accepted rows' leads at once; should the database refuse a value (one that
    validation let through), save them one by one so that only the refused rows are rejected."""
    if not accepted:
        return
    try:
        async with tx.session.begin_nested():
            await _save_leads(tx, [row.lead for row in accepted])
        return
    except DBAPIError as error:
        if not _refused_value(error):
            raise
    for row in accepted:
        try:
            async with tx.session.begin_nested():
                await _save_leads(tx, [row.lead])
        except DBAPIError as error:
            if not _refused_value(error):
                raise
            row.lead, row.errors = None, [{"location": "", "message": "The database cannot "
                                           f"store the row: {str(error.orig).splitlines()[0]}"}]


def _refused_value(error: DBAPIError) -> bool:
    """A data or integrity error (SQLSTATE class 22 or 23): the row's fault, not the database's."""
    return str(getattr(error.orig, "sqlstate", "")).startswith(("22", "23"))


async def _save_leads(tx: Transaction, leads: list[NewLead]) -> None:
    """What submit_lead saves for one lead, for many at once: the lead, its first transition,
    its audit row and its lead.submitted event."""
    await tx.session.execute(sa.insert(Lead.__table__),
                             [{**vars(lead), "status": "submitted"} for lead in leads])
    await tx.session.execute(sa.insert(LeadTransition.__table__), [
        {"lead_id": lead.id, "from_status": None, "to_status": "submitted",
         "by_key": lead.submitted_by} for lead in leads])
    await tx.session.execute(sa.insert(audit_log), [
        {"api_key_id": lead.submitted_by, "action": "lead.submit", "subject": str(lead.id)}
        for lead in leads])
    for lead in leads:
        tx.emit(lead_submitted(lead))


async def _mark(db: Database, job_id: UUID, *, status: str, was: tuple[str, ...],
                error: str | None = None) -> bool:
    """Move the job on from one of `was`; False if it is no longer there (failed elsewhere)."""
    async with transaction(db) as tx:
        moved = await tx.session.execute(
            sa.update(LeadImport).where(LeadImport.id == job_id, LeadImport.status.in_(was))
            .values(status=status, error=error,
                    finished_at=None if status == "running" else sa.func.now()))
    return moved.rowcount == 1


class JobStopped(Exception):
    """The service is stopping: the job ends between two batches."""


STOP_GRACE_S = 30.0  # a batch takes well under a second; a stuck one is cancelled after this


class ImportJobs:
    """This process's import jobs: started by the API, cancelled at shutdown."""

    def __init__(self, *, db: Database, vault: ContactVault, dsn: str) -> None:
        self.db, self.vault, self.dsn = db, vault, dsn
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = False
        self._running = asyncio.Semaphore(RUNNING_PER_PROCESS)

    def check_capacity(self) -> None:
        """Refuse a new upload while this process already has its fill of imports."""
        if len(self.tasks) >= ACTIVE_PER_PROCESS:
            raise Problem(429, "Too many imports", "This service is running as many imports "
                          "as it takes at once; try again shortly.", headers={"Retry-After": "30"})

    async def claim(self, job_id: UUID) -> asyncpg.Connection:
        """A connection holding the job's advisory lock: while it is open, the job is alive."""
        conn = await asyncpg.connect(self.dsn, server_settings={
            "application_name": f"gvn-lead-import {job_id}"})
        await conn.execute("SELECT pg_advisory_lock(hashtextextended('lead-import:' || $1, 0))",
                           str(job_id))
        return conn

    def start(self, job: ImportJob, lock: asyncpg.Connection) -> None:
        """Run the job in the background; the set keeps the task referenced until it ends."""
        task = asyncio.create_task(self._run(job, lock), name=f"lead-import-{job.id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def recover(self) -> int:
        """Fail the jobs a crashed process left queued or running (nobody holds their lock)."""
        async with transaction(self.db) as tx:
            result = await tx.session.execute(RECOVER_SQL, {"error": ORPHANED})
        return result.rowcount

    async def stop(self) -> None:
        """Stop every job between two batches; each records that it was interrupted.

        Cancelling a job inside a batch could cut a database statement in half (asyncpg's
        executemany then waits for the server, which waits for the rest: neither ends), so
        jobs are asked to stop and given a batch's time; only then are they cancelled.
        """
        self.stopping = True
        await asyncio.sleep(0)  # jobs created just now enter their try blocks
        if not self.tasks:
            return
        _, late = await asyncio.wait(set(self.tasks), timeout=STOP_GRACE_S)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    async def _run(self, job: ImportJob, lock: asyncpg.Connection) -> None:
        try:
            async with self._running:
                await self._import(job)
            await _mark(self.db, job.id, status="done", was=("running",))
        except JobGone:
            log.warning("lead import %s was marked failed elsewhere; it stopped", job.id)
        except JobStopped:
            await _mark(self.db, job.id, status="failed", was=ACTIVE, error=INTERRUPTED)
        except asyncio.CancelledError:
            await _mark(self.db, job.id, status="failed", was=ACTIVE, error=INTERRUPTED)
            raise
        except Exception as error:
            log.exception("lead import %s failed", job.id)
            reason = error.detail if isinstance(error, Problem) else "An internal error stopped it."
            await _mark(self.db, job.id, status="failed", was=ACTIVE,
                        error=f"{reason} {UNFINISHED}")
        finally:
            imports.discard(job.path)
            await lock.close()

    async def _import(self, job: ImportJob) -> None:
        if not await _mark(self.db, job.id, status="running", was=("queued",)):
            raise JobGone(job.id)
        source = imports.read_rows(job.path, fmt=job.fmt)

        def next_batch() -> asyncio.Future[list[imports.Row]]:
            return asyncio.ensure_future(asyncio.to_thread(
                imports.prepare, source, count=BATCH_ROWS, fmt=job.fmt, caller=job.caller,
                vault=self.vault))

        upcoming = next_batch()
        try:
            while rows := await upcoming:
                if self.stopping:
                    raise JobStopped(job.id)
                upcoming = next_batch()  # validated in a thread while this batch is saved
                async with transaction(self.db) as tx:
                    await store_batch(tx, job.id, rows)
        finally:
            upcoming.cancel()
            with contextlib.suppress(ValueError):  # still running in its thread if cancelled
                source.close()


async def _recover(jobs: ImportJobs) -> None:
    """What a crash may have left: jobs still marked running, and their uploads on disk."""
    try:
        if orphans := await jobs.recover():
            log.warning("marked %d orphaned lead imports failed", orphans)
    except Exception as error:  # the database may still be starting: not fatal
        log.warning("could not look for orphaned lead imports: %s", error)
    await asyncio.to_thread(imports.discard_stale_spools, older_than=STALE_SPOOL)


def install(app: FastAPI) -> None:
    """Run import jobs with the app: orphans failed at start-up, live jobs cancelled at stop."""
    service_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_lifespan(app):
            jobs = ImportJobs(db=app.state.db, vault=app.state.vault,
                              dsn=app.state.settings.service_database_url("scouting"))
            app.state.imports = jobs
            await _recover(jobs)
            try:
                yield
            finally:
                await jobs.stop()

    app.router.lifespan_context = lifespan
