"""Matching, the Value Network Mapping Tool: SME offerings matched to market demands."""

from fastapi import FastAPI

from services.matching.api import router
from services.matching.consumers import consumers
from shared.service import create_service_app
from shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or get_settings(), service="matching", title="GVN matching",
        description="The Value Network Mapping Tool: offerings, market demands, matches.",
        routers=[router], consumers=consumers,
    )
