"""CRM: organisations, contacts, meetings, missions, agreements and the opportunity pipeline."""

from fastapi import FastAPI

from services.crm.api import router
from services.crm.consumers import consumers
from shared.service import create_service_app
from shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or get_settings(), service="crm", title="GVN crm",
        description="Contacts, interactions, agreements and the opportunity pipeline.",
        routers=[router], consumers=consumers,
    )
