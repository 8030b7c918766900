"""Database access: a service's engines, bound to the service's own role and schema."""

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


def create_engine(settings: Settings, service: str, *, cached_plans: bool = False) -> AsyncEngine:
    """An engine that connects as gvn_<service> with the service's schema on the search path.

    Its statements are planned on every call, unless `cached_plans`: then each keeps the one
    plan made without its values (a generic plan), at once. Left to choose, Postgres may cache
    a plan made for the table as it was then (a seq scan of an empty table) and use it on a big
    one, since nothing plans it again on a server without autovacuum; or plan again on every
    call, because values make a plan look cheaper. Statements for such a pool must be written
    so that their generic plan looks rows up by index (tests/test_query_plans.py).
    """
    plans = "force_generic_plan" if cached_plans else "force_custom_plan"
    engine = create_async_engine(
        asyncpg_url(settings.service_database_url(service)),
        # No overflow: a connection opened for a burst and closed after it costs the burst
        # more (connect, TLS offer, authentication, a new backend) than waiting for one.
        pool_size=settings.db_pool_size,
        max_overflow=0,
        # No pre-ping (a round trip per checkout): asyncpg knows when the server closed a
        # connection (restart, failover), and `_refuse_closed` swaps it for a new one.
        pool_recycle=1800,
        # No JIT: its compile time dwarfs the short queries services make.
        connect_args={"server_settings": {"search_path": service, "jit": "off",
                                          "plan_cache_mode": plans}},
    )
    event.listen(engine.sync_engine.pool, "checkout", _refuse_closed)
    return engine


def _refuse_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """A pooled connection the server has closed is replaced before anyone uses it."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this connection")


class Database:
    """A service's engines and session factory; the one way to open a transaction."""

    def __init__(self, settings: Settings, *, service: str) -> None:
        self.engine = create_engine(settings, service)
        # The hot path's own pool (no connection opened until it is used): its statements,
        # written to find rows by index whatever the table's size, keep their generic plans.
        # Planning them again on every call cost a POST a third of its Postgres time.
        self.hot_engine = create_engine(settings, service, cached_plans=True)
        self.service = service
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # Called after a commit that wrote outbox rows; the service points it at its relay.
        self.outbox_written: Callable[[], None] = lambda: None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A bare asyncpg connection from the hot path's pool, for statements written in SQL
        that keep their plans (see `tests/test_query_plans.py`).

        Each statement commits on its own unless the caller opens `connection.transaction()`.
        """
        async with self.hot_engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            try:
                yield driver
            finally:
                if driver.is_closed():  # lost while in use: not back into the pool
                    await conn.invalidate()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def dispose(self) -> None:
        await self.engine.dispose()
        await self.hot_engine.dispose()
