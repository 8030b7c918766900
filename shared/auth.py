"""API keys: stored hashed, each bound to a role and (except admin and ops) to one cluster."""

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID, uuid4

import sqlalchemy as sa
from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.problems import Problem
from shared.tables import api_keys

Role = Literal["scout", "partner", "manager", "ops", "admin"]
ROLES: tuple[Role, ...] = ("scout", "partner", "manager", "ops", "admin")
CLUSTERLESS_ROLES = {"ops", "admin"}


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key, its role and the cluster it may act for."""

    key_id: UUID
    role: Role
    cluster: str | None
    name: str

    def may_act_for(self, cluster: str) -> bool:
        return self.role in CLUSTERLESS_ROLES or self.cluster == cluster


def hash_secret(token: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is safe (no dictionary to guess from).
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh key as (prefix, token): the prefix finds the row, the token is shown once."""
    prefix = secrets.token_hex(6)
    return prefix, f"gvn_{prefix}_{secrets.token_urlsafe(32)}"


def check_binding(role: str, cluster: str | None) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if role not in CLUSTERLESS_ROLES and not cluster:
        raise ValueError(f"a {role} key must be bound to a cluster")
    if role in CLUSTERLESS_ROLES and cluster:
        raise ValueError(f"a {role} key is not bound to a cluster")


async def store_key(
    conn: AsyncConnection, *, key_id: UUID, prefix: str, token: str, role: str,
    cluster: str | None, name: str,
) -> None:
    await conn.execute(sa.insert(api_keys).values(
        id=key_id, prefix=prefix, secret_hash=hash_secret(token), role=role, cluster=cluster,
        name=name,
    ))


async def revoke_key(conn: AsyncConnection, *, key_id: UUID) -> bool:
    result = await conn.execute(
        sa.update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=sa.func.now())
    )
    return result.rowcount > 0


def mint_key() -> tuple[UUID, str, str]:
    """(key id, prefix, token) for a new key."""
    prefix, token = new_token()
    return uuid4(), prefix, token


def _token_from(request: Request) -> str:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key", "").strip()


UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="gvn"'}


async def current_caller(request: Request) -> Caller:
    """The caller of this request, from `Authorization: Bearer <key>` or `X-API-Key`."""
    token = _token_from(request)
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != "gvn":
        raise Problem(401, "Unauthorized", "An API key is required (Authorization: Bearer ...).",
                      headers=UNAUTHORIZED)
    row = await _key_row(request, parts[1])
    if row is None or not hmac.compare_digest(row.secret_hash, hash_secret(token)):
        raise Problem(401, "Unauthorized", "The API key is not valid.", headers=UNAUTHORIZED)
    if row.revoked_at is not None:
        raise Problem(401, "Unauthorized", "The API key was revoked.", headers=UNAUTHORIZED)
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        request.app.state.write_limiter.take(row.id)
    return Caller(key_id=row.id, role=row.role, cluster=row.cluster, name=row.name)


async def _key_row(request: Request, prefix: str) -> Any:
    """The key's row, remembered for AUTH_CACHE_SECONDS (so a revocation takes that long)."""
    cache: dict[str, tuple[float, Any]] = request.app.state.key_cache
    ttl = request.app.state.settings.auth_cache_seconds
    cached = cache.get(prefix)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    async with request.app.state.db.engine.connect() as conn:
        row = (await conn.execute(sa.select(api_keys).where(api_keys.c.prefix == prefix))).first()
    if ttl > 0:
        if len(cache) > 10_000:
            cache.clear()  # bounded: many different keys at once is not the common case
        cache[prefix] = (time.monotonic() + ttl, row)
    return row


def require_role(*roles: Role):  # noqa: ANN201 - a FastAPI dependency
    """A dependency that lets only the given roles through (403 otherwise)."""

    async def check(request: Request) -> Caller:
        # Called, not declared as a sub-dependency: one level less of FastAPI's dependency
        # solving for every request (1.3% of a lead POST's instructions).
        caller = await current_caller(request)
        if caller.role not in roles:
            raise Problem(403, "Forbidden", f"A {caller.role} key may not do this; "
                          f"it needs one of: {', '.join(roles)}.")
        return caller

    check.roles = roles  # type: ignore[attr-defined]  # read by shared.openapi
    return check
