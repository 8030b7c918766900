"""Events published by matching (topic `matching.matches`)."""

from typing import ClassVar
from uuid import UUID

from pydantic import Field

from shared.contracts.base import EventData


class MatchEvent(EventData):
    topic: ClassVar[str] = "matching.matches"
    source: ClassVar[str] = "/gvn/matching"

    match_id: UUID = Field(description="The match's id (the aggregate id).")
    lead_id: UUID = Field(description="The lead the offering was matched to.")
    offering_id: UUID = Field(description="The SME offering.")
    cluster: str = Field(description="The lead's cluster.")

    def aggregate_id(self) -> str:
        return str(self.match_id)


class MatchProposed(MatchEvent):
    """The mapping tool proposed an offering for a lead, with an explained score."""

    event_type: ClassVar[str] = "eu.lasergo.matching.match.proposed.v1"
    score: float = Field(ge=0, le=1, description="0..1, higher is a better fit.")


class MatchAccepted(MatchEvent):
    """A cluster manager accepted a proposed match."""

    event_type: ClassVar[str] = "eu.lasergo.matching.match.accepted.v1"
