"""Scouting's use cases: each takes a transaction and a command, changes state, emits events."""

from dataclasses import dataclass
from datetime import UTC, datetime

from services.scouting import domain
from services.scouting.models import Lead, LeadCreate
from shared.auth import Caller
from shared.contracts.scouting import LeadSubmitted
from shared.uow import Transaction


@dataclass(frozen=True)
class SubmitLead:
    lead: LeadCreate
    caller: Caller


async def submit_lead(tx: Transaction, command: SubmitLead) -> Lead:
    """Save a new lead in the caller's cluster and announce it."""
    body, caller = command.lead, command.caller
    lead = Lead(
        kind=body.kind, title=body.title.strip(), description=body.description.strip(),
        target_market=body.target_market, application_areas=domain.unique(body.application_areas),
        technologies=domain.normalise_technologies(body.technologies), cluster=caller.cluster,
        submitted_by=caller.key_id, submitted_at=datetime.now(UTC),
    )
    tx.session.add(lead)
    tx.emit(LeadSubmitted(
        lead_id=lead.id, kind=body.kind, title=lead.title, target_market=lead.target_market,
        cluster=lead.cluster, application_areas=lead.application_areas,
        technologies=lead.technologies, submitted_by=caller.key_id, submitted_at=lead.submitted_at,
    ))
    await tx.audit(api_key_id=caller.key_id, action="lead.submit", subject=str(lead.id))
    return lead
