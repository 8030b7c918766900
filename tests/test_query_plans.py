"""The POST's statements keep their plans (shared.db, the hot path's pool): a plan Postgres
caches stays in use as the table grows, so it must find leads by index even if it was made
when the table was empty. A plan that read the table would make every POST slower with every
lead saved."""

import re
import uuid

import asyncpg

from services.scouting import handlers, queries
from shared.db import HOT_PATH_SETTINGS
from shared.migrations import migrate_all
from shared.settings import Settings
from tests.conftest import _database_url, drop_database

HOT_STATEMENTS = {"duplicate check": queries.DUPLICATE_CANDIDATES, "submit": handlers.SUBMIT,
                  "submit unless duplicate": handlers.SUBMIT_UNLESS_DUPLICATE}


async def cached_plan(conn: asyncpg.Connection, sql: str) -> str:
    """The plan Postgres would cache for `sql` (a generic plan: made before any values)."""
    parameters = max(int(n) for n in re.findall(r"\$(\d+)", sql))
    await conn.execute(f"PREPARE hot AS {sql}")
    try:
        rows = await conn.fetch(f"EXPLAIN EXECUTE hot({', '.join(['NULL'] * parameters)})")
    finally:
        await conn.execute("DEALLOCATE hot")
    return "\n".join(row[0] for row in rows)


async def test_the_posts_statements_find_leads_by_index_in_plans_made_on_an_empty_table(
    settings: Settings,
) -> None:
    name = f"gvn_plans_{uuid.uuid4().hex[:8]}"
    await migrate_all(settings.model_copy(update={"database_url": _database_url(name)}))
    conn = await asyncpg.connect(_database_url(name), server_settings={
        "search_path": "scouting", **HOT_PATH_SETTINGS})
    try:
        plans = {label: await cached_plan(conn, sql) for label, sql in HOT_STATEMENTS.items()}
    finally:
        await conn.close()
        await drop_database(name)
    for label, plan in plans.items():
        assert "Seq Scan" not in plan, f"{label}:\n{plan}"
    for check in (plans["duplicate check"], plans["submit unless duplicate"]):
        for index in ("leads_title_key", "leads_title_subkeys", "leads_counterpart_key",
                      "leads_counterpart_domain"):
            assert index in check, check
        # The four indexes find the hits together; not cluster or market, which hold every
        # lead.
        assert "BitmapOr" in check, check
        assert "ix_leads_cluster" not in check and "ix_leads_target_market" not in check, check
