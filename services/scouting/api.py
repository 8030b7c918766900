"""Scouting's HTTP API (/v1): entry points only translate to commands and shape answers."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse

from services.scouting import domain, handlers, queries
from services.scouting.models import LeadCreate, LeadPublic
from shared import idempotency
from shared.auth import Caller, require_role
from shared.problems import Problem
from shared.uow import transaction

router = APIRouter(prefix="/v1", tags=["leads"])
Submitter = Annotated[Caller, Depends(require_role("scout", "partner", "manager"))]
Reader = Annotated[Caller, Depends(require_role("scout", "partner", "manager", "ops", "admin"))]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


@router.post("/leads", status_code=201, response_model=LeadPublic,
             responses={409: {"description": "Idempotency-Key reused"}})
async def submit_lead(
    body: LeadCreate, caller: Submitter, request: Request, idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Submit a lead; with an Idempotency-Key, a retry returns the first answer."""
    async with transaction(request.app.state.db) as tx:
        prior = await idempotency.claim(tx, api_key_id=caller.key_id, key=idempotency_key,
                                        body=body.model_dump())
        if prior is not None:
            return prior
        lead = await handlers.submit_lead(tx, handlers.SubmitLead(lead=body, caller=caller))
        answer = LeadPublic.model_validate(lead).model_dump(mode="json")
        await idempotency.remember(tx, api_key_id=caller.key_id, key=idempotency_key,
                                   status_code=201, body=answer)
    return JSONResponse(answer, status_code=201, headers={"Location": f"/v1/leads/{lead.id}"})


@router.get("/leads/{lead_id}", response_model=LeadPublic)
async def get_lead(lead_id: UUID, caller: Reader, request: Request) -> LeadPublic:
    """One lead, if the caller may see it (others' leads answer 404, not 403)."""
    lead = await queries.lead_by_id(request.app.state.db, lead_id)
    if lead is None or not domain.visible_to(lead, caller):
        raise Problem(404, "Not found", f"No lead {lead_id} visible to this key.")
    return LeadPublic.model_validate(lead)
