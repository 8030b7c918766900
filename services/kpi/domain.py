"""KPI definitions: each programme KPI written once, as the event types it counts and its target.

Only KPIs whose events the platform already produces are defined; the rest arrive with the
services that emit their events (meetings, missions, agreements: crm; matches: matching).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class KpiDefinition:
    key: str
    title: str
    counts: tuple[str, ...]  # CloudEvents types; each matching fact counts once
    target: int | None = None
    programme_kpi: str | None = None  # "KPI 1".."KPI 8" where the funder's list names it


DEFINITIONS: tuple[KpiDefinition, ...] = (
    KpiDefinition(
        key="leads_submitted",
        title="Leads reported by scouts and partner systems",
        counts=("eu.lasergo.scouting.lead.submitted.v1",),
    ),
    KpiDefinition(
        key="leads_qualified",
        title="Leads a cluster manager qualified for matching",
        counts=("eu.lasergo.scouting.lead.qualified.v1",),
    ),
    KpiDefinition(
        key="leads_converted",
        title="Leads converted into a business case, agreement or sale",
        counts=("eu.lasergo.scouting.lead.converted.v1",),
    ),
)

BY_KEY = {definition.key: definition for definition in DEFINITIONS}


def fact_dimensions(data: dict) -> tuple[str | None, str | None]:
    """The cluster and market a fact belongs to, where its event names them."""
    return data.get("cluster"), data.get("target_market") or data.get("market")
