"""Scouting's HTTP API (/v1): entry points only translate to commands and shape answers."""

import hmac
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response

from services.scouting import domain, handlers, queries
from services.scouting.models import (
    ApplicationArea,
    ContactHandover,
    DuplicateCandidate,
    Lead,
    LeadCreate,
    LeadKind,
    LeadPage,
    LeadPublic,
    LeadStatus,
    LeadUpdate,
    Market,
    NewLead,
    Transition,
    TransitionPublic,
)
from services.scouting.settings import ScoutingSettings
from shared import idempotency
from shared.auth import Caller, require_role
from shared.bodies import Day
from shared.idempotency import IdempotencyKey
from shared.openapi import problem
from shared.problems import Problem
from shared.uow import Transaction, transaction

router = APIRouter(prefix="/v1", tags=["leads"])
internal = APIRouter(prefix="/internal/v1", tags=["internal"], include_in_schema=True)

submitter = require_role("scout", "partner", "manager")
Submitter = Annotated[Caller, Depends(submitter)]
Reader = Annotated[Caller, Depends(require_role("scout", "partner", "manager", "ops", "admin"))]
Editor = Annotated[Caller, Depends(require_role("scout", "partner", "manager", "admin"))]
Manager = Annotated[Caller, Depends(require_role("manager", "admin"))]


# What shared.openapi cannot tell from a route: the problems particular to leads.
NO_LEAD = {404: problem(404, "No such lead (or not yours)")}
CONFLICT = {409: problem(409, "Conflict with the lead's state")}
# Links from a lead's id, in an answer, to what can be done with the lead (stateful clients
# and fuzzers follow them to real records).
LEAD_LINKS = {name: {"operationId": operation, "parameters": {"lead_id": "$response.body#/id"}}
              for name, operation in {"GetLead": "get_lead", "UpdateLead": "update_lead",
                                      "TransitionLead": "transition_lead",
                                      "LeadHistory": "lead_history", "RenewLead": "renew_lead",
                                      "ListAttachments": "list_attachments"}.items()}


def public_lead(lead: Lead | NewLead, settings: ScoutingSettings) -> LeadPublic:
    """The lead as the API shows it: never the contact, only whether one is held."""
    stale = domain.is_stale(status=lead.status, last_activity_at=lead.last_activity_at,
                            now=datetime.now(UTC),
                            after=timedelta(days=settings.lead_stale_after_days))
    columns = lead.model_dump() if isinstance(lead, Lead) else vars(lead)
    return LeadPublic.model_validate(
        {**columns, "has_contact": lead.contact_sealed is not None, "stale": stale})


def present(lead: Lead | NewLead, settings: ScoutingSettings) -> dict[str, Any]:
    """`public_lead` as JSON-ready data."""
    return public_lead(lead, settings).model_dump(mode="json")


async def _idempotent_post(
    request: Request, caller: Caller, key: str | None, body: Any,
    change: Callable[[Transaction], Awaitable[tuple[int, dict[str, Any]]]],
) -> JSONResponse:
    """One transaction: claim the Idempotency-Key, make the change, remember the answer."""
    async with transaction(request.app.state.db) as tx:
        prior = await idempotency.claim(tx, api_key_id=caller.key_id, key=key, body=body)
        if prior is not None:
            return prior
        status, answer = await change(tx)
        await idempotency.remember(tx, api_key_id=caller.key_id, key=key, status_code=status,
                                   body=answer)
    headers = {"Location": f"/v1/leads/{answer['id']}"} if status == 201 else None
    return JSONResponse(answer, status_code=status, headers=headers)


@router.post("/leads", status_code=201, response_model=LeadPublic, operation_id="submit_lead",
             responses={**CONFLICT, 201: {"description": "The lead", "links": LEAD_LINKS,
                                          "headers": idempotency.LOCATION}})
async def submit_lead(body: LeadCreate, caller: Submitter, request: Request,
                      key: IdempotencyKey = None) -> Response:
    """Submit a lead. A likely duplicate (same counterpart or website in the same market, or
    near-identical text) is refused with 409 and the candidates, unless `duplicate_check` is
    `confirmed_new`."""
    settings, vault = request.app.state.settings, request.app.state.vault
    command = handlers.SubmitLead(lead=body, caller=caller)

    async def submit(conn: asyncpg.Connection) -> LeadPublic:
        try:
            lead = await handlers.submit_lead(conn, command, vault=vault)
        except handlers.LikelyDuplicate as duplicate:
            raise Problem(409, "Likely duplicate",
                          "This looks like a lead already reported. Link it, or resubmit with "
                          '"duplicate_check": "confirmed_new".',
                          candidates=[DuplicateCandidate(**c).model_dump(mode="json")
                                      for c in duplicate.candidates]) from None
        return public_lead(lead, settings)

    if key is None:  # the common case: no transaction around the one write
        db = request.app.state.db
        async with db.connection() as conn:
            lead = await submit(conn)
        db.outbox_written()
        return Response(lead.model_dump_json(), status_code=201, media_type="application/json",
                        headers={"Location": f"/v1/leads/{lead.id}"})

    async def change(tx: Transaction) -> tuple[int, dict[str, Any]]:
        return 201, (await submit(await tx.driver_connection())).model_dump(mode="json")

    return await _idempotent_post(request, caller, key, body.model_dump(mode="json"), change)


@router.post("/leads/duplicate-check", response_model=list[DuplicateCandidate])
async def check_duplicates(body: LeadCreate, caller: Submitter, request: Request) -> list[dict]:
    """The leads this one would be flagged against, without saving anything."""
    lead = NewLead(**handlers.lead_fields(body.model_copy(update={"counterpart_contact": None}),
                                          caller, vault=request.app.state.vault,
                                          now=datetime.now(UTC)))
    async with request.app.state.db.connection() as conn:
        return await queries.duplicate_candidates(conn, lead, viewer=caller)


@router.get("/leads", response_model=LeadPage)
async def list_leads(
    caller: Reader, request: Request,
    status: LeadStatus | None = None,
    market: Market | None = None,
    kind: LeadKind | None = None,
    application_area: ApplicationArea | None = None,
    scout_id: UUID | None = None,
    cluster: Annotated[str | None, Query(max_length=64)] = None,
    submitted_from: Day | None = None,
    submitted_to: Day | None = None,
    q: Annotated[str | None, Query(max_length=200, description=(
        "Words of the title, description or counterpart name, all required (small words "
        "such as 'for' are left out; `near-infrared` asks for both words); `-word` excludes, "
        "`or` between words takes either."), examples=["OCT probe -veterinary"])] = None,
    stale: bool | None = None,
    cursor: Annotated[str | None, Query(pattern=queries.CURSOR_PATTERN, description=(
        "`next_cursor` of the previous page."))] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """Leads visible to the key, newest first, filtered; follow `next_cursor` for more."""
    settings = request.app.state.settings
    filters = queries.LeadFilter(status=status, market=market, kind=kind,
                                 application_area=application_area, scout_id=scout_id,
                                 cluster=cluster, submitted_from=submitted_from,
                                 submitted_to=submitted_to, q=q, stale=stale)
    leads, next_cursor = await queries.lead_page(
        request.app.state.db, caller=caller, filters=filters, cursor=cursor, limit=limit,
        stale_after=timedelta(days=settings.lead_stale_after_days))
    return {"items": [present(lead, settings) for lead in leads], "next_cursor": next_cursor}


async def visible_lead(request: Request, lead_id: UUID, caller: Caller) -> Lead:
    """The lead, if the key may see it (others' leads answer 404, not 403)."""
    lead = await queries.lead_by_id(request.app.state.db, lead_id)
    if lead is None or not domain.visible_to(lead, caller):
        raise Problem(404, "Not found", f"No lead {lead_id} visible to this key.")
    return lead


@router.get("/leads/{lead_id}", response_model=LeadPublic, responses=NO_LEAD,
            operation_id="get_lead")
async def get_lead(lead_id: UUID, caller: Reader, request: Request) -> dict[str, Any]:
    """One lead, if the key may see it (others' leads answer 404, not 403)."""
    return present(await visible_lead(request, lead_id, caller), request.app.state.settings)


@router.patch("/leads/{lead_id}", response_model=LeadPublic, responses={**NO_LEAD, **CONFLICT},
              operation_id="update_lead")
async def update_lead(lead_id: UUID, body: LeadUpdate, caller: Editor,
                      request: Request) -> dict[str, Any]:
    """Correct an open lead's details."""
    async with transaction(request.app.state.db) as tx:
        lead = await handlers.update_lead(tx, lead_id, body, caller)
    return present(lead, request.app.state.settings)


@router.post("/leads/{lead_id}/transitions", response_model=LeadPublic,
             responses={**NO_LEAD, **CONFLICT}, operation_id="transition_lead")
async def transition_lead(lead_id: UUID, body: Transition, caller: Manager, request: Request,
                          key: IdempotencyKey = None) -> JSONResponse:
    """Move a lead: qualified, rejected (reason), duplicate (duplicate_of), converted, closed."""
    async def change(tx: Transaction) -> tuple[int, dict[str, Any]]:
        lead = await handlers.transition_lead(tx, lead_id, body, caller)
        return 200, present(lead, request.app.state.settings)

    return await _idempotent_post(request, caller, key,
                                  {"lead": str(lead_id), **body.model_dump(mode="json")}, change)


@router.get("/leads/{lead_id}/transitions", response_model=list[TransitionPublic],
            responses=NO_LEAD, operation_id="lead_history")
async def lead_history(lead_id: UUID, caller: Reader, request: Request) -> list[TransitionPublic]:
    """Every status change of the lead: who (key id), when, why."""
    await visible_lead(request, lead_id, caller)
    rows = await queries.transitions(request.app.state.db, lead_id)
    return [TransitionPublic.model_validate(row) for row in rows]


@router.post("/leads/{lead_id}/renew", response_model=LeadPublic,
             responses={**NO_LEAD, **CONFLICT}, operation_id="renew_lead")
async def renew_lead(lead_id: UUID, caller: Editor, request: Request) -> dict[str, Any]:
    """Mark a stale lead as still alive."""
    async with transaction(request.app.state.db) as tx:
        lead = await handlers.renew_lead(tx, lead_id, caller)
    return present(lead, request.app.state.settings)


async def internal_service(request: Request,
                           x_internal_token: Annotated[str, Header()] = "") -> None:
    expected = request.app.state.settings.internal_api_token
    # As bytes: compare_digest refuses str with non-ASCII characters (a header may hold them).
    if not expected or not hmac.compare_digest(x_internal_token.encode(), expected.encode()):
        raise Problem(401, "Unauthorized", "Internal endpoints need the service token.")


@internal.get("/leads/{lead_id}/counterpart-contact", response_model=ContactHandover,
              dependencies=[Depends(internal_service)],
              responses={**NO_LEAD, 401: problem(401, "No or bad service token")})
async def counterpart_contact(lead_id: UUID, request: Request) -> dict[str, Any]:
    """For crm only: the counterpart contact, so crm can create the contact it will own."""
    async with transaction(request.app.state.db) as tx:
        return await handlers.hand_over_contact(tx, lead_id, vault=request.app.state.vault)
