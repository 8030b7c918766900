"""Matching's tables and API shapes: market demands, learnt from scouting's leads."""

from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
import sqlmodel
from pydantic import BaseModel, ConfigDict
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Column, SQLModel


class Demand(SQLModel, table=True):
    """A need or candidate in a target market that SME offerings can be matched against."""

    __tablename__ = "demands"

    lead_id: UUID = sqlmodel.Field(primary_key=True)
    kind: str
    title: str
    target_market: str = sqlmodel.Field(index=True)
    cluster: str = sqlmodel.Field(index=True)
    application_areas: list[str] = sqlmodel.Field(sa_column=Column(ARRAY(sa.Text), nullable=False))
    technologies: list[str] = sqlmodel.Field(sa_column=Column(ARRAY(sa.Text), nullable=False))
    reported_at: datetime = sqlmodel.Field(
        sa_column=Column(sa.DateTime(timezone=True), nullable=False))


class DemandPublic(BaseModel):
    lead_id: UUID
    kind: str
    title: str
    target_market: str
    cluster: str
    application_areas: list[str]
    technologies: list[str]
    reported_at: datetime

    model_config = ConfigDict(from_attributes=True)
