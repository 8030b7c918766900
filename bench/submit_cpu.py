"""CPU per POST /v1/leads, in-process: scouting's own process and Postgres, no HTTP server.

    .venv/bin/python bench/submit_cpu.py             # 3000 POSTs, 16 at a time
    .venv/bin/python bench/submit_cpu.py --profile   # and the top of a cProfile
    .venv/bin/python bench/submit_cpu.py --instructions   # instructions per POST (valgrind)

Drives scouting's ASGI app directly (its relay publishing to a fresh Tansu, a fresh database),
so what it prints is the cost of the code path itself: app CPU per request (this process,
relay included) and Postgres CPU per request (all postgres processes, so run it on a quiet
machine). Throughput figures live in bench/intake.py; this is for comparing changes: CPU time
moves far less with the machine's noise than requests per second do.

`--instructions` counts the instructions this process executes per POST instead (callgrind,
collecting only while the measured POSTs run; 500 POSTs by default, about 20 seconds). The
count hardly moves with the machine's load (only the relay's batches vary): runs of the same
code differ by 1 to 2.5%, so a change of a few percent shows, which CPU time on a shared
machine cannot tell.
"""

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import uvloop  # noqa: E402

from bench import payloads  # noqa: E402
from bench.intake import db_url, postgres_cpu_seconds  # noqa: E402
from services.scouting.contacts import new_key  # noqa: E402
from services.scouting.settings import ScoutingSettings  # noqa: E402
from shared.broker import TansuBroker  # noqa: E402
from shared.keys import create_key  # noqa: E402
from shared.migrations import migrate_all  # noqa: E402
from shared.service import tune_garbage_collector  # noqa: E402


def request(body: bytes, token: str) -> dict:
    headers = [(b"host", b"bench"), (b"content-type", b"application/json"),
               (b"authorization", f"Bearer {token}".encode()),
               (b"content-length", str(len(body)).encode())]
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/v1/leads", "raw_path": b"/v1/leads",
            "query_string": b"", "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {}}


async def post(app, body: bytes, token: str) -> int:  # noqa: ANN001 - an ASGI app
    status = 0
    delivered = False

    async def receive() -> dict:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # no disconnect: the app finishes first
        return {}

    async def send(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(request(body, token), receive, send)
    return status


async def wal_position(url: str) -> int:
    """Where the server's write-ahead log stands, in bytes (the whole server's: run it alone)."""
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))
    finally:
        await conn.close()


async def callgrind(instrument: str) -> None:
    """Turn callgrind's instrumentation of this process on or off."""
    control = await asyncio.create_subprocess_exec(
        "callgrind_control", "--instr", instrument, str(os.getpid()),
        stdout=subprocess.DEVNULL)
    await control.wait()  # callgrind answers while this loop keeps running


def count_instructions(count: int, concurrency: int) -> int:
    """Run this benchmark under callgrind and report instructions per POST."""
    if not shutil.which("valgrind"):
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        run = subprocess.run(  # noqa: S603 - this script, under the machine's valgrind
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             f"--callgrind-out-file={folder}/callgrind.out", sys.executable, __file__,
             "--count", str(count), "--concurrency", str(concurrency), "--callgrind"],
            capture_output=True, text=True, check=False)
    collected = re.search(r"Collected : (\d+)", run.stderr)
    figures = re.search(r"^\{.*\}$", run.stdout, re.MULTILINE)
    if run.returncode or not collected or not figures:
        print(run.stdout, run.stderr, file=sys.stderr)
        return 1
    requests = json.loads(figures.group(0))["requests"]
    per_request = int(collected.group(1)) // requests
    print(f"{requests} POSTs: {per_request:,} instructions per POST (scouting's process, "
          "relay included)")
    print(json.dumps({"requests": requests, "instructions_per_request": per_request}))
    return 0


async def main(count: int, concurrency: int, profile: bool, under_callgrind: bool) -> int:
    broker = TansuBroker()
    broker.start()
    name = f"gvn_submitcpu_{uuid.uuid4().hex[:8]}"
    try:
        settings = ScoutingSettings(
            database_url=db_url(name), kafka_bootstrap_servers=broker.bootstrap,
            write_rate_per_minute=0, log_level="WARNING", contact_encryption_key=new_key(),
            internal_api_token="bench")
        await migrate_all(settings)
        _, token = await create_key(settings, role="scout", cluster="LITEK", name="bench")
        from services.scouting.main import create_app

        app = create_app(settings)
        tune_garbage_collector()  # as `gvn serve` does
        leads = iter(payloads.bodies(count + 400))  # distinct leads, as scouts word them

        async def client(posts: int) -> list[int]:
            return [await post(app, next(leads), token) for _ in range(posts)]

        async with app.router.lifespan_context(app):
            await asyncio.gather(*(client(200 // concurrency) for _ in range(concurrency)))
            if under_callgrind:
                await callgrind("on")
            profiler = cProfile.Profile() if profile else None
            wal_before = await wal_position(settings.database_url)
            pg_before, cpu_before, began = postgres_cpu_seconds(), time.process_time(), time.time()
            if profiler:
                profiler.enable()
            done = await asyncio.gather(*(client(count // concurrency)
                                          for _ in range(concurrency)))
            if profiler:
                profiler.disable()
            cpu, wall = time.process_time() - cpu_before, time.time() - began
            if under_callgrind:
                await callgrind("off")
            pg = postgres_cpu_seconds() - pg_before
            wal = await wal_position(settings.database_url) - wal_before
        statuses = [status for statuses in done for status in statuses]
        n = len(statuses)
        if profiler:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        print(f"{n} POSTs ({statuses.count(201)} created), {concurrency} at a time: "
              f"scouting {cpu / n * 1000:.2f} ms CPU/request, Postgres {pg / n * 1000:.2f} ms "
              f"CPU/request, {wal / n / 1024:.1f} kB of WAL/request (every commit waits for its "
              f"WAL to reach the disk), {n / wall:.0f} requests/s in-process")
        print(json.dumps({"requests": n, "created": statuses.count(201),
                          "app_cpu_ms_per_request": round(cpu / n * 1000, 3),
                          "postgres_cpu_ms_per_request": round(pg / n * 1000, 3),
                          "wal_bytes_per_request": wal // n}))
        return 0 if statuses.count(201) == n else 1
    finally:
        broker.stop()
        admin = await asyncpg.connect(db_url("postgres"))
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="POSTs to measure")
    parser.add_argument("--concurrency", type=int, default=16, help="POSTs in flight")
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions per POST under callgrind (500 POSTs unless "
                        "--count says otherwise)")
    parser.add_argument("--callgrind", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.instructions:
        count = args.count if "--count" in sys.argv else 500
        sys.exit(count_instructions(count, args.concurrency))
    sys.exit(uvloop.run(main(args.count, args.concurrency, args.profile, args.callgrind)))
