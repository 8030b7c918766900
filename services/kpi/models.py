"""KPI's tables and API shapes: the append-only fact log, and KPI values."""

from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
import sqlmodel
from pydantic import BaseModel
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Column, SQLModel


class Fact(SQLModel, table=True):
    """One consumed event, kept for ever: every KPI is a query over these."""

    __tablename__ = "facts"

    event_id: UUID = sqlmodel.Field(primary_key=True)
    event_type: str = sqlmodel.Field(index=True)
    source: str
    subject: str = sqlmodel.Field(index=True)
    cluster: str | None = sqlmodel.Field(default=None, index=True)
    market: str | None = None
    occurred_at: datetime = sqlmodel.Field(
        sa_column=Column(sa.DateTime(timezone=True), nullable=False))
    recorded_at: datetime | None = sqlmodel.Field(
        default=None, sa_column=Column(sa.DateTime(timezone=True), nullable=False,
                                       server_default=sa.func.clock_timestamp()))
    data: dict[str, Any] = sqlmodel.Field(sa_column=Column(JSONB, nullable=False))


class KpiValue(BaseModel):
    key: str
    title: str
    value: int
    target: int | None
    programme_kpi: str | None


class KpiReport(BaseModel):
    """KPI values for one period, cluster and market, as they stood at `as_of`."""

    period_from: datetime | None
    period_to: datetime | None
    cluster: str | None
    market: str | None
    as_of: datetime
    kpis: list[KpiValue]


class FactPublic(BaseModel):
    event_id: UUID
    event_type: str
    source: str
    subject: str
    occurred_at: datetime
    recorded_at: datetime

    model_config = {"from_attributes": True}
