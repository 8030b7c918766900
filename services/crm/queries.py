"""CRM's read side."""

import sqlalchemy as sa

from services.crm.models import Opportunity
from shared.auth import Caller
from shared.db import Database


async def pipeline(
    db: Database, *, caller: Caller, stage: str | None, limit: int
) -> list[Opportunity]:
    """Newest first; partners and managers see their own cluster's pipeline."""
    query = sa.select(Opportunity).order_by(Opportunity.opened_at.desc(), Opportunity.lead_id)
    if caller.cluster:
        query = query.where(Opportunity.cluster == caller.cluster)
    if stage:
        query = query.where(Opportunity.stage == stage)
    async with db.sessions() as session:
        return list((await session.execute(query.limit(limit))).scalars())
