"""CRM's use cases."""

from services.crm.models import Opportunity
from shared.contracts.scouting import LeadSubmitted
from shared.events import Event
from shared.uow import Transaction


async def open_opportunity(tx: Transaction, event: Event[LeadSubmitted]) -> None:
    """A submitted lead opens an entry in its cluster's pipeline, at stage `lead`."""
    lead = event.data
    tx.session.add(Opportunity(
        lead_id=lead.lead_id, cluster=lead.cluster, target_market=lead.target_market,
        kind=lead.kind, title=lead.title, opened_at=lead.submitted_at,
    ))
