"""Schema management: the bootstrap step (database, roles, schemas) and Alembic per service."""

import asyncio
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from alembic import command, context
from alembic.config import Config
from alembic.operations import Operations
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db import asyncpg_url
from shared.settings import SERVICES, Settings
from shared.tables import metadata

SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"


def plain_dsn(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"postgresql://{rest}" if "+" in scheme else url


def with_database(url: str, database: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(plain_dsn(url))
    return urlunsplit(parts._replace(path=f"/{database}"))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"


async def bootstrap(settings: Settings) -> None:
    """Create the database, one login role and one schema per service; lock out everyone else."""
    name = database_name(settings.database_url)
    server = await asyncpg.connect(with_database(settings.database_url, "postgres"))
    try:
        if not await server.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await server.execute(f'CREATE DATABASE "{name}"')
    finally:
        await server.close()
    conn = await asyncpg.connect(plain_dsn(settings.database_url))
    try:
        await conn.execute(f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC')
        await conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        for service in SERVICES:
            await _service_role(conn, settings, service=service, database=name)
    finally:
        await conn.close()


async def _service_role(conn: asyncpg.Connection, settings: Settings, *, service: str,
                        database: str) -> None:
    role = f"gvn_{service}"
    try:
        await conn.execute(f"CREATE ROLE {role} LOGIN")
    except asyncpg.DuplicateObjectError:
        pass  # roles are server-wide; another database made it first
    if settings.db_role_password:
        await conn.execute(f"ALTER ROLE {role} PASSWORD $pw${settings.db_role_password}$pw$")
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {service} AUTHORIZATION {role}")
    await conn.execute(f'GRANT CONNECT, TEMPORARY ON DATABASE "{database}" TO {role}')


def alembic_config(settings: Settings, service: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
    config.attributes["url"] = asyncpg_url(settings.service_database_url(service))
    config.attributes["service"] = service
    return config


def upgrade(settings: Settings, service: str, revision: str = "head") -> None:
    """Run one service's migrations as the service's own role."""
    command.upgrade(alembic_config(settings, service), revision)


def run_env() -> None:
    """The body of every service's migrations/env.py (online mode only)."""
    service = context.config.attributes["service"]
    engine = create_async_engine(
        context.config.attributes["url"],
        connect_args={"server_settings": {"search_path": service}},
    )

    def migrate(connection) -> None:  # noqa: ANN001 - a sync SQLAlchemy connection
        context.configure(connection=connection, version_table_schema=service)
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        async with engine.connect() as connection:
            await connection.run_sync(migrate)
            await connection.commit()
        await engine.dispose()

    asyncio.run(run())


def create_platform_tables(op: Operations) -> None:
    """Outbox, inbox, API keys, idempotency keys and audit log, in the service's schema."""
    metadata.create_all(op.get_bind())


def outbox_wakeup_and_failures(op: Operations) -> None:
    """Writers wake the relay after their commit, not a NOTIFY trigger in every writing
    transaction (see shared/outbox.py); rows the broker never takes are marked failed.

    IF (NOT) EXISTS throughout: a database created from today's tables has these already."""
    op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
    op.execute("DROP FUNCTION IF EXISTS outbox_notify()")
    op.execute("ALTER TABLE outbox ADD COLUMN IF NOT EXISTS failed_at timestamptz, "
               "ADD COLUMN IF NOT EXISTS error text")
    op.execute("DROP INDEX IF EXISTS outbox_unpublished")
    op.execute("CREATE INDEX outbox_unpublished ON outbox (id) "
               "WHERE published_at IS NULL AND failed_at IS NULL")


async def migrate_all(settings: Settings) -> None:
    """The whole bootstrap: database, roles, schemas, then every service's migrations."""
    await bootstrap(settings)
    for service in SERVICES:
        await asyncio.to_thread(upgrade, settings, service)
