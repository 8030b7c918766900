"""The `gvn` command as an operator uses it: keys (`gvn up` and `gvn down`: test_gvn_up.py)."""

import asyncio
import os
import subprocess
import sys

from tests.conftest import Platform

GVN = [sys.executable, "-m", "shared.cli"]


async def gvn(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, [*GVN, *args], env={**os.environ, **env},
                                   capture_output=True, text=True, timeout=60)


async def test_an_operator_creates_and_revokes_a_key_from_the_command_line(
    platform: Platform,
) -> None:
    env = {"DATABASE_URL": platform.settings.database_url}
    created = await gvn("keys", "create", "--role", "manager", "--cluster", "HTS",
                        "--name", "Graz manager", env=env)
    assert created.returncode == 0, created.stderr
    lines = dict(line.split(":", 1) for line in created.stdout.splitlines() if ":" in line)
    key_id, token = lines["key id"].strip(), lines["token"].strip()
    auth = {"Authorization": f"Bearer {token}"}
    report = await platform.kpi.get("/v1/kpis", headers=auth)
    assert report.status_code == 200 and report.json()["cluster"] == "HTS"

    revoked = await gvn("keys", "revoke", key_id, env=env)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert (await platform.kpi.get("/v1/kpis", headers=auth)).status_code == 401
    again = await gvn("keys", "revoke", key_id, env=env)
    assert again.returncode == 1 and "no active key" in again.stderr


async def test_a_key_without_its_cluster_is_refused_with_a_clear_message(
    platform: Platform,
) -> None:
    refused = await gvn("keys", "create", "--role", "scout", "--name", "x",
                        env={"DATABASE_URL": platform.settings.database_url})
    assert refused.returncode == 2 and "must be bound to a cluster" in refused.stderr
