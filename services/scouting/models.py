"""Scouting's tables and API shapes: the lead family (LeadCreate, Lead, LeadPublic)."""

from datetime import datetime
from typing import Literal
from uuid import UUID, uuid4

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.dialects.postgresql import ARRAY
import sqlmodel
from sqlmodel import Column, SQLModel

from shared.contracts.scouting import LeadKind

Market = Literal["CA", "US-EAST", "US-WEST", "IL", "KR", "JP", "SG", "MY", "AU", "NZ"]
ApplicationArea = Literal[
    "diagnostics", "interventional_imaging", "therapy", "sensing", "regenerative_medicine",
    "biomaterials", "digital_health", "advanced_manufacturing",
]
LeadStatus = Literal["submitted", "qualified", "rejected", "duplicate", "matched", "converted",
                     "closed"]


class LeadCreate(BaseModel):
    """What a scout or partner system submits. Status, owner and ids are set by the service."""

    model_config = ConfigDict(extra="forbid")

    kind: LeadKind = Field(description="What was found.", examples=["market_need"])
    title: str = Field(min_length=3, max_length=200, description="Short title.",
                       examples=["Handheld OCT for ENT clinics"])
    description: str = Field("", max_length=5000, description="What the need or candidate is.")
    target_market: Market = Field(description="Target market code.", examples=["JP"])
    application_areas: list[ApplicationArea] = Field(
        default_factory=list, max_length=8, description="Health-photonics application areas.",
        examples=[["diagnostics"]])
    technologies: list[str] = Field(
        default_factory=list, max_length=20, description="Free tags, normalised on save.",
        examples=[["optical coherence tomography"]])


class Lead(SQLModel, table=True):
    """A lead as scouting keeps it."""

    __tablename__ = "leads"

    id: UUID = sqlmodel.Field(default_factory=uuid4, primary_key=True)
    kind: str
    title: str
    description: str
    target_market: str = sqlmodel.Field(index=True)
    application_areas: list[str] = sqlmodel.Field(sa_column=Column(ARRAY(sa.Text), nullable=False))
    technologies: list[str] = sqlmodel.Field(sa_column=Column(ARRAY(sa.Text), nullable=False))
    status: str = sqlmodel.Field(default="submitted", index=True)
    cluster: str = sqlmodel.Field(index=True)
    submitted_by: UUID = sqlmodel.Field(index=True)
    submitted_at: datetime = sqlmodel.Field(sa_column=Column(sa.DateTime(timezone=True), nullable=False))


class LeadPublic(BaseModel):
    """A lead as the API shows it."""

    id: UUID
    kind: LeadKind
    title: str
    description: str
    target_market: Market
    application_areas: list[ApplicationArea]
    technologies: list[str]
    status: LeadStatus
    cluster: str
    submitted_by: UUID
    submitted_at: datetime

    model_config = ConfigDict(from_attributes=True)
