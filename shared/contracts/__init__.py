"""Event contracts: one module per producing service; the registry maps CloudEvents types to them.

Schemas (JSON Schema, AsyncAPI) are generated from these models, never written twice.
"""

from shared.contracts import crm, matching, scouting
from shared.contracts.base import EventData

CONTRACTS: dict[str, type[EventData]] = {
    model.event_type: model
    for model in (
        scouting.LeadSubmitted, scouting.LeadQualified, scouting.LeadRejected,
        scouting.LeadMarkedDuplicate, scouting.LeadConverted, scouting.LeadClosed,
        matching.MatchProposed, matching.MatchAccepted,
        crm.ContactEstablished,
    )
}


def contract_for(event_type: str) -> type[EventData]:
    """The data model of an event type; KeyError names the unknown type."""
    try:
        return CONTRACTS[event_type]
    except KeyError:
        raise KeyError(f"unknown event type {event_type!r}") from None


def all_topics() -> list[str]:
    """Every aggregate stream the platform publishes to."""
    return sorted({model.topic for model in CONTRACTS.values()})


__all__ = ["CONTRACTS", "EventData", "all_topics", "contract_for"]
