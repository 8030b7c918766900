"""Matching's HTTP API (/v1)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from services.matching import queries
from services.matching.models import DemandPublic
from shared.auth import Caller, require_role

router = APIRouter(prefix="/v1", tags=["demands"])
Reader = Annotated[Caller, Depends(require_role("partner", "manager", "ops", "admin"))]


@router.get("/demands", response_model=list[DemandPublic])
async def list_demands(
    caller: Reader, request: Request,
    market: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[DemandPublic]:
    """Market demands known to matching, newest first."""
    rows = await queries.demands(request.app.state.db, caller=caller, market=market, limit=limit)
    return [DemandPublic.model_validate(row) for row in rows]
