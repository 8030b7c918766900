"""CRM's tables and API shapes: the opportunity pipeline, opened by leads from scouting."""

from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
import sqlmodel
from pydantic import BaseModel, ConfigDict
from sqlmodel import Column, SQLModel


class Opportunity(SQLModel, table=True):
    """An entry of a cluster's pipeline; it starts as a lead and moves towards an agreement."""

    __tablename__ = "opportunities"

    lead_id: UUID = sqlmodel.Field(primary_key=True)
    cluster: str = sqlmodel.Field(index=True)
    target_market: str
    kind: str
    title: str
    stage: str = "lead"
    opened_at: datetime = sqlmodel.Field(
        sa_column=Column(sa.DateTime(timezone=True), nullable=False))


class OpportunityPublic(BaseModel):
    lead_id: UUID
    cluster: str
    target_market: str
    kind: str
    title: str
    stage: str
    opened_at: datetime

    model_config = ConfigDict(from_attributes=True)
