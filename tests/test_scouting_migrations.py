"""Scouting's migrations on a database that already holds leads."""

import asyncio
import uuid

import asyncpg

from services.scouting import domain
from shared.migrations import bootstrap, upgrade
from shared.settings import Settings
from tests.conftest import _database_url, drop_database


async def test_leads_saved_before_the_duplicate_search_words_get_them_as_a_new_lead_would(
    settings: Settings,
) -> None:
    name = f"gvn_migrate_{uuid.uuid4().hex[:8]}"
    older = settings.model_copy(update={"database_url": _database_url(name)})
    await bootstrap(older)
    await asyncio.to_thread(upgrade, older, "scouting", "0008")
    conn = await asyncpg.connect(_database_url(name), server_settings={"search_path": "scouting"})
    try:
        title, description = "OCT probe for the ENT clinics", "Zürich hospitals want near-infrared"
        for lead_title in (title, "For the"):
            await conn.execute(
                "INSERT INTO leads (id, kind, title, description, target_market, "
                "application_areas, technologies, evidence_links, counterpart_name, urgency, "
                "status, cluster, submitted_by, submitted_at, last_activity_at) VALUES ($1, "
                "'market_need', $2, $3, 'SG', '{}', '{}', '{}', 'Optima AG', 'medium', "
                "'submitted', 'LITEK', $4, now(), now())",
                uuid.uuid4(), lead_title, description, uuid.uuid4())
        await asyncio.to_thread(upgrade, older, "scouting", "head")
        saved = {row["title"]: row for row in await conn.fetch(
            "SELECT title, title_key, title_subkeys, alike_words FROM leads")}
    finally:
        await conn.close()
        await drop_database(name)
    assert sorted(saved[title]["alike_words"]) == sorted(domain.lead_alike_words(
        title=title, description=description, counterpart_name="Optima AG"))
    keys = domain.lead_title_keys(cluster="LITEK", market="SG", title=title)
    assert (saved[title]["title_key"], saved[title]["title_subkeys"]) == (
        keys.whole, keys.shorter)
    # Small words alone: no keys, as a new lead stores them.
    assert (saved["For the"]["title_key"], saved["For the"]["title_subkeys"]) == (None, None)
