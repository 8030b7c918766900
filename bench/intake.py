"""Scouting intake benchmark: POST /v1/leads and a 50,000-row bulk import, next to a bare
FastAPI endpoint that inserts one row with asyncpg, measured in the same run.

    .venv/bin/python bench/intake.py            # full run (about 2 minutes)
    .venv/bin/python bench/intake.py --quick    # short run
    .venv/bin/python bench/intake.py --quick --py-spy /tmp/spy   # and profile scouting

Method: one fresh Tansu broker and one fresh database per flow (dropped at the end); the
scouting service runs as `gvn serve scouting` (its relay publishes every lead), the bare app
under uvicorn. Load comes from bench/loadgen.py (a separate process). p50/p99 are measured at
a constant 200 requests/s (open loop). Requests/s is the rate of 201 answers flat out (64
clients, each sending its next request when the last is answered; an open loop far above
capacity would burn a core of client CPU on requests it sheds), in alternating rounds (bare,
POST, bare, POST, ...; three, or two with --quick) so that a shared machine's slow and fast
spells fall on both: the ratio is the median of the rounds' ratios. Every request is a
distinct lead worded as scouts word them (bench/payloads.py: the trade's common words, no
repeats) with the default duplicate check ("warn"), so each POST also searches for
duplicates. The import posts a CSV of N rows (streamed from disk) and polls the job until
done; it runs at 10,000 and at 50,000 rows so that peak RSS can be compared (flat memory: the
same peak for both). Flat out, it also reports CPU ms per answered request of the server, all
Postgres processes, the broker and the client, for both endpoints (what each request costs
the shared 2-core machine). Ends with one JSON line: post_rps, bare_rps, ratio, post_p99_ms,
import_rows_per_s, import_50k_s, peak_rss_mb (and more).
"""

import argparse
import asyncio
import concurrent.futures
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from statistics import median
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402

from bench import loadgen, payloads  # noqa: E402
from services.scouting.contacts import new_key  # noqa: E402
from shared.broker import TansuBroker, free_port  # noqa: E402
from shared.keys import create_key  # noqa: E402
from shared.migrations import migrate_all  # noqa: E402
from shared.settings import Settings  # noqa: E402

SERVER = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BIN = Path(sys.prefix) / "bin"
BODIES = 80_000  # distinct leads per endpoint: enough for every step of a full run


def db_url(name: str) -> str:
    return urlunsplit(urlsplit(SERVER)._replace(path=f"/{name}"))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def wait_ready(url: str, process: subprocess.Popen) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError(f"{url} exited with {process.returncode}")
            try:
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


def load(url: str, headers: dict[str, str], bodies: list[bytes], *, rate: float | None,
         seconds: float) -> dict:
    """One step in a separate process, so the client does not share our loop: open loop at
    `rate`, or flat out (closed loop, 64 in flight) when `rate` is None. Request i sends
    bodies[i]; the caller passes each step the bodies no earlier step sent."""
    body = bodies[:round(rate * seconds) + 1] if rate else bodies
    tag, start = uuid.uuid4().hex[:6], time.time() + 0.5
    with concurrent.futures.ProcessPoolExecutor(1, initializer=loadgen.ignore_sigint) as pool:
        if rate is None:
            return pool.submit(loadgen.run_closed, url, headers, body, 64, seconds, start,
                               15.0, tag).result()
        return pool.submit(loadgen.run_step, url, headers, body, rate, seconds, start, 64,
                           15.0, "lean", tag).result()


def summarise(step: dict, seconds: float) -> dict:
    ok = [r for r in step["results"] if r[1] == 201]
    latencies = [r[2] for r in ok]
    return {"ok": len(ok), "errors": len(step["results"]) - len(ok), "shed": step["shed"],
            "per_s": round(len(ok) / seconds, 1),
            "p50_ms": round(percentile(latencies, 0.5), 1) if ok else None,
            "p99_ms": round(percentile(latencies, 0.99), 1) if ok else None}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """All Postgres processes of the machine (only the flow under test is running)."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if "(postgres)" in Path(f"/proc/{pid}/stat").read_text()[:64]:
                total += cpu_seconds(int(pid))
        except OSError:
            continue
    return total


class Endpoint:
    """One endpoint under load: where it is, its processes, and the bodies it has not yet
    been sent (each request a lead not posted before). `reuse`: the endpoint does not look
    for duplicates, so it may start the bodies again when it has sent them all (the bare one,
    whose five thousand requests a second would otherwise need a million distinct leads)."""

    def __init__(self, name: str, url: str, headers: dict[str, str], bodies: list[bytes], *,
                 pid: int, broker: int, reuse: bool = False) -> None:
        self.name, self.url, self.headers, self.bodies = name, url, headers, bodies
        self.pid, self.broker, self.reuse, self.sent = pid, broker, reuse, 0

    def step(self, *, rate: float | None, seconds: float) -> dict:
        if self.reuse:
            self.sent %= len(self.bodies)
        rest = self.bodies[self.sent:]
        if not rest:
            raise RuntimeError(f"{self.name}: every lead was sent; raise BODIES")
        step = load(self.url, self.headers, rest, rate=rate, seconds=seconds)
        self.sent += step["planned"] + 1
        return step

    def steady(self, *, quick: bool) -> dict:
        """p50/p99 at a constant 200 requests/s, after a warm-up."""
        seconds = 4 if quick else 10
        self.step(rate=100, seconds=2)
        steady = summarise(self.step(rate=200, seconds=seconds), seconds)
        print(f"{self.name:9} at 200/s: p50 {steady['p50_ms']} ms, p99 {steady['p99_ms']} ms, "
              f"errors {steady['errors']}", flush=True)
        return steady

    def flat_out(self, *, quick: bool, spy: Path | None = None) -> dict:
        """Requests/s flat out, and the CPU each request cost the server, Postgres, the
        broker and the client."""
        seconds = 4 if quick else 8
        recorder = None
        if spy:
            spy.mkdir(parents=True, exist_ok=True)
            recorder = subprocess.Popen(  # noqa: S603 - our own venv's py-spy
                [str(BIN / "py-spy"), "record", "--nonblocking", "--format", "raw", "--rate",
                 "400", "-p", str(self.pid), "-o", str(spy / f"{self.name}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before = cpu_seconds(self.pid), postgres_cpu_seconds(), cpu_seconds(self.broker)
        step = self.step(rate=None, seconds=seconds)
        after = cpu_seconds(self.pid), postgres_cpu_seconds(), cpu_seconds(self.broker)
        flat_out = summarise(step, seconds)
        per_request = [(b - a) * 1000 / max(flat_out["ok"], 1)
                       for a, b in zip(before, after, strict=True)]
        flat_out["cpu_ms_per_request"] = {
            "server": round(per_request[0], 2), "postgres": round(per_request[1], 2),
            "broker": round(per_request[2], 2),
            "client": round(step["client_cpu_s"] * 1000 / max(flat_out["ok"], 1), 2)}
        if recorder:
            recorder.send_signal(2)
            recorder.wait(30)
        print(f"{self.name:9} flat out: {flat_out['per_s']} requests/s "
              f"(p99 {flat_out['p99_ms']} ms, errors {flat_out['errors']}); CPU ms/request: "
              + ", ".join(f"{k} {v}" for k, v in flat_out["cpu_ms_per_request"].items()),
              flush=True)
        return flat_out


def compare(bare: Endpoint, ours: Endpoint, *, quick: bool, spy: Path | None) -> dict:
    """Flat out in alternating rounds (bare, ours, bare, ours, ...), so that both meet the
    same moods of a shared machine; the figures are the rounds' medians."""
    rounds = []
    for n in range(2 if quick else 3):
        rounds.append((bare.flat_out(quick=quick),
                       ours.flat_out(quick=quick, spy=spy if n == 0 else None)))
        print(f"round {n + 1}: ratio {rounds[-1][1]['per_s'] / rounds[-1][0]['per_s']:.3f}",
              flush=True)
    ratios = sorted(o["per_s"] / b["per_s"] for b, o in rounds)
    middle = sorted(rounds, key=lambda r: r[1]["per_s"] / r[0]["per_s"])[len(rounds) // 2]
    return {"ratio": round(median(ratios), 3), "ratios": [round(r, 3) for r in ratios],
            "bare": middle[0], "ours": middle[1],
            "bare_rps": round(median([b["per_s"] for b, _ in rounds]), 1),
            "post_rps": round(median([o["per_s"] for _, o in rounds]), 1)}


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="") as file:
        out = csv.writer(file)
        out.writerow(["kind", "title", "description", "target_market", "application_areas",
                      "technologies", "counterpart_name", "urgency"])
        for n in range(rows):
            tag = uuid.uuid4().hex[:10]
            out.writerow(["market_need", f"Imported need {tag}", f"Row {n} about {tag}", "KR",
                          "diagnostics;sensing", "raman spectroscopy;oct",
                          f"Seoul Optics {tag}", "medium"])


async def chunks(path: Path):  # noqa: ANN201 - streamed upload, never the whole file in memory
    with path.open("rb") as file:
        while block := file.read(1 << 16):
            yield block


async def import_rows(url: str, token: str, rows: int, folder: Path) -> dict:
    path = folder / f"leads-{rows}.csv"
    write_csv(path, rows)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/csv"}
    async with httpx.AsyncClient(timeout=120) as client:
        started = time.perf_counter()
        answer = await client.post(f"{url}/v1/lead-imports", content=chunks(path),
                                   headers=headers)
        answer.raise_for_status()
        job_url = f"{url}/v1/lead-imports/{answer.json()['id']}"
        while True:
            job = (await client.get(job_url, headers=headers)).json()
            if job["status"] in ("done", "failed"):
                break
            await asyncio.sleep(0.25)
    seconds = time.perf_counter() - started
    print(f"import {rows:>6} rows: {job['status']} in {seconds:.1f} s, "
          f"{job['rows_accepted']} accepted, {job['rows_rejected']} rejected, "
          f"{rows / seconds:.0f} rows/s", flush=True)
    return {"seconds": seconds, "rows_per_s": rows / seconds, "status": job["status"],
            "accepted": job["rows_accepted"], "rejected": job["rows_rejected"]}


async def main(quick: bool, spy: Path | None) -> int:
    broker = TansuBroker()
    broker.start()
    names = [f"gvn_intake_{uuid.uuid4().hex[:8]}", f"gvn_bare_{uuid.uuid4().hex[:8]}"]
    processes: list[subprocess.Popen] = []
    try:
        settings = Settings(database_url=db_url(names[0]),
                            kafka_bootstrap_servers=broker.bootstrap)
        await migrate_all(settings)
        admin = await asyncpg.connect(db_url("postgres"))
        await admin.execute(f'CREATE DATABASE "{names[1]}"')
        await admin.close()
        _, scout = await create_key(settings, role="scout", cluster="LITEK", name="bench scout")
        _, partner = await create_key(settings, role="partner", cluster="LITEK", name="bench")
        our_url, bare_url = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
        env = {**os.environ, "DATABASE_URL": settings.database_url, "LOG_LEVEL": "WARNING",
               "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "PORT": our_url.rsplit(":", 1)[1],
               "CONTACT_ENCRYPTION_KEY": new_key(), "INTERNAL_API_TOKEN": "bench",
               "WRITE_RATE_PER_MINUTE": "0"}  # one key drives all the load
        processes.append(subprocess.Popen(  # noqa: ASYNC220 - start-up, before any load
            [str(BIN / "gvn"), "serve", "scouting"], env=env))
        processes.append(subprocess.Popen(  # noqa: ASYNC220
            [str(BIN / "uvicorn"), "bench.bare_app:app", "--port", bare_url.rsplit(":", 1)[1],
             "--log-level", "warning", "--no-access-log"], cwd=ROOT,
            env={**os.environ, "BARE_DATABASE_URL": db_url(names[1])}))
        await wait_ready(our_url, processes[0])
        await wait_ready(bare_url, processes[1])
        print(f"machine: {os.cpu_count()} cores; client, servers, Postgres and broker share them")
        broker_pid = broker.process.pid
        bodies = payloads.bodies(BODIES)  # the same leads, in the same order, for both
        bare = Endpoint("bare", f"{bare_url}/rows", {}, bodies, pid=processes[1].pid,
                        broker=broker_pid, reuse=True)
        ours = Endpoint("POST", f"{our_url}/v1/leads", {"Authorization": f"Bearer {scout}"},
                        bodies, pid=processes[0].pid, broker=broker_pid)
        bare_steady, our_steady = bare.steady(quick=quick), ours.steady(quick=quick)
        flat = compare(bare, ours, quick=quick, spy=spy)
        with tempfile.TemporaryDirectory() as folder:
            await import_rows(our_url, partner, 2000 if quick else 10000, Path(folder))
            rss_small = peak_rss_mb(processes[0].pid)
            big = await import_rows(our_url, partner, 10000 if quick else 50000, Path(folder))
            rss_big = peak_rss_mb(processes[0].pid)
        print(f"scouting peak RSS: {rss_small:.0f} MB after the small import, "
              f"{rss_big:.0f} MB after the large one")
        figures = {
            "post_rps": flat["post_rps"], "bare_rps": flat["bare_rps"], "ratio": flat["ratio"],
            "ratios": flat["ratios"],
            "post_p50_ms": our_steady["p50_ms"], "post_p99_ms": our_steady["p99_ms"],
            "bare_p99_ms": bare_steady["p99_ms"],
            "cpu_ms_per_request": {"post": flat["ours"]["cpu_ms_per_request"],
                                   "bare": flat["bare"]["cpu_ms_per_request"]},
            "import_rows_per_s": round(big["rows_per_s"]),
            "import_50k_s": round(big["seconds"], 1) if not quick else None,
            "import_rows": 10000 if quick else 50000,
            "peak_rss_mb": {"scouting_after_small_import": round(rss_small),
                            "scouting_after_large_import": round(rss_big),
                            "bare": round(peak_rss_mb(processes[1].pid))},
        }
        print(json.dumps(figures))
        return 0 if big["status"] == "done" else 1
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        broker.stop()
        admin = await asyncpg.connect(db_url("postgres"))
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short steps, smaller imports")
    parser.add_argument("--py-spy", metavar="DIR", type=Path,
                        help="record a py-spy profile of scouting while it runs flat out")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.quick, args.py_spy)))
