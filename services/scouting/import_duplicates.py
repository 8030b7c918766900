"""Bulk import, the duplicate check: POST's check, for a batch of rows at once.

A POST looks for open leads of its cluster and market with the same counterpart key or domain,
or the title's telling words up to one (`domain.titles_alike`), and judges them as
`domain.duplicate_reason` does (in SQL). An import asks the same for a whole batch in two queries
(counterparts by index, titles by their keys' indexes), and finds rows accepted earlier in the
same batch, not yet saved, in memory the same way (the same keys).
"""

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.ext.asyncio import AsyncSession

from services.scouting import domain, imports, queries
from services.scouting.models import Lead, NewLead

CANDIDATE_COLUMNS = ("id", "target_market", "counterpart_key", "counterpart_domain",
                     "alike_words", "submitted_at")
SAVED = Lead.__table__


async def reject_duplicates(session: AsyncSession, rows: list[imports.Row]) -> None:
    """Turn rows that repeat an open lead (saved, or accepted earlier in the batch) into
    rejections, unless the row confirmed it is new."""
    checked = [row.lead for row in rows if row.lead and row.check_duplicates]
    saved = await saved_candidates(session, checked)
    batch = BatchLeads()
    for row in rows:
        if row.lead and row.check_duplicates:
            olds = [*batch.like(row.lead), *saved.get(row.lead.id, ())]
            found = [(old.id, why) for old in olds
                     if (why := domain.duplicate_reason(row.lead, old))]
            if found:
                row.lead, row.errors = None, [duplicate_error(found)]
        if row.lead:
            batch.add(row.lead)


def duplicate_error(found: list[tuple[UUID, str]]) -> dict[str, str]:
    listed = ", ".join(f"{lead_id} ({why})" for lead_id, why in found[:queries.DUPLICATES_REPORTED])
    return {"location": "duplicate_check",
            "message": f"Likely duplicate of open lead {listed}. Set duplicate_check to "
            "confirmed_new to import it anyway."}


async def saved_candidates(session: AsyncSession,
                           leads: list[NewLead]) -> dict[UUID, list[Any]]:
    """For every lead, newest first, the saved leads a POST of it would be checked against."""
    if not leads:
        return {}
    found: dict[UUID, dict[UUID, Any]] = defaultdict(dict)
    for lead_id, old in [*await _same_counterpart(session, leads),
                         *await _title_keys(session, leads)]:
        found[lead_id][old.id] = old
    return {lead_id: sorted(olds.values(), key=lambda old: old.submitted_at, reverse=True)
            for lead_id, olds in found.items()}


def _texts(values: list[Any]) -> sa.BindParameter:
    return sa.bindparam(None, values, type_=ARRAY(sa.Text))


def _open(leads: Any, *, cluster: str) -> sa.ColumnElement[bool]:
    return sa.and_(leads.c.cluster == cluster, leads.c.status.in_(domain.OPEN_STATUSES),
                   leads.c.submitted_at > datetime.now(UTC) - queries.DUPLICATE_LOOKBACK)


async def _same_counterpart(session: AsyncSession,
                            leads: list[NewLead]) -> Iterator[tuple[UUID, Any]]:
    """(lead id, saved lead) pairs with the same counterpart key or domain in the same market."""
    keys = sorted({lead.counterpart_key for lead in leads if lead.counterpart_key})
    domains = sorted({lead.counterpart_domain for lead in leads if lead.counterpart_domain})
    # The values as arrays: index lookups on counterpart_key and on counterpart_domain.
    query = sa.select(*(SAVED.c[name] for name in CANDIDATE_COLUMNS)).where(
        _open(SAVED, cluster=leads[0].cluster),
        SAVED.c.target_market == sa.any_(_texts(sorted({lead.target_market for lead in leads}))),
        sa.or_(SAVED.c.counterpart_key == sa.any_(_texts(keys)),
               SAVED.c.counterpart_domain == sa.any_(_texts(domains))))
    olds: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
    for old in await session.execute(query):
        olds[(old.target_market, "key", old.counterpart_key)].append(old)
        olds[(old.target_market, "domain", old.counterpart_domain)].append(old)
    return ((lead.id, old) for lead in leads for hint in _hints(lead)
            for old in olds.get(hint, ()))


async def _title_keys(session: AsyncSession,
                      leads: list[NewLead]) -> Iterator[tuple[UUID, Any]]:
    """(lead id, saved lead) pairs: per lead, the newest open leads of its market whose
    titles are alike (`domain.titles_alike`)."""
    asked = [lead for lead in leads if lead.title_key is not None]
    given = sa.func.unnest(
        _texts([str(lead.id) for lead in asked]),
        sa.bindparam(None, [lead.title_key for lead in asked], type_=ARRAY(sa.BigInteger)),
        _texts([queries.list_text(lead.title_subkeys) or "" for lead in asked]),
        _texts([lead.target_market for lead in asked]),
    ).table_valued("lead_id", "title_key", "title_subkeys", "market").render_derived(
        name="given")
    # OFFSET 0 keeps the key match a query of its own, run on the indexes, rather than a
    # filter over every lead of the market.
    shorter = sa.cast(sa.func.string_to_array(given.c.title_subkeys, queries.LIST_SEPARATOR),
                      ARRAY(sa.BigInteger))
    hits = (sa.select(SAVED).where(sa.or_(
        SAVED.c.title_key == given.c.title_key, SAVED.c.title_key == sa.any_(shorter),
        SAVED.c.title_subkeys.contains(array([given.c.title_key]))))
        .offset(0).correlate(given).subquery("hits"))
    newest = (sa.select(*(hits.c[name] for name in CANDIDATE_COLUMNS))
              .where(_open(hits, cluster=leads[0].cluster), hits.c.target_market == given.c.market)
              .order_by(hits.c.submitted_at.desc()).limit(queries.CANDIDATES_PER_LEAD).lateral())
    query = sa.select(given.c.lead_id, newest).select_from(given).join(newest, sa.true())
    return ((UUID(row.lead_id), row) for row in await session.execute(query))


def _hints(lead: NewLead, *, titles: list[tuple[str, int]] | None = None,
           ) -> list[tuple[str, str, Any]]:
    """What finds a lead's look-alikes, per market: its counterpart key and domain, and the
    title keys given ((which, key))."""
    market = lead.target_market
    hints = [(market, which, key) for which, key in titles or ()]
    if lead.counterpart_key:
        hints.append((market, "key", lead.counterpart_key))
    if lead.counterpart_domain:
        hints.append((market, "domain", lead.counterpart_domain))
    return hints


class BatchLeads:
    """Leads accepted earlier in this batch, found as the queries find saved ones."""

    def __init__(self) -> None:
        self.leads: list[NewLead] = []
        self.index: dict[tuple[str, str, Any], set[int]] = defaultdict(set)

    def add(self, lead: NewLead) -> None:
        position = len(self.leads)
        self.leads.append(lead)
        held = [("whole", lead.title_key)] if lead.title_key is not None else []
        held += [("shorter", key) for key in lead.title_subkeys or ()]
        for hint in _hints(lead, titles=held):
            self.index[hint].add(position)

    def like(self, lead: NewLead) -> list[NewLead]:
        """Candidates for `lead`, newest first."""
        hits: set[int] = set()
        asked = []
        if lead.title_key is not None:  # as domain.titles_alike: same, one more, one fewer
            asked = [("whole", lead.title_key), ("shorter", lead.title_key)]
            asked += [("whole", key) for key in lead.title_subkeys or ()]
        for hint in _hints(lead, titles=asked):
            hits |= self.index.get(hint, set())
        return [self.leads[position] for position in sorted(hits, reverse=True)]
