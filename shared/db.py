"""Database access: a service's engine and hot-path pool, bound to its own role and schema."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from shared.settings import Settings


def asyncpg_url(url: str) -> str:
    """SQLAlchemy's spelling of a plain postgresql:// URL for the asyncpg driver."""
    scheme, rest = url.split("://", 1)
    return f"postgresql+asyncpg://{rest}" if "+" not in scheme else url


def create_engine(settings: Settings, service: str) -> AsyncEngine:
    """An engine that connects as gvn_<service> with the service's schema on the search path."""
    engine = create_async_engine(
        asyncpg_url(settings.service_database_url(service)),
        # No overflow: a connection opened for a burst and closed after it costs the burst
        # more (connect, TLS offer, authentication, a new backend) than waiting for one.
        pool_size=settings.db_pool_size,
        max_overflow=0,
        # No pre-ping (a round trip per checkout): asyncpg knows when the server closed a
        # connection (restart, failover), and `_refuse_closed` swaps it for a new one.
        pool_recycle=1800,
        # Custom plans: a cached plan made for an empty table (a seq scan) stays in use on a
        # big one when no autovacuum plans it again, and a generic plan for a search with
        # optional filters scans whole tables. No JIT: its compile time dwarfs the short
        # queries services make.
        connect_args={"server_settings": {"search_path": service,
                                          "plan_cache_mode": "force_custom_plan",
                                          "jit": "off"}},
    )
    event.listen(engine.sync_engine.pool, "checkout", _refuse_closed)
    return engine


# The hot path's sessions: generic plans kept, no JIT, no sequential scans (see `connection`).
HOT_PATH_SETTINGS = {"plan_cache_mode": "force_generic_plan", "jit": "off",
                     "enable_seqscan": "off"}


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Nothing to undo when a hot-path connection goes back (asyncpg's default would spend a
    round trip on it): its statements change no session state, and asyncpg itself rolls back
    a transaction left open."""


def _refuse_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """A pooled connection the server has closed is replaced before anyone uses it."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this connection")


class Database:
    """A service's engine, session factory and hot-path pool; the one way to open a
    transaction."""

    def __init__(self, settings: Settings, *, service: str) -> None:
        self.engine = create_engine(settings, service)
        self.service = service
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # Called after a commit that wrote outbox rows; the service points it at its relay.
        self.outbox_written: Callable[[], None] = lambda: None
        self._settings = settings
        self._hot_pool: asyncpg.Pool | None = None
        self._hot_pool_opening = asyncio.Lock()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A bare asyncpg connection for statements written in SQL on a hot path.

        It comes from a pool of its own (opened on first use, so a service without such a
        path holds no connections for it), whose statements keep their generic plans: planning
        them again on every call cost a POST a third of its Postgres time. Such a statement
        must be written so that its generic plan finds rows by index whatever the table's
        size (tests/test_query_plans.py); sequential scans are off on this pool, since a plan
        made while a table is nearly empty would keep scanning it as it grows. Each statement
        commits on its own unless the caller opens `connection.transaction()`. asyncpg
        replaces connections the server closed.
        """
        async with (await self._hot()).acquire() as conn:
            yield conn

    async def _hot(self) -> asyncpg.Pool:
        if self._hot_pool is None:
            async with self._hot_pool_opening:
                if self._hot_pool is None:
                    self._hot_pool = await asyncpg.create_pool(
                        self._settings.service_database_url(self.service), min_size=0,
                        max_size=self._settings.db_pool_size, reset=_keep_session,
                        server_settings={"search_path": self.service, **HOT_PATH_SETTINGS})
        return self._hot_pool

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._hot_pool is not None:
            await self._hot_pool.close()
