"""Scouting: scouts and partner systems submit leads from the target markets."""

from fastapi import FastAPI

from services.scouting.api import router
from services.scouting.consumers import consumers
from shared.service import create_service_app
from shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or get_settings(), service="scouting", title="GVN scouting",
        description="Leads from technology scouts and partner systems: submit, qualify, follow.",
        routers=[router], consumers=consumers,
    )
