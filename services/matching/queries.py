"""Matching's read side."""

import sqlalchemy as sa

from services.matching.models import Demand
from shared.auth import Caller
from shared.db import Database


async def demands(db: Database, *, caller: Caller, market: str | None, limit: int) -> list[Demand]:
    """Newest first; partners and managers see their own cluster's demands."""
    query = sa.select(Demand).order_by(Demand.reported_at.desc(), Demand.lead_id).limit(limit)
    if caller.cluster:
        query = query.where(Demand.cluster == caller.cluster)
    if market:
        query = query.where(Demand.target_market == market)
    async with db.sessions() as session:
        return list((await session.execute(query)).scalars())
