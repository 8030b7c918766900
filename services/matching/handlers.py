"""Matching's use cases."""


from services.matching.models import Demand
from shared.contracts.scouting import LeadSubmitted
from shared.events import Event
from shared.uow import Transaction


async def record_demand(tx: Transaction, event: Event[LeadSubmitted]) -> None:
    """A submitted lead becomes a market demand that offerings can be matched to."""
    lead = event.data
    tx.session.add(Demand(
        lead_id=lead.lead_id, kind=lead.kind, title=lead.title, target_market=lead.target_market,
        cluster=lead.cluster, application_areas=list(lead.application_areas),
        technologies=list(lead.technologies), reported_at=lead.submitted_at,
    ))


