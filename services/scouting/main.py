"""Scouting: scouts and partner systems submit leads from the target markets."""

from fastapi import FastAPI

from services.scouting import attachments_api, domain, import_jobs, imports_api, scouts_api, web
from services.scouting.api import internal, router
from services.scouting.consumers import consumers
from services.scouting.contacts import ContactVault
from services.scouting.settings import ScoutingSettings, get_scouting_settings
from shared.service import create_service_app


def create_app(settings: ScoutingSettings | None = None) -> FastAPI:
    settings = settings or get_scouting_settings()
    app = create_service_app(
        settings, service="scouting", title="GVN scouting",
        description="Leads from technology scouts and partner systems: submit, qualify, follow. "
        "Authenticate with `Authorization: Bearer <API key>`; errors are RFC 9457 problems.",
        routers=[router, scouts_api.router, attachments_api.router, imports_api.router,
                 internal, web.router],
        consumers=consumers,
        uploads={attachments_api.UPLOAD_PATTERN: domain.ATTACHMENT_MAX_BYTES,
                 imports_api.UPLOAD_PATH: settings.import_max_bytes},
    )
    app.state.vault = ContactVault(settings.contact_encryption_key)
    import_jobs.install(app)  # runs bulk imports with the app; fails those a crash orphaned
    return app
