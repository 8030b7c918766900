"""API-key administration: a key is written to (or revoked in) every service's schema at once."""

from collections.abc import Awaitable, Callable
from typing import TypeVar
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from shared.auth import check_binding, mint_key, revoke_key, store_key
from shared.db import asyncpg_url
from shared.settings import SERVICES, Settings

T = TypeVar("T")


async def _in_every_schema(
    settings: Settings, change: Callable[[AsyncConnection], Awaitable[T]]
) -> list[T]:
    """Apply `change` to every service's schema in one admin transaction: all or none."""
    engine = create_async_engine(asyncpg_url(settings.database_url))
    try:
        async with engine.begin() as conn:
            results = []
            for service in SERVICES:
                await conn.exec_driver_sql(f"SET LOCAL search_path = {service}")
                results.append(await change(conn))
            return results
    finally:
        await engine.dispose()


async def create_key(
    settings: Settings, *, role: str, cluster: str | None, name: str
) -> tuple[UUID, str]:
    """Create a key valid on all four services; returns (key id, token). The token is shown once."""
    check_binding(role, cluster)
    key_id, prefix, token = mint_key()
    await _in_every_schema(settings, lambda conn: store_key(
        conn, key_id=key_id, prefix=prefix, token=token, role=role, cluster=cluster, name=name))
    return key_id, token


async def revoke(settings: Settings, *, key_id: UUID) -> bool:
    """Revoke a key on every service; False if it was unknown or already revoked."""
    return any(await _in_every_schema(settings, lambda conn: revoke_key(conn, key_id=key_id)))
