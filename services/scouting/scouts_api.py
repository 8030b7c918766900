"""Scouting's HTTP API for scouts themselves: who they are, and their managers' controls."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request

from services.scouting import handlers, queries
from services.scouting.api import Manager
from services.scouting.models import ScoutPublic, ScoutUpdate
from shared.auth import Caller, require_role
from shared.openapi import problem
from shared.uow import transaction

router = APIRouter(prefix="/v1", tags=["scouts"])
Reader = Annotated[Caller, Depends(require_role("scout", "manager", "ops", "admin"))]


@router.get("/scouts", response_model=list[ScoutPublic])
async def list_scouts(caller: Reader, request: Request) -> list[ScoutPublic]:
    """Scouts known to scouting (registered when their key is first used)."""
    return [ScoutPublic.model_validate(s)
            for s in await queries.scouts(request.app.state.db, caller=caller)]


@router.patch("/scouts/{scout_id}", response_model=ScoutPublic,
              responses={404: problem(404, "No such scout in this key's cluster")})
async def update_scout(scout_id: UUID, body: ScoutUpdate, caller: Manager,
                       request: Request) -> ScoutPublic:
    """Rename a scout, set the market they cover, or deactivate them."""
    async with transaction(request.app.state.db) as tx:
        scout = await handlers.update_scout(tx, scout_id, body, caller)
    return ScoutPublic.model_validate(scout)
