"""The unit of work: one transaction holding a domain change and the events it caused."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import asyncpg
import sqlalchemy as sa
from opentelemetry import propagate
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts import EventData
from shared.db import Database
from shared.events import Event, InvalidEvent, validate_outgoing
from shared.tables import audit_log, outbox


class Transaction:
    """What handlers receive: the session, and `emit` to record an event in the outbox."""

    def __init__(self, session: AsyncSession, *, cause: Event[Any] | None = None) -> None:
        self.session = session
        self.cause = cause
        self._pending: list[dict[str, Any]] = []

    def emit(self, data: EventData) -> Event[Any]:
        """Record an event; it is written with the state change and published after commit."""
        event, row = outbox_row(data, cause=self.cause)
        self._pending.append(row)
        return event

    async def driver_connection(self) -> asyncpg.Connection:
        """The asyncpg connection under this transaction, for a hot path written in SQL."""
        connection = await self.session.connection()
        driver = (await connection.get_raw_connection()).driver_connection
        if not driver.is_in_transaction():
            # SQLAlchemy sends BEGIN with its first statement: send one, so that what follows
            # on the bare connection is inside the transaction instead of committing alone.
            await connection.exec_driver_sql("SELECT 1")
        return driver

    async def audit(self, *, api_key_id: UUID | None, action: str, subject: str) -> None:
        """Who did what to which record; committed with the change itself."""
        await self.session.execute(
            sa.insert(audit_log).values(api_key_id=api_key_id, action=action, subject=subject)
        )

    async def flush_events(self) -> bool:
        """Write the recorded events to the outbox; True if there were any."""
        if not self._pending:
            return False
        await self.session.execute(sa.insert(outbox), self._pending)
        self._pending.clear()
        return True


def outbox_row(data: EventData, *, cause: Event[Any] | None = None) -> tuple[Event[Any], dict]:
    """The event for `data` and the outbox row that carries it, with the current trace."""
    payload = validate_outgoing(data)
    carrier: dict[str, str] = {}
    propagate.inject(carrier)  # the trace this change belongs to rides with the row
    event = Event(
        data=data,
        correlation_id=cause.correlation_id if cause else None,
        causation_id=str(cause.id) if cause else None,
        trace=carrier,
    )
    return event, {
        "event_id": event.id,
        "topic": data.topic,
        "key": event.subject,
        "event_type": event.type,
        "headers": event.headers(),
        "payload": payload,
    }


@asynccontextmanager
async def transaction(
    db: Database, *, cause: Event[Any] | None = None
) -> AsyncIterator[Transaction]:
    """Open a unit of work; on success the change and its outbox rows commit together."""
    async with db.session() as session:
        tx = Transaction(session, cause=cause)
        yield tx
        wrote_events = await tx.flush_events()
    if wrote_events:
        db.outbox_written()


__all__ = ["InvalidEvent", "Transaction", "outbox_row", "transaction"]
