"""Scouting's read side: plain queries, no transaction of their own to commit."""

from uuid import UUID

from services.scouting.models import Lead
from shared.db import Database


async def lead_by_id(db: Database, lead_id: UUID) -> Lead | None:
    async with db.sessions() as session:
        return await session.get(Lead, lead_id)
