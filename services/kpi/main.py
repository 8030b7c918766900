"""KPI: the append-only fact log of every event, programme KPIs, and the ops view of event flow."""

from fastapi import FastAPI

from services.kpi.api import router
from services.kpi.consumers import consumers
from shared.service import create_service_app
from shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or get_settings(), service="kpi", title="GVN kpi",
        description="Programme KPIs for any period, cluster and market; the ops view of events.",
        routers=[router], consumers=consumers,
    )
