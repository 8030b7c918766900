"""Scouting's consumers: matches move qualified leads on; crm's contacts end scouting's copy."""

from services.scouting import handlers
from shared.consumer import EventConsumer, handlers_for
from shared.contracts import crm, matching
from shared.db import Database
from shared.settings import Settings


def consumers(settings: Settings, db: Database) -> list[EventConsumer]:
    return [
        EventConsumer(
            settings, service="scouting", name="matches", db=db,
            topics=[matching.MatchProposed.topic],
            handlers=handlers_for((matching.MatchProposed, handlers.on_match),
                                  (matching.MatchAccepted, handlers.on_match)),
        ),
        EventConsumer(
            settings, service="scouting", name="contacts", db=db,
            topics=[crm.ContactEstablished.topic],
            handlers=handlers_for((crm.ContactEstablished, handlers.on_contact_established)),
        ),
    ]
