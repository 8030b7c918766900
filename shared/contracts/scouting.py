"""Events published by scouting (topic `scouting.leads`)."""

from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from shared.contracts.base import EventData

LeadKind = Literal[
    "market_need", "distributor_candidate", "partner_candidate", "intermediary", "event_opportunity"
]


class LeadSubmitted(EventData):
    """A scout or partner system reported a lead from a target market. Carries no personal data."""

    event_type: ClassVar[str] = "eu.lasergo.scouting.lead.submitted.v1"
    topic: ClassVar[str] = "scouting.leads"
    source: ClassVar[str] = "/gvn/scouting"

    lead_id: UUID = Field(description="The lead's id (the aggregate id).")
    kind: LeadKind = Field(description="What the scout found.", examples=["market_need"])
    title: str = Field(max_length=200, description="Short title.", examples=["OCT probe for ENT"])
    target_market: str = Field(description="Market code, e.g. CA, US-EAST, JP.", examples=["JP"])
    cluster: str = Field(description="Owning cluster code.", examples=["LITEK"])
    application_areas: list[str] = Field(default_factory=list, description="Application areas.")
    technologies: list[str] = Field(default_factory=list, description="Normalised tags.")
    submitted_by: UUID = Field(description="The API key that submitted the lead (not a person).")
    submitted_at: datetime = Field(description="When scouting accepted the lead.")

    def aggregate_id(self) -> str:
        return str(self.lead_id)
