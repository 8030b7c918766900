"""Every service's OpenAPI document against the running service, as a partner's integrator
would check it: `schemathesis run <service>/openapi.json --checks all`, with each role's key,
finds nothing: no 5xx, no answer (status, content type, headers, body) the document does not
promise, no request it allows that is refused or it forbids that is accepted, no wrong answer
to an unserved method or to OPTIONS, and links from a new lead to the lead itself.

The services need the run's Postgres and broker, so the `platform` fixture's apps are served
by uvicorn on loopback ports from the tests' own event loop, while the pinned schemathesis CLI
runs in a child process against them (every phase: examples, coverage, fuzzing, stateful).
The keys are fresh and of a cluster of their own, so what the fuzzer changes (a scout
deactivated, leads moved) touches no other test's records.

Checks that cannot apply, and why:
- object_level_authorization: it needs two keys of the same role in one run; visibility across
  keys is tested in test_scouting_security.py.
- use_after_free, ensure_resource_availability: no operation deletes anything.
"""

import asyncio
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from shared.keys import create_key
from tests.conftest import Platform, eventually

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
ROOT = Path(__file__).resolve().parents[1]
MAX_EXAMPLES = int(os.environ.get("GVN_SCHEMATHESIS_EXAMPLES", "15"))
CLUSTER = "FUZZ"
ROLES = ("scout", "partner", "manager", "ops", "admin")
SERVICES = ("scouting", "kpi", "matching", "crm")


async def serve(app: Any) -> tuple[uvicorn.Server, asyncio.Task]:
    """`app` on a free loopback port, served from this event loop."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off",
                                           log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started
    await eventually(started, timeout=10)
    return server, task


@pytest.fixture(scope="module")
async def served(platform: Platform) -> AsyncIterator[dict[str, str]]:
    """Every service's URL."""
    running, urls = [], {}
    for service in SERVICES:
        server, task = await serve(platform.apps[service])
        running.append((server, task))
        urls[service] = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    yield urls
    for server, task in running:
        server.should_exit = True
        await task


@pytest.fixture(scope="module")
async def keys(platform: Platform) -> dict[str, str]:
    """A fresh key per role; the clustered ones in a cluster no other test uses."""
    tokens = {}
    for role in ROLES:
        cluster = None if role in ("ops", "admin") else CLUSTER
        _, tokens[role] = await create_key(platform.settings, role=role, cluster=cluster,
                                           name=f"fuzz {role} {uuid.uuid4().hex[:6]}")
    return tokens


async def schemathesis_run(url: str, *, token: str, workdir: Path) -> str:
    """Run the schemathesis CLI with every check; its console output. It keeps a crash cache
    in its working directory, so that is a temporary one."""
    args = [str(SCHEMATHESIS), "--no-color", "run", f"{url}/openapi.json", "--checks", "all",
            "--max-examples", str(MAX_EXAMPLES), "--seed", "16",
            # One worker: Python 3.11's parser is not safe across threads, and Hypothesis
            # parses lambdas while schemathesis builds its strategies.
            "--workers", "1", "--generation-database", "none",
            "--header", f"Authorization: Bearer {token}"]
    child = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=workdir,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks",
             "PYTHONPATH": str(ROOT)})
    output, _ = await child.communicate()
    return output.decode(errors="replace")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("service", SERVICES)
async def test_schemathesis_with_every_check_finds_nothing(
    served: dict[str, str], keys: dict[str, str], service: str, role: str, tmp_path: Path,
) -> None:
    output = await schemathesis_run(served[service], token=keys[role], workdir=tmp_path)
    summary = re.findall(r"^=+ (.*) in [0-9.]+s =+$", output, re.MULTILINE)
    # Warnings may stay (a scout key answered only 401/403 by kpi is right); nothing else.
    assert summary and not re.search(r"failure|error", summary[-1]), output[-12000:]
