"""API-key administration: a key is written to (or revoked in) every service's schema at once."""

from uuid import UUID

from sqlalchemy.ext.asyncio import create_async_engine

from shared.auth import check_binding, mint_key, revoke_key, store_key
from shared.db import asyncpg_url
from shared.settings import SERVICES, Settings


def _admin_engine(settings: Settings):  # noqa: ANN202
    return create_async_engine(asyncpg_url(settings.database_url))


async def create_key(
    settings: Settings, *, role: str, cluster: str | None, name: str
) -> tuple[UUID, str]:
    """Create a key valid on all four services; returns (key id, token). The token is shown once."""
    check_binding(role, cluster)
    key_id, prefix, token = mint_key()
    engine = _admin_engine(settings)
    try:
        async with engine.begin() as conn:
            for service in SERVICES:
                await conn.exec_driver_sql(f"SET LOCAL search_path = {service}")
                await store_key(conn, key_id=key_id, prefix=prefix, token=token, role=role,
                                cluster=cluster, name=name)
    finally:
        await engine.dispose()
    return key_id, token


async def revoke(settings: Settings, *, key_id: UUID) -> bool:
    """Revoke a key on every service; False if it was unknown or already revoked."""
    engine = _admin_engine(settings)
    revoked = False
    try:
        async with engine.begin() as conn:
            for service in SERVICES:
                await conn.exec_driver_sql(f"SET LOCAL search_path = {service}")
                revoked |= await revoke_key(conn, key_id=key_id)
    finally:
        await engine.dispose()
    return revoked
