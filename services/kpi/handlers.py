"""KPI's use cases: every consumed event becomes a fact."""

from typing import Any

from services.kpi.domain import fact_dimensions
from services.kpi.models import Fact
from shared.events import Event
from shared.uow import Transaction


async def record_fact(tx: Transaction, event: Event[Any]) -> None:
    """Append the event to the fact log (the inbox has already made it unique)."""
    data = event.data.model_dump(mode="json")
    cluster, market = fact_dimensions(data)
    tx.session.add(Fact(
        event_id=event.id, event_type=event.type, source=event.data.source, subject=event.subject,
        cluster=cluster, market=market, occurred_at=event.time, data=data,
    ))
