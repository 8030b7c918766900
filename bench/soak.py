"""Soak benchmark: a constant load for many minutes; latency, errors and memory must stay flat.

    .venv/bin/python bench/soak.py                       # 15 minutes at 390 leads/s
    .venv/bin/python bench/soak.py --minutes 3 --rate 100

What one run does:

1. Postgres as in bench/harness.py (the configured server, else an embedded one); a fresh
   database migrated with shared.migrations.migrate_all, 64 scout keys (writes are limited per
   key, 20/s each by default); a one-node Apache Kafka (KafkaCluster(1)); the four services
   as `gvn serve <service>` processes at their default settings (plus any `--service-env`).
2. A smoke check and a 20 s warm-up at the soak rate, then RSS (VmRSS) of every process we
   started -- the four services and the broker's JVM -- is noted as the start figure.
3. `--minutes` one-minute steps back to back at `--rate` leads/s (open loop, bench/loadgen.py
   in a worker process: request i of a minute is due at its start + i/rate; at most 64 in
   flight, a request due beyond that is shed and counted as an error). The default rate,
   390/s, is half the sustained rate bench/pipeline.py measured for our flow on Apache Kafka
   on this 2-core machine when it was quiet (782 leads/s, full run at 73d55c5; runs on the
   busy, shared machine gave 422). Body: tests/conftest.py a_lead(), as pipeline.py.
4. Per minute, printed while the next one runs: 201s, errors (non-201 answers, transport
   errors, shed requests), end-to-end p50/p99/max (kpi.facts recorded_at - occurred_at, as in
   pipeline.py) of that minute's leads, the relay's p99 (scouting's outbox row created to
   published: the stage a growing outbox would slow), HTTP p99, RSS of each process, and
   `other`: the CPU (% of one core) jobs outside the benchmark took -- the machine is
   shared, so a minute with a high `other` has a noisy p99.
5. At the end every accepted lead must be in matching, crm and kpi (waits up to 120 s);
   RSS is read again.
6. Stops every process it started and drops the database, also on errors and Ctrl-C.

Output: the table, then ONE JSON line: minutes, rate, errors, lost, p99_first5_ms,
p99_last5_ms (p99 over all leads of the first / last five minutes; fewer with --minutes < 10),
rss_growth_mb_max (largest end - start VmRSS of one process), and per-process RSS and
per-minute p99. For the broker's JVM it also reports, at start and end, RssAnon / RssFile and
the live heap after a forced full GC (jcmd): a JVM's RSS grows while its heap fills up to
-Xmx, which is not a leak; live heap that grows would be. Targets: 0 errors, 0 lost,
p99_last5 <= 1.5 x p99_first5, RSS growth <= 50 MB per process. Exit status 1 when one is
missed.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import functools
import json
import multiprocessing
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from bench import loadgen  # noqa: E402
from bench.harness import (  # noqa: E402
    EFFECTS,
    LEAD_SUBMITTED,
    Postgres,
    Services,
    broker_pids,
    memory_mb,
    say,
    scout_tokens,
    start_broker,
)
from bench.pipeline import CpuMeter, a_lead, percentile  # noqa: E402
from shared.broker import Broker  # noqa: E402

DEFAULT_RATE = 390.0  # half of our sustained 782 leads/s on Kafka (bench/pipeline.py, quiet run)
WARM_UP_S = 20.0


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run_id = uuid.uuid4().hex[:8]
        self.logdir = Path(tempfile.mkdtemp(prefix=f"gvn-soak-{self.run_id}-"))
        self.postgres = Postgres()
        self.broker: Broker | None = None
        self.services: Services | None = None
        self.pool: concurrent.futures.ProcessPoolExecutor | None = None
        self.body = json.dumps(a_lead()).encode()
        self.minutes: list[dict[str, Any]] = []
        self.accepted: list[str] = []
        self.e2e_ms: list[list[float]] = []  # per minute

    async def run(self) -> int:
        args = self.args
        say(f"soak run {self.run_id}: {args.minutes} min at {args.rate:.0f} leads/s on Apache "
            f"Kafka; logs in {self.logdir}")
        say(f"  {await self.postgres.start()}")
        self.pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"),
            initializer=loadgen.ignore_sigint)
        await asyncio.get_running_loop().run_in_executor(self.pool, loadgen.warm)
        self.broker = await start_broker("kafka", log_dir=self.logdir)
        settings = (await self.postgres.fresh_platform_database("gvn_soak")).model_copy(
            update={"kafka_bootstrap_servers": self.broker.bootstrap})
        self.tokens = await scout_tokens(settings, 64)
        env = dict(item.split("=", 1) for item in args.service_env)
        self.services = Services(settings, log_dir=self.logdir, env=env)
        await self.services.start_all()
        self.conn = await asyncpg.connect(settings.database_url)
        try:
            return await self.soak()
        finally:
            await self.conn.close()

    def pids(self) -> dict[str, int]:
        assert self.services and self.broker
        return {**self.services.pids(), **broker_pids(self.broker)}

    def rss(self) -> dict[str, float | None]:
        return {name: memory_mb(pid) for name, pid in self.pids().items()}

    def broker_memory(self) -> dict[str, float | None]:
        """The JVM's RSS split (anonymous: heap and the like; file: mapped log indexes) and its
        live heap after a full GC: the RSS of a JVM grows as its heap fills up to -Xmx
        (shared.broker.KAFKA_HEAP), which is not a leak; live heap growth would be."""
        pid = broker_pids(self.broker)["broker"]
        return {"rss_anon_mb": memory_mb(pid, "RssAnon"), "rss_file_mb": memory_mb(pid, "RssFile"),
                "live_heap_mb": jvm_live_heap_mb(pid)}

    async def soak(self) -> int:
        args = self.args
        await self.load(WARM_UP_S, time.time() + 0.3)  # also the smoke check
        warm = self.minutes.pop()
        self.accepted.clear()
        if warm["accepted"] == 0:
            raise RuntimeError(f"no lead was accepted in the warm-up: {warm['error_kinds']}")
        rss_start, jvm_start = self.rss(), self.broker_memory()
        say(f"  warm-up: {warm['accepted']} accepted, errors {warm['error_kinds'] or 0} (not "
            f"counted), other jobs {warm['other_pct']:.0f}% of a core; RSS at start (MB): "
            f"{_rss(rss_start)}")
        say(f"  {'min':>3} {'201':>6} {'errors':>6} {'e2e p50':>8} {'p99':>7} {'max':>7} "
            f"{'relay p99':>9} {'http p99':>8}  {'other %':>7}  RSS MB")
        started = time.time() + 0.3
        previous: asyncio.Task[None] | None = None
        for minute in range(args.minutes):
            step = asyncio.create_task(self.load(60.0, started + 60.0 * minute))
            if previous:
                await previous
            await step
            previous = asyncio.create_task(self.measure_minute(len(self.minutes) - 1))
        await previous
        lost = await self.lost()
        rss_end, jvm_end = self.rss(), self.broker_memory()
        say(f"  broker JVM at start {jvm_start}, at end {jvm_end}")
        self.jvm = {"start": jvm_start, "end": jvm_end}
        return self.report(rss_start, rss_end, lost)

    async def load(self, seconds: float, start_wall: float) -> None:
        """One constant-rate step in the worker process; keeps its answers and CPU figures."""
        meter = CpuMeter(self.pids(), self.postgres.databases[-1])
        before = meter.sample()
        part = await asyncio.get_running_loop().run_in_executor(self.pool, functools.partial(
            loadgen.run_step, self.services.url("scouting", "/v1/leads"), {}, self.body,
            self.args.rate, seconds, start_wall, tokens=self.tokens,
            tag=f"m{len(self.minutes):03d}"))
        cpu = CpuMeter.usage(before, meter.sample(), part["client_cpu_s"])
        results = part["results"]
        ids = [r[3] for r in results if r[1] == 201]
        self.accepted.extend(ids)
        kinds = Counter("transport" if r[1] == -1 else str(r[1]) for r in results if r[1] != 201)
        if part["shed"]:
            kinds["shed"] = part["shed"]
        self.minutes.append({
            "ids": ids, "accepted": len(ids), "errors": sum(kinds.values()),
            "error_kinds": dict(kinds),
            "http_p99_ms": percentile([r[2] for r in results if r[1] == 201], 99),
            "other_pct": cpu["other"], "rss": self.rss()})

    async def measure_minute(self, index: int) -> None:
        """End-to-end latency of one minute's leads (waiting a little for the last ones)."""
        minute = self.minutes[index]
        deadline = time.monotonic() + 10
        while True:
            rows = await self.conn.fetch(
                "SELECT extract(epoch FROM recorded_at - occurred_at) * 1000 FROM kpi.facts "
                "WHERE event_type = $1 AND subject = ANY($2::text[])",
                LEAD_SUBMITTED, minute["ids"])
            if len(rows) >= len(minute["ids"]) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        e2e = [float(r[0]) for r in rows]
        self.e2e_ms.append(e2e)
        relay = [float(r[0]) for r in await self.conn.fetch(
            "SELECT extract(epoch FROM published_at - created_at) * 1000 FROM scouting.outbox "
            "WHERE event_type = $1 AND key = ANY($2::text[]) AND published_at IS NOT NULL",
            LEAD_SUBMITTED, minute["ids"])]
        minute.update(e2e_p50_ms=percentile(e2e, 50), e2e_p99_ms=percentile(e2e, 99),
                      e2e_max_ms=max(e2e, default=None), relay_p99_ms=percentile(relay, 99))
        say(f"  {index + 1:>3} {minute['accepted']:>6} {minute['errors']:>6} "
            f"{_f(minute['e2e_p50_ms']):>8} {_f(minute['e2e_p99_ms']):>7} "
            f"{_f(minute['e2e_max_ms']):>7} {_f(minute['relay_p99_ms']):>9} "
            f"{_f(minute['http_p99_ms']):>8}  "
            f"{minute['other_pct']:>7.0f}  {_rss(minute['rss'])}"
            + (f"  errors {minute['error_kinds']}" if minute["errors"] else ""))

    async def lost(self) -> int:
        """Accepted leads without their effect in matching, crm or kpi after 120 s."""
        ids = sorted(set(self.accepted))
        deadline = time.monotonic() + 120
        while True:
            missing = set()
            for _, query in EFFECTS.values():
                missing |= set(ids) - {r[0] for r in await self.conn.fetch(query, ids)}
            if not missing or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
        if missing:
            say(f"  LOST {len(missing)} of {len(ids)} accepted leads, e.g. {sorted(missing)[:3]}")
        return len(missing)

    def report(self, rss_start: dict[str, float | None], rss_end: dict[str, float | None],
               lost: int) -> int:
        span = max(1, min(5, len(self.e2e_ms) // 2))
        first = percentile([v for m in self.e2e_ms[:span] for v in m], 99)
        last = percentile([v for m in self.e2e_ms[-span:] for v in m], 99)
        growth = {n: round(rss_end[n] - rss_start[n], 1) for n in rss_start
                  if rss_start[n] is not None and rss_end.get(n) is not None}
        errors = sum(m["errors"] for m in self.minutes)
        summary = {
            "minutes": self.args.minutes, "rate": self.args.rate, "errors": errors,
            "lost": lost, "p99_first5_ms": _r(first), "p99_last5_ms": _r(last),
            "rss_growth_mb_max": max(growth.values(), default=None),
            "p99_window_minutes": span, "rss_start_mb": rss_start, "rss_end_mb": rss_end,
            "rss_growth_mb": growth,
            "p99_per_minute_ms": [_r(m["e2e_p99_ms"]) for m in self.minutes],
            "relay_p99_per_minute_ms": [_r(m["relay_p99_ms"]) for m in self.minutes],
            "other_pct_max": round(max((m["other_pct"] for m in self.minutes), default=0), 1),
            "broker_jvm": self.jvm,
            "accepted": len(self.accepted),
        }
        ok = (errors == 0 and lost == 0 and first and last and last <= 1.5 * first
              and (summary["rss_growth_mb_max"] or 0) <= 50)
        say(f"\n== summary ==\n  errors {errors}, lost {lost} of {len(self.accepted)}; "
            f"p99 first {span} min {_f(first)} ms, last {span} min {_f(last)} ms "
            f"(x{(last / first) if first and last else float('nan'):.2f}; target <= 1.5)")
        say(f"  RSS growth (MB, end - start): {growth} (target <= 50 each)")
        say(f"  {'meets' if ok else 'MISSES'} the targets; logs in {self.logdir}")
        say(json.dumps(summary))
        return 0 if ok else 1

    async def cleanup(self) -> None:
        if self.services:
            self.services.stop_all()
        if self.broker:
            self.broker.stop()
        if self.pool:
            for worker in list(getattr(self.pool, "_processes", {}).values()):
                if worker.is_alive():  # a step may still be running (Ctrl-C): end it now
                    worker.terminate()
            self.pool.shutdown(wait=True, cancel_futures=True)
        try:
            await self.postgres.drop_databases()
        except Exception as error:  # keep cleaning up
            say(f"  could not drop {self.postgres.databases}: {error}")
        self.postgres.stop()


def jvm_live_heap_mb(pid: int) -> float | None:
    """Heap in use right after a full collection (jcmd GC.run, then GC.heap_info)."""
    try:
        subprocess.run(["jcmd", str(pid), "GC.run"], capture_output=True, timeout=30, check=True)
        info = subprocess.run(["jcmd", str(pid), "GC.heap_info"], capture_output=True,
                              text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    used = re.search(r"heap\s+total \d+K, used (\d+)K", info)
    return round(int(used.group(1)) / 1024, 1) if used else None


def _rss(rss: dict[str, float | None]) -> str:
    return " ".join(f"{name} {mb:.0f}" for name, mb in rss.items() if mb is not None)


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


async def amain(args: argparse.Namespace) -> int:
    soak = Soak(args)
    main_task = asyncio.current_task()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    try:
        return await soak.run()
    finally:
        await asyncio.shield(soak.cleanup())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=15)
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="leads per second")
    parser.add_argument("--service-env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the four services (repeatable)")
    args = parser.parse_args()
    try:
        return asyncio.run(amain(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted; everything started was stopped and the database dropped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
