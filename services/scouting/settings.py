"""Scouting's own settings, on top of the platform's (environment variables, as everywhere)."""

from functools import lru_cache

from pydantic import Field

from shared.settings import Settings


class ScoutingSettings(Settings):
    lead_stale_after_days: int = Field(
        30, ge=1, le=3650, description="An open lead nobody acted on this long is stale.")
    contact_encryption_key: str | None = Field(
        None, description="Fernet key (urlsafe base64, 32 bytes) that encrypts counterpart "
        "contacts at rest. Required to accept contacts; `gvn up` makes one for development.")
    internal_api_token: str | None = Field(
        None, description="Shared secret other services present on /internal/ endpoints.")
    import_max_rows: int = Field(50000, ge=1, description="Rows per bulk import.")
    import_max_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest bulk-import upload.")


@lru_cache
def get_scouting_settings() -> ScoutingSettings:
    return ScoutingSettings()
