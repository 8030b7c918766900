"""Postgres instructions per POST /v1/leads, counted by callgrind: what a change to the POST's
SQL or to the schema costs the database, free of the machine's noise.

    .venv/bin/python bench/postgres_instructions.py     # 20,000 leads saved, 1,000 POSTs counted
    .venv/bin/python bench/postgres_instructions.py --leads 5000 --count 2000
    .venv/bin/python bench/postgres_instructions.py --sql 'ALTER INDEX leads_search SET (...)'

Postgres's CPU time per POST moves by 10 to 20% between runs of the same code on a shared
machine (bench/intake.py prints it); its instruction count moves by about 1%. Method: a private
Postgres (initdb in a temporary folder, on a free loopback port) gets the migrations, then
`--sql` if given, then `--leads` POSTs of bench/payloads.py's leads through scouting's ASGI app
in-process (its relay publishing to an embedded Tansu). Its data directory is copied, and the
server runs twice from that copy under `valgrind --tool=callgrind` (every backend counted,
autovacuum off): once for 100 POSTs, once for 100 + `--count`. The difference, divided by
`--count`, is printed: it leaves out what both runs pay (start-up, connections, catalog
caches). What is left to vary: where the relay's batches and the GIN pending-list merges fall.

Needs valgrind and Postgres's server binaries (Debian: postgresql; `PG_BINDIR` to choose);
run as root, the server runs as the `postgres` user. Takes about 2 minutes.
"""

import argparse
import asyncio
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import uvloop  # noqa: E402

from bench import payloads  # noqa: E402
from bench.submit_cpu import post  # noqa: E402
from services.scouting.contacts import new_key  # noqa: E402
from services.scouting.settings import ScoutingSettings  # noqa: E402
from shared.broker import TansuBroker, free_port  # noqa: E402
from shared.keys import create_key  # noqa: E402
from shared.migrations import migrate_all  # noqa: E402

WARM_UP = 100  # POSTs both counted runs make: the hot pool's connections open in them
DATABASE = "gvn_instructions"


def bindir() -> Path:
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(p.split("/")[4]))
    if not found:
        raise SystemExit("no Postgres server binaries found; set PG_BINDIR")
    return Path(found[-1]).parent


class Server:
    """A private Postgres in `folder`, run as the `postgres` user when we are root."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.bin, self.port = folder, bindir(), free_port()
        self.data = folder / "data"
        self.process: subprocess.Popen | None = None
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []

    def run(self, *command: str) -> None:
        subprocess.run([*self.as_postgres, *command], check=True, stdout=subprocess.DEVNULL)  # noqa: S603

    def init(self) -> None:
        if self.as_postgres:
            shutil.chown(self.folder, "postgres")
        self.run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                 "--locale=C.UTF-8")

    def start(self, *, callgrind_out: Path | None = None) -> None:
        command = [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                   "-k", str(self.folder), "-c", "listen_addresses=127.0.0.1",
                   "-c", "autovacuum=off"]
        if callgrind_out:
            command = ["valgrind", "--tool=callgrind", "--vgdb=no", "--trace-children=yes",
                       f"--callgrind-out-file={callgrind_out}/cg.%p", *command]
        self.process = subprocess.Popen(  # noqa: S603 - the machine's Postgres and valgrind
            [*self.as_postgres, *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            if subprocess.run([str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p",  # noqa: S603
                               str(self.port)], check=False).returncode == 0:
                return
            if self.process.poll() is not None:
                raise RuntimeError("the private Postgres did not start")
            time.sleep(0.2)
        raise RuntimeError("the private Postgres is not ready")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.run(str(self.bin / "pg_ctl"), "-D", str(self.data), "stop", "-m", "fast")
        self.process.wait(120)
        self.process = None

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


async def post_leads(url: str, broker: str, *, skip: int, counts: list[tuple[int, int]],
                     sql: str = "", migrate: bool = False) -> None:
    """POST leads skip.. through scouting in-process: (how many, how many at a time) in turn."""
    settings = ScoutingSettings(
        database_url=url, kafka_bootstrap_servers=broker, write_rate_per_minute=0,
        log_level="WARNING", contact_encryption_key=new_key(), internal_api_token="bench")
    if migrate:
        await migrate_all(settings)
        if sql:
            conn = await asyncpg.connect(url, server_settings={"search_path": "scouting"})
            await conn.execute(sql)
            await conn.close()
    _, token = await create_key(settings, role="scout", cluster="LITEK", name="bench")
    from services.scouting.main import create_app

    app = create_app(settings)
    leads = iter(payloads.bodies(skip + sum(n for n, _ in counts) + 100)[skip:])

    async def client(posts: int) -> list[int]:
        return [await post(app, next(leads), token) for _ in range(posts)]

    async with app.router.lifespan_context(app):
        for count, concurrency in counts:
            done = await asyncio.gather(*(client(count // concurrency)
                                          for _ in range(concurrency)))
            refused = [s for statuses in done for s in statuses if s != 201]
            if refused:
                raise RuntimeError(f"{len(refused)} POSTs were not saved: {refused[:5]}")
        await asyncio.sleep(1)  # the relay publishes the last batch


def instructions(folder: Path) -> int:
    total = 0
    for path in folder.glob("cg.*"):
        with path.open(errors="replace") as file:
            for line in file:
                if line.startswith(("summary:", "totals:")):
                    total += int(line.split()[1])
                    break
    return total


async def counted_run(server: Server, snapshot: Path, broker: str, *, skip: int,
                      count: int, keep: Path | None = None) -> int:
    """Postgres instructions for WARM_UP + count POSTs on a fresh copy of the snapshot."""
    shutil.rmtree(server.data)
    server.run("cp", "-a", str(snapshot), str(server.data))  # owned by the server's user
    with tempfile.TemporaryDirectory(dir=server.folder) as out:
        if server.as_postgres:
            shutil.chown(out, "postgres")
        server.start(callgrind_out=Path(out))
        try:
            await post_leads(server.url(DATABASE), broker, skip=skip,
                             counts=[(WARM_UP, 4)] + ([(count, 4)] if count else []))
        finally:
            server.stop()
        if keep:
            shutil.copytree(out, keep, dirs_exist_ok=True)
        return instructions(Path(out))


async def main(leads: int, count: int, sql: str, keep: Path | None) -> int:
    if not shutil.which("valgrind"):
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    broker = TansuBroker()
    broker.start()
    folder = Path(tempfile.mkdtemp(prefix="gvn-pg-"))
    server = Server(folder)
    try:
        server.init()
        server.start()
        admin = await asyncpg.connect(server.url("postgres"))
        await admin.execute(f"CREATE DATABASE {DATABASE}")
        await admin.close()
        started = time.perf_counter()
        await post_leads(server.url(DATABASE), broker.bootstrap, skip=0, counts=[(leads, 16)],
                         sql=sql, migrate=True)
        print(f"{leads} leads saved in {time.perf_counter() - started:.0f} s", flush=True)
        server.stop()
        snapshot = folder / "snapshot"
        server.run("cp", "-a", str(server.data), str(snapshot))
        base = await counted_run(server, snapshot, broker.bootstrap, skip=leads, count=0)
        total = await counted_run(server, snapshot, broker.bootstrap, skip=leads, count=count,
                                  keep=keep)
        per_post = (total - base) // count
        print(f"{count} POSTs at {leads} leads: {per_post:,} Postgres instructions per POST "
              f"(all processes; {base:,} for start-up and {WARM_UP} warm-up POSTs)")
        print(f'{{"leads": {leads}, "posts": {count}, "postgres_instructions_per_post": '
              f"{per_post}}}")
        return 0
    finally:
        server.stop()
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=20_000, help="leads saved before counting")
    parser.add_argument("--count", type=int, default=1_000, help="POSTs counted")
    parser.add_argument("--sql", default="", help="SQL run after the migrations, in schema "
                        "scouting (an index option to try, say)")
    parser.add_argument("--keep", type=Path, help="copy the counted run's callgrind files here "
                        "(callgrind_annotate reads them)")
    args = parser.parse_args()
    sys.exit(uvloop.run(main(args.leads, args.count, args.sql, args.keep)))
