"""Matching's consumers: leads from scouting."""

from services.matching import handlers
from shared.consumer import EventConsumer, handlers_for
from shared.contracts.scouting import LeadSubmitted
from shared.db import Database
from shared.settings import Settings


def consumers(settings: Settings, db: Database) -> list[EventConsumer]:
    return [EventConsumer(
        settings, service="matching", name="leads", db=db, topics=[LeadSubmitted.topic],
        handlers=handlers_for((LeadSubmitted, handlers.record_demand)),
    )]
