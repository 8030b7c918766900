"""CRM's HTTP API (/v1)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from services.crm import queries
from services.crm.models import OpportunityPublic
from shared.auth import Caller, require_role

router = APIRouter(prefix="/v1", tags=["pipeline"])
Reader = Annotated[Caller, Depends(require_role("partner", "manager", "ops", "admin"))]


@router.get("/pipeline", response_model=list[OpportunityPublic])
async def list_pipeline(
    caller: Reader, request: Request,
    stage: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[OpportunityPublic]:
    """The opportunity pipeline, newest first."""
    rows = await queries.pipeline(request.app.state.db, caller=caller, stage=stage, limit=limit)
    return [OpportunityPublic.model_validate(row) for row in rows]
