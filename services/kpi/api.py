"""KPI's HTTP API (/v1): programme KPIs for any period, cluster and market, and the ops view."""

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from services.kpi import queries
from services.kpi.models import FactPublic, KpiReport
from shared.auth import Caller, require_role
from shared.bodies import Market, Moment
from shared.problems import Problem

router = APIRouter(prefix="/v1", tags=["kpis"])
Reader = Annotated[Caller, Depends(require_role("partner", "manager", "ops", "admin"))]
Ops = Annotated[Caller, Depends(require_role("ops", "admin"))]
Cluster = Annotated[str | None, Query(max_length=64, description="Cluster code.")]


@router.get("/kpis", response_model=KpiReport)
async def kpi_report(
    caller: Reader, request: Request, cluster: Cluster = None, market: Market | None = None,
    period_from: Annotated[Moment | None, Query(alias="from")] = None,
    period_to: Annotated[Moment | None, Query(alias="to")] = None,
    as_of: Annotated[Moment | None, Query(description="Values as they stood then.")] = None,
) -> KpiReport:
    """Programme KPIs; partners and managers see their own cluster."""
    if caller.cluster:
        if cluster not in (None, caller.cluster):
            raise Problem(403, "Forbidden", "This key reports on its own cluster only.")
        cluster = caller.cluster
    as_of = as_of or datetime.now(UTC)
    values = await queries.kpi_values(request.app.state.db, period_from=period_from,
                                      period_to=period_to, cluster=cluster, market=market,
                                      as_of=as_of)
    return KpiReport(period_from=period_from, period_to=period_to, cluster=cluster,
                     market=market, as_of=as_of, kpis=values)


@router.get("/ops/journeys/{subject}", response_model=list[FactPublic], tags=["ops"])
async def journey(subject: str, caller: Ops,
                  request: Request) -> list[FactPublic]:
    """One aggregate's path through the platform: every event about it, in order."""
    facts = await queries.journey(request.app.state.db, subject)
    return [FactPublic.model_validate(fact) for fact in facts]


@router.get("/ops/event-rates", tags=["ops"])
async def event_rates(
    caller: Ops, request: Request,
    minutes: Annotated[int, Query(ge=1, le=10080)] = 60,
) -> dict[str, int]:
    """Events recorded per type over the last `minutes`."""
    since = datetime.now(UTC) - timedelta(minutes=minutes)
    return await queries.event_counts(request.app.state.db, since=since)
