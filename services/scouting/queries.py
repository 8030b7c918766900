"""Scouting's read side: lead lookup, filtered search with cursor pages, duplicate candidates."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

import asyncpg
import sqlalchemy as sa
import sqlalchemy.orm
from sqlalchemy.dialects.postgresql import TSQUERY

from services.scouting import domain
from services.scouting.models import Lead, LeadAttachment, LeadTransition, NewLead, Scout
from shared.auth import Caller
from shared.db import Database

DUPLICATE_LOOKBACK = timedelta(days=365)
# The leads a new one may repeat: open, and reported within the lookback. Constants, so they
# are written into the statements.
OPEN_SQL = ", ".join(f"'{status}'" for status in sorted(domain.OPEN_STATUSES))
LOOKBACK_SQL = f"interval '{DUPLICATE_LOOKBACK.days} days'"
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

# What `duplicates` tells of each duplicate.
DUPLICATE_COLUMNS = ("id", "title", "status", "cluster", "submitted_by", "submitted_at", "why")


# Lists (words, title keys, tags, links) travel to the statements as one text, an element a
# line, split again in SQL: a list parameter costs asyncpg two isinstance checks against ABCs
# per element.
LIST_SEPARATOR = "\n"


def list_text(values: list[str] | list[int] | None) -> str | None:
    """A list as the statements take it: None stays NULL, an empty list an empty array."""
    return None if values is None else LIST_SEPARATOR.join(map(str, values))


def list_array(text: str, element: str = "text") -> str:
    """The SQL that turns a `list_text` value (the SQL of a parameter) back into an array."""
    return f"string_to_array({text}, E'\\n')::{element}[]"


def duplicates(*, cluster: str, market: str, title_key: str, title_subkeys: str, words: str,
               key: str, website: str) -> str:
    """Three CTEs ending in `duplicates`: the newest open leads of the cluster and market alike
    a lead, each with the reason `domain.duplicate_reason` would give (`why`). Arguments: the
    SQL of each value, a parameter; `title_key` is the lead's, `title_subkeys` and `words` are
    `list_text` of its `title_subkeys` and of its `alike_words`.

    Leads alike share the counterpart, the website, or the title's telling words, up to one
    more or one fewer (`domain.titles_alike`); they come from the four indexes alone, and
    only then are kept if of the cluster and market (MATERIALIZED keeps those conditions out
    of the lookup). Left to choose, a planner would read every lead of the cluster and market
    instead, as soon as its statistics (or the table, when a cached plan was made) were
    small. Of the newest alike, the reason is decided here, so that a lead with look-alikes
    but no duplicate is saved by the same statement: `why` mirrors `domain.duplicate_reason`,
    and is NULL for a lead only alike."""
    return f"""
        hits AS MATERIALIZED (
            SELECT id, title, status, cluster, target_market, submitted_by, submitted_at,
                   counterpart_key, counterpart_domain, alike_words
            FROM leads
            WHERE title_key = {title_key} OR title_key = ANY({list_array(title_subkeys, "bigint")})
               OR title_subkeys @> ARRAY[{title_key}]
               OR counterpart_key = {key} OR counterpart_domain = {website}
        ), alike AS (
            SELECT * FROM hits
            WHERE cluster = {cluster} AND target_market = {market}
              AND status IN ({OPEN_SQL}) AND submitted_at > now() - {LOOKBACK_SQL}
            ORDER BY submitted_at DESC
            LIMIT {CANDIDATES_PER_LEAD}
        ), duplicates AS (
            SELECT id, title, status, cluster, submitted_by, submitted_at, CASE
                WHEN counterpart_key = {key} THEN 'same_counterpart'
                WHEN counterpart_domain = {website} THEN 'same_website'
                WHEN {_similar("alike_words", list_array(words))} THEN 'similar_text'
            END AS why
            FROM alike
        )"""


def _similar(old: str, new: str) -> str:
    """`domain.similar_words` in SQL, for two arrays of distinct words: shared / (old + new -
    shared) >= t, written as (1 + t) * shared >= t * (old + new) so that the shared words are
    counted once; `new` (the SQL of an array) is evaluated once per statement."""
    shared = (f"(SELECT count(*) FROM unnest({old}) AS word "
              f"WHERE word = ANY ((SELECT {new})::text[]))")
    share = domain.SIMILAR_WORDS
    return (f"{1 + share} * {shared} >= "
            f"{share} * (cardinality({old}) + cardinality((SELECT {new})))")


DUPLICATE_CANDIDATES = f"""
    WITH {duplicates(cluster="$1", market="$2", title_key="$3::bigint", title_subkeys="$4::text",
                     words="$5::text", key="$6", website="$7")}
    SELECT * FROM duplicates WHERE why IS NOT NULL ORDER BY submitted_at DESC"""


class Owner(NamedTuple):
    """Whose a lead is, as `domain.visible_to` asks."""

    cluster: str
    submitted_by: UUID


async def duplicate_candidates(
    conn: asyncpg.Connection, lead: NewLead, *, viewer: Caller
) -> list[dict[str, Any]]:
    """Open leads of the same cluster and market that repeat `lead`, with the reason."""
    rows = await conn.fetch(DUPLICATE_CANDIDATES, lead.cluster, lead.target_market,
                            lead.title_key, list_text(lead.title_subkeys),
                            list_text(lead.alike_words), lead.counterpart_key,
                            lead.counterpart_domain)
    return shown_to(viewer, rows)


def shown_to(viewer: Caller, rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    """Duplicates (rows of `duplicates`, newest first) as the viewer may see them.

    A scout learns that a colleague reported something alike, not which lead: its id and
    title are withheld (the cluster's managers see both and can link the two)."""
    found = []
    newest = sorted(rows, key=lambda row: row["submitted_at"], reverse=True)
    for row in newest[:DUPLICATES_REPORTED]:
        shown = domain.visible_to(Owner(row["cluster"], row["submitted_by"]), viewer)
        found.append({"id": row["id"] if shown else None,
                      "title": row["title"] if shown else WITHHELD,
                      "status": row["status"], "why": row["why"]})
    return found


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


# A page ends at a lead: its submission time (microseconds since 1970) and id. Every text
# of this shape is a place in the order, so the document's pattern is the whole rule.
CURSOR_PATTERN = r"^[0-9]{1,16}\.[0-9a-f]{32}$"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_cursor(lead: Lead) -> str:
    micros = (lead.submitted_at - EPOCH) // timedelta(microseconds=1)
    return f"{micros}.{lead.id.hex}"


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    micros, lead_id = cursor.split(".")
    return EPOCH + timedelta(microseconds=int(micros)), UUID(hex=lead_id)


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
    if f.q and (words := domain.search_query(f.q)):
        # The expression of the index leads_search, word for word.
        query = query.where(sa.func.array_to_tsvector(Lead.alike_words).op("@@")(
            sa.cast(words, TSQUERY)))
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
