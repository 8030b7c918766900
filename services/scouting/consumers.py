"""Scouting's consumer: matches move qualified leads on; crm's contacts end scouting's copy."""

from services.scouting import handlers
from shared.consumer import EventConsumer, handlers_for
from shared.contracts import crm, matching
from shared.db import Database
from shared.settings import Settings


def consumers(settings: Settings, db: Database) -> list[EventConsumer]:
    # One consumer for both topics: each group member polls the broker, so fewer is cheaper.
    return [EventConsumer(
        settings, service="scouting", name="events", db=db,
        topics=[matching.MatchProposed.topic, crm.ContactEstablished.topic],
        handlers=handlers_for((matching.MatchProposed, handlers.on_match),
                              (matching.MatchAccepted, handlers.on_match),
                              (crm.ContactEstablished, handlers.on_contact_established)),
    )]
