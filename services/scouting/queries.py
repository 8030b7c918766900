"""Scouting's read side: lead lookup, filtered search with cursor pages, duplicate candidates."""

import base64
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import sqlalchemy as sa
import sqlalchemy.orm

from services.scouting import domain
from services.scouting.models import Lead, LeadAttachment, LeadTransition, NewLead, Scout
from shared.auth import Caller
from shared.db import Database
from shared.problems import Problem

DUPLICATE_LOOKBACK = timedelta(days=365)
WITHHELD = "(reported by another scout of your cluster)"


async def lead_by_id(db: Database, lead_id: UUID) -> Lead | None:
    async with db.sessions() as session:
        return await session.get(Lead, lead_id)


async def transitions(db: Database, lead_id: UUID) -> list[LeadTransition]:
    query = (sa.select(LeadTransition).where(LeadTransition.lead_id == lead_id)
             .order_by(LeadTransition.id))
    async with db.sessions() as session:
        return list((await session.execute(query)).scalars())


CANDIDATES_PER_LEAD = 50  # the newest alike leads looked at
DUPLICATES_REPORTED = 10  # of which at most this many are named

ALIKE_COLUMNS = ("id", "title", "description", "status", "cluster", "target_market",
                 "submitted_by", "counterpart_key", "counterpart_domain", "submitted_at")


# Words travel to the statements as one text, a word a line, split again in SQL: a list
# parameter costs asyncpg two isinstance checks against ABCs for each word.
WORD_SEPARATOR = "\n"


def words_text(words: list[str] | None) -> str | None:
    """Words as the statements take them (None for none)."""
    return WORD_SEPARATOR.join(words) if words else None


def words_array(text: str) -> str:
    """The SQL that turns a `words_text` value (the SQL of a parameter) back into text[]."""
    return f"string_to_array({text}, E'\\n')"


def alike(*, cluster: str, market: str, statuses: str, lookback: str, words: str, key: str,
          website: str) -> str:
    """Two CTEs, `hits` and `alike`: the newest open leads of the cluster and market that share
    the counterpart, the website, or every telling word of the title (`words`, scoped as
    `domain.alike_words` scopes them; arguments: the SQL of each value, a parameter);
    `domain.duplicate_reason` decides which are duplicates.

    The hits come from the three indexes, then each is fetched by its id alone (OFFSET 0 keeps
    the other conditions out of that lookup) and kept if of the cluster and market. Left to
    choose, a planner would read every lead of the cluster and market instead, as soon as its
    statistics (or the table, when a cached plan was made) were small."""
    columns = ", ".join(ALIKE_COLUMNS)
    return f"""
        hits AS MATERIALIZED (
            SELECT id FROM leads WHERE alike_words @> {words_array(words)}
            UNION SELECT id FROM leads WHERE counterpart_key = {key}
            UNION SELECT id FROM leads WHERE counterpart_domain = {website}
        ), alike AS (
            SELECT lead.* FROM hits, LATERAL (
                SELECT {columns} FROM leads WHERE leads.id = hits.id OFFSET 0
            ) AS lead
            WHERE lead.cluster = {cluster} AND lead.target_market = {market}
              AND lead.status = ANY({statuses}) AND lead.submitted_at > now() - {lookback}
            ORDER BY lead.submitted_at DESC
            LIMIT {CANDIDATES_PER_LEAD}
        )"""


DUPLICATE_CANDIDATES = f"""
    WITH {alike(cluster="$1", market="$2", statuses="$3::text[]", lookback="$4::interval",
                words="$5::text", key="$6", website="$7")}
    SELECT * FROM alike ORDER BY submitted_at DESC"""


def title_words(lead: NewLead) -> list[str] | None:
    """The scoped words every look-alike of `lead` holds; None if its title has no telling
    word (an empty list would be held by every lead)."""
    return domain.alike_words(cluster=lead.cluster, market=lead.target_market,
                              words=dict.fromkeys(domain.title_terms(lead.title))) or None


def alike_arguments(lead: NewLead) -> list[Any]:
    """The values `alike` needs besides the lead's own columns."""
    return [words_text(title_words(lead)), list(domain.OPEN_STATUSES), DUPLICATE_LOOKBACK]


async def duplicate_candidates(
    conn: asyncpg.Connection, lead: NewLead, *, viewer: Caller
) -> list[dict[str, Any]]:
    """Open leads of the same cluster and market that look like `lead`, with the reason."""
    words, statuses, lookback = alike_arguments(lead)
    rows = await conn.fetch(DUPLICATE_CANDIDATES, lead.cluster, lead.target_market, statuses,
                            lookback, words, lead.counterpart_key, lead.counterpart_domain)
    return duplicates_among(lead, rows, viewer=viewer)


def duplicates_among(lead: NewLead, rows: list[asyncpg.Record], *,
                     viewer: Caller) -> list[dict[str, Any]]:
    """The rows (leads alike, newest first) that are duplicates of `lead`, with the reason.

    A scout learns that a colleague reported something alike, not which lead: its id and
    title are withheld (the cluster's managers see both and can link the two)."""
    found = []
    for old in (NewLead(**{c: row[c] for c in ALIKE_COLUMNS}) for row in rows):
        if why := domain.duplicate_reason(lead, old):
            shown = domain.visible_to(old, viewer)
            found.append({"id": old.id if shown else None,
                          "title": old.title if shown else WITHHELD,
                          "status": old.status, "why": why})
    return found[:DUPLICATES_REPORTED]


@dataclass(frozen=True)
class LeadFilter:
    status: str | None = None
    market: str | None = None
    kind: str | None = None
    application_area: str | None = None
    scout_id: UUID | None = None
    cluster: str | None = None
    submitted_from: date | None = None
    submitted_to: date | None = None
    q: str | None = None
    stale: bool | None = None


def encode_cursor(lead: Lead) -> str:
    raw = json.dumps([lead.submitted_at.isoformat(), str(lead.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, lead_id = json.loads(raw)
        return datetime.fromisoformat(at), UUID(lead_id)
    except (ValueError, TypeError) as error:
        raise Problem(400, "Invalid cursor", "Use the next_cursor of a previous page.") from error


def _visible(caller: Caller) -> sa.ColumnElement[bool]:
    if caller.role == "scout":
        return Lead.submitted_by == caller.key_id
    if caller.cluster:
        return Lead.cluster == caller.cluster
    return sa.true()


def _filtered(query: sa.Select, f: LeadFilter, *, stale_after: timedelta) -> sa.Select:
    simple = {Lead.status: f.status, Lead.target_market: f.market, Lead.kind: f.kind,
              Lead.scout_id: f.scout_id, Lead.cluster: f.cluster}
    for column, value in simple.items():
        if value is not None:
            query = query.where(column == value)
    if f.application_area:
        query = query.where(sa.literal(f.application_area) == sa.any_(Lead.application_areas))
    if f.submitted_from:
        query = query.where(Lead.submitted_at >= f.submitted_from)
    if f.submitted_to:
        # In SQL: Postgres dates reach far beyond Python's year 9999.
        query = query.where(Lead.submitted_at < sa.cast(sa.literal(f.submitted_to), sa.Date)
                            + sa.text("interval '1 day'"))
    if f.q:
        query = query.where(Lead.search.op("@@")(sa.func.websearch_to_tsquery("simple", f.q)))
    if f.stale is not None:
        stale = sa.and_(Lead.status.in_(domain.OPEN_STATUSES),
                        Lead.last_activity_at < datetime.now(UTC) - stale_after)
        query = query.where(stale if f.stale else sa.not_(stale))
    return query


async def lead_page(
    db: Database, *, caller: Caller, filters: LeadFilter, cursor: str | None, limit: int,
    stale_after: timedelta,
) -> tuple[list[Lead], str | None]:
    """One page of leads, newest first, stable under inserts (keyset on submitted_at, id)."""
    query = _filtered(sa.select(Lead).where(_visible(caller)), filters, stale_after=stale_after)
    if cursor:
        at, lead_id = decode_cursor(cursor)
        query = query.where(sa.tuple_(Lead.submitted_at, Lead.id) < sa.tuple_(at, lead_id))
    query = query.order_by(Lead.submitted_at.desc(), Lead.id.desc()).limit(limit + 1)
    async with db.sessions() as session:
        leads = list((await session.execute(query)).scalars())
    more = len(leads) > limit
    return leads[:limit], encode_cursor(leads[limit - 1]) if more else None


async def scouts(db: Database, *, caller: Caller) -> list[Scout]:
    """A cluster's scouts for its managers; everyone's for ops and admin; oneself for a scout."""
    query = sa.select(Scout).order_by(Scout.name, Scout.id)
    if caller.role == "scout":
        query = query.where(Scout.key_id == caller.key_id)
    elif caller.cluster:
        query = query.where(Scout.home_cluster == caller.cluster)
    async with db.sessions() as session:
        return list((await session.execute(query)).scalars())


async def attachments(db: Database, lead_id: UUID) -> list[LeadAttachment]:
    query = (sa.select(LeadAttachment).where(LeadAttachment.lead_id == lead_id)
             .options(sa.orm.defer(LeadAttachment.data)).order_by(LeadAttachment.uploaded_at))
    async with db.sessions() as session:
        return list((await session.execute(query)).scalars())


async def attachment(db: Database, lead_id: UUID, attachment_id: UUID) -> LeadAttachment | None:
    async with db.sessions() as session:
        found = await session.get(LeadAttachment, attachment_id)
    return found if found is not None and found.lead_id == lead_id else None
