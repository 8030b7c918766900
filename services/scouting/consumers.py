"""Scouting's consumers. None yet: match.* events (to move a lead to matched) come with matching."""

from shared.consumer import EventConsumer
from shared.db import Database
from shared.settings import Settings


def consumers(settings: Settings, db: Database) -> list[EventConsumer]:
    return []
