"""Events published by scouting (topic `scouting.leads`). None carries personal data: no
counterpart contact, no free text that a scout may have typed a name into."""

from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from shared.contracts.base import EventData

LeadKind = Literal[
    "market_need", "distributor_candidate", "partner_candidate", "intermediary", "event_opportunity"
]


class LeadEvent(EventData):
    """Every lead event: which lead, in which cluster and market."""

    topic: ClassVar[str] = "scouting.leads"
    source: ClassVar[str] = "/gvn/scouting"

    lead_id: UUID = Field(description="The lead's id (the aggregate id).")
    cluster: str = Field(description="Owning cluster code.", examples=["LITEK"])
    target_market: str = Field(description="Market code, e.g. CA, US-EAST, JP.", examples=["JP"])

    def aggregate_id(self) -> str:
        return str(self.lead_id)


class LeadSubmitted(LeadEvent):
    """A scout or partner system reported a lead from a target market."""

    event_type: ClassVar[str] = "eu.lasergo.scouting.lead.submitted.v1"

    kind: LeadKind = Field(description="What the scout found.", examples=["market_need"])
    title: str = Field(max_length=200, description="Short title.", examples=["OCT probe for ENT"])
    application_areas: list[str] = Field(default_factory=list, description="Application areas.")
    technologies: list[str] = Field(default_factory=list, description="Normalised tags.")
    submitted_by: UUID = Field(description="The API key that submitted the lead (not a person).")
    submitted_at: datetime = Field(description="When scouting accepted the lead.")
    counterpart_country: str | None = Field(None, description="ISO country of the counterpart.")
    urgency: Literal["low", "medium", "high"] | None = Field(None, description="Urgency.")
    lead_source: str | None = Field(None, description="mission, event, desk_research or referral.")
    min_trl: int | None = Field(None, ge=1, le=9, description="Least TRL that answers it.")
    requires_clearance: bool | None = Field(None, description="Needs a market clearance.")


class LeadQualified(LeadEvent):
    """A cluster manager judged the lead worth matching."""

    event_type: ClassVar[str] = "eu.lasergo.scouting.lead.qualified.v1"
    kind: LeadKind
    application_areas: list[str] = Field(default_factory=list)
    technologies: list[str] = Field(default_factory=list)
    title: str | None = Field(None, max_length=200, description="Short title.")
    min_trl: int | None = Field(None, ge=1, le=9, description="Least TRL that answers it.")
    requires_clearance: bool | None = Field(None, description="Needs a market clearance.")


class LeadRejected(LeadEvent):
    """A cluster manager turned the lead down; `reason` is a category, not free text."""

    event_type: ClassVar[str] = "eu.lasergo.scouting.lead.rejected.v1"
    reason: str = Field(description="Why, as a category: out_of_scope, insufficient_evidence, "
                        "not_actionable or other.")


class LeadMarkedDuplicate(LeadEvent):
    """The lead repeats an earlier one."""

    event_type: ClassVar[str] = "eu.lasergo.scouting.lead.duplicate.v1"
    duplicate_of: UUID = Field(description="The lead it repeats.")


class LeadConverted(LeadEvent):
    """The lead became a business case, agreement or sale."""

    event_type: ClassVar[str] = "eu.lasergo.scouting.lead.converted.v1"


class LeadClosed(LeadEvent):
    """The lead was closed without conversion."""

    event_type: ClassVar[str] = "eu.lasergo.scouting.lead.closed.v1"
    reason: str = Field(description="Why, as a category: no_fit, counterpart_unresponsive, "
                        "lost_to_competitor, converted_elsewhere or other.")
