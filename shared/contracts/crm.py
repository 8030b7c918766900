"""Events published by crm (topic `crm.contacts`). Ids only: the person lives in crm."""

from typing import ClassVar
from uuid import UUID

from pydantic import Field

from shared.contracts.base import EventData


class ContactEstablished(EventData):
    """crm now holds a contact; when it came from a lead, scouting erases its own copy."""

    event_type: ClassVar[str] = "eu.lasergo.crm.contact.established.v1"
    topic: ClassVar[str] = "crm.contacts"
    source: ClassVar[str] = "/gvn/crm"

    contact_id: UUID = Field(description="The contact's id in crm (the aggregate id).")
    cluster: str = Field(description="The cluster that holds the contact.")
    lead_id: UUID | None = Field(None, description="The lead whose counterpart this contact is.")

    def aggregate_id(self) -> str:
        return str(self.contact_id)
