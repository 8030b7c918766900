"""KPI's consumer: every topic of the platform, every event type."""

from services.kpi import handlers
from shared.consumer import ANY_EVENT, EventConsumer
from shared.contracts import all_topics
from shared.db import Database
from shared.settings import Settings


def consumers(settings: Settings, db: Database) -> list[EventConsumer]:
    return [EventConsumer(
        settings, service="kpi", name="facts", db=db, topics=all_topics(),
        handlers={ANY_EVENT: handlers.record_fact},
    )]
