"""The `gvn` command as an operator uses it: keys, and the whole platform up and down."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import Platform, _database_url, drop_database

GVN = [sys.executable, "-m", "shared.cli"]
PORTS = (8001, 8002, 8003, 8004)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


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


@pytest.mark.skipif(any(listening(p) for p in (*PORTS, 9092)),
                    reason="the platform's default ports are taken on this machine")
async def test_gvn_up_runs_the_whole_platform_and_ctrl_c_stops_all_of_it(
    tmp_path: Path, settings,  # noqa: ANN001 - the session's settings: a Postgres that answers
) -> None:
    name = f"gvn_up_{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env |= {"DATABASE_URL": _database_url(name), "DATA_DIR": str(tmp_path / "data")}
    up = subprocess.Popen([*GVN, "up"], env=env, stdout=subprocess.PIPE,  # noqa: ASYNC220
                          stderr=subprocess.STDOUT, text=True)
    try:
        lines = await asyncio.wait_for(asyncio.to_thread(_read_until, up, "Ctrl-C"), 120)
        assert any("embedded Tansu" in line for line in lines)
        keys = dict(line.split()[:2] for line in lines if line.startswith("  scout-"))
        async with httpx.AsyncClient() as client:
            for port in PORTS:
                assert (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
            mine = await client.get("http://127.0.0.1:8001/v1/leads", headers={
                "Authorization": f"Bearer {keys['scout-tokyo']}"})
            assert len(mine.json()["items"]) == 2  # the demo leads of the Tokyo scout
        up.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(up.wait, 60) == 0
        assert [port for port in (*PORTS, 9092) if listening(port)] == []
    finally:
        if up.poll() is None:
            up.kill()
        await drop_database(name)


def _read_until(process: subprocess.Popen[str], marker: str) -> list[str]:
    lines = []
    for line in process.stdout:  # type: ignore[union-attr]
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError("gvn up ended early:\n" + "".join(lines))

