"""KPI's read side: KPI values and the ops view, computed from the fact log."""

from datetime import datetime

import sqlalchemy as sa

from services.kpi.domain import DEFINITIONS
from services.kpi.models import Fact, KpiValue
from shared.db import Database


def _in_scope(query: sa.Select, *, period_from: datetime | None, period_to: datetime | None,
              cluster: str | None, market: str | None, as_of: datetime) -> sa.Select:
    query = query.where(Fact.recorded_at <= as_of)
    if period_from:
        query = query.where(Fact.occurred_at >= period_from)
    if period_to:
        query = query.where(Fact.occurred_at < period_to)
    if cluster:
        query = query.where(Fact.cluster == cluster)
    if market:
        query = query.where(Fact.market == market)
    return query


async def kpi_values(db: Database, **scope) -> list[KpiValue]:
    """Every defined KPI for the scope, in one query."""
    types = sorted({t for definition in DEFINITIONS for t in definition.counts})
    query = _in_scope(
        sa.select(Fact.event_type, sa.func.count()).where(Fact.event_type.in_(types))
        .group_by(Fact.event_type), **scope)
    async with db.sessions() as session:
        counts = dict((await session.execute(query)).all())
    return [
        KpiValue(key=d.key, title=d.title, value=sum(counts.get(t, 0) for t in d.counts),
                 target=d.target, programme_kpi=d.programme_kpi)
        for d in DEFINITIONS
    ]


async def journey(db: Database, subject: str) -> list[Fact]:
    """Every event about one aggregate (a lead, say), in the order they happened."""
    query = sa.select(Fact).where(Fact.subject == subject).order_by(Fact.occurred_at)
    async with db.sessions() as session:
        return list((await session.execute(query)).scalars())


async def event_counts(db: Database, *, since: datetime) -> dict[str, int]:
    query = (sa.select(Fact.event_type, sa.func.count()).where(Fact.recorded_at >= since)
             .group_by(Fact.event_type))
    async with db.sessions() as session:
        return dict((await session.execute(query)).all())
