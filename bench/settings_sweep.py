"""Client settings sweep: end-to-end latency at 200 and at 20 leads/s, and idle CPU, per value.

    .venv/bin/python bench/settings_sweep.py                        # KAFKA_FETCH_MAX_WAIT_MS
    .venv/bin/python bench/settings_sweep.py --vary KAFKA_FETCH_MAX_WAIT_MS=10,50 \
        --vary OUTBOX_LINGER_MS=5,20 --rounds 3 --seconds 20        # every combination
    .venv/bin/python bench/settings_sweep.py --broker tansu

Why: Apache Kafka answers a fetch as soon as data arrives, but aiokafka keeps one fetch in
flight per broker, for the partitions that have nothing waiting to be consumed; a partition
whose records were just handled is fetched again only once that fetch returns, i.e. after up
to KAFKA_FETCH_MAX_WAIT_MS when the other partitions are quiet. At 200 leads/s some partition
always has news, so the wait hardly shows; at a low rate it does. A short wait costs idle
polling CPU. Tansu holds every fetch the full wait. This measures both sides of the trade on
the broker chosen (default: Apache Kafka, one node).

Method: one broker and one migrated database (Postgres as in bench/pipeline.py) for the whole
run. For each combination of `--vary NAME=v1,v2,...` values, in `--rounds` interleaved rounds
(so a shared machine's slow spells fall on every value alike): the four services are started
as `gvn serve` processes with those settings, a smoke check and a 3 s warm-up at 100/s, then
`--seconds` (15) at a constant 200 leads/s (bench/pipeline.py's open-loop step and e2e
measure: kpi.facts recorded_at - occurred_at), split into stages (relay: scouting's outbox
row created to marked published, i.e. acknowledged by the broker; consumer: published to
kpi's fact inserted), then `--seconds` at `--low-rate` (20) leads/s, then 10 s idle in which
the CPU of the services and the broker is measured; the services are then stopped. Per
combination it prints the median over rounds of p50/p99 (and each round's p99), the relay's
p99, the low-rate p50/p99 and its consumer stage's p95/p99 (where the fetch wait shows, apart
from the relay), CPU ms per lead at 200/s (services + broker), idle CPU (% of one
core), and the largest `other` CPU (jobs outside the benchmark) of its rounds.
Output: a table, then ONE JSON line: {"broker", "results": [{"settings", "p50_ms", "p99_ms",
"p99_ms_rounds", "relay_p99_ms", "consumer_p99_ms", "low_rate_p50_ms", "low_rate_p99_ms",
"low_rate_consumer_p95_ms", "low_rate_consumer_p99_ms", "cpu_ms_per_lead", "idle_cpu_pct",
"other_pct_max"}, ...]}.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import itertools
import json
import multiprocessing
import signal
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from bench import loadgen  # noqa: E402
from bench.harness import (  # noqa: E402
    LEAD_SUBMITTED,
    Services,
    broker_pids,
    say,
    scout_tokens,
    start_broker,
)
from bench.pipeline import Bench, CpuMeter, Target, percentile  # noqa: E402

IDLE_SECONDS = 10.0


def combinations(vary: list[str]) -> list[dict[str, str]]:
    """Every combination of the values of `--vary NAME=v1,v2` options."""
    axes = []
    for item in vary:
        name, _, values = item.partition("=")
        axes.append([(name, value) for value in values.split(",")])
    return [dict(combo) for combo in itertools.product(*axes)]


class Sweep:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        # Bench gives the load step, the smoke check and the CPU meter of bench/pipeline.py.
        self.bench = Bench(argparse.Namespace(
            quick=False, service_env=[], step_seconds=None, duplicate_check="as-a_lead",
            client_procs=1, client="lean", max_inflight=64, broker=args.broker))
        self.services: Services | None = None
        self.results: dict[str, list[dict[str, Any]]] = {}

    async def run(self) -> int:
        bench = self.bench
        say(f"settings sweep on {self.args.broker}; logs in {bench.logdir}")
        say(f"  {await bench.postgres.start()}")
        bench.pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"),
            initializer=loadgen.ignore_sigint)
        await asyncio.get_running_loop().run_in_executor(bench.pool, loadgen.warm)
        bench.broker = await start_broker(self.args.broker, log_dir=bench.logdir)
        settings = await bench.postgres.fresh_platform_database("gvn_sweep")
        settings = settings.model_copy(update={
            "kafka_bootstrap_servers": bench.broker.bootstrap})
        tokens = await scout_tokens(settings, 64)
        combos = combinations(self.args.vary)
        conn = await asyncpg.connect(settings.database_url)
        try:
            for round_no in range(1, self.args.rounds + 1):
                for combo in combos:
                    say(f"\n== round {round_no}: {combo}")
                    result = await self.measure(settings, tokens, combo, conn)
                    self.results.setdefault(json.dumps(combo), []).append(result)
        finally:
            await conn.close()
        self.report()
        return 0

    async def measure(self, settings: Any, tokens: list[str], combo: dict[str, str],
                      conn: asyncpg.Connection) -> dict[str, Any]:
        self.services = Services(settings, log_dir=self.bench.logdir, env=combo)
        services = self.services
        try:
            await services.start_all()
            pids = {**services.pids(), **broker_pids(self.bench.broker)}
            target = Target("ours", services.url("scouting", "/v1/leads"), {},
                            settings.database_url, pids, tokens=tokens)
            self.bench.procs = services.procs  # Bench.step checks that they are alive
            await self.bench.smoke(target, conn)
            await self.bench.step(target, conn, 100, 3.0, "warm-up")
            step = await self.bench.step(target, conn, 200, self.args.seconds, "latency")
            stages = await self.stages(conn, target.accepted[-step["accepted"]:])
            low = (await self.bench.step(target, conn, self.args.low_rate, self.args.seconds,
                                         "low rate") if self.args.low_rate else None)
            low_stages = (await self.stages(conn, target.accepted[-low["accepted"]:])
                          if low else {})
            idle = await self.idle_cpu(pids, settings.database_url)
        finally:
            self.bench.procs = {}
            services.stop_all()
            self.services = None
        per_lead = sum(step["cpu"][n] for n in pids) * 10 / max(step["e2e_per_s"], 1e-6)
        say(f"  stages p50/p99 ms: relay (outbox row to published) {stages['relay_p50_ms']}/"
            f"{stages['relay_p99_ms']}, consumer (published to kpi fact) "
            f"{stages['consumer_p50_ms']}/{stages['consumer_p99_ms']}")
        if low_stages:
            say(f"  at {self.args.low_rate:.0f}/s: relay p50/p99 {low_stages['relay_p50_ms']}/"
                f"{low_stages['relay_p99_ms']} ms, consumer p50/p95/p99 "
                f"{low_stages['consumer_p50_ms']}/{low_stages['consumer_p95_ms']}/"
                f"{low_stages['consumer_p99_ms']} ms")
        say(f"  idle: services + broker {idle['ours']:.1f}% of a core "
            f"(other jobs {idle['other']:.0f}%)")
        return {**stages, "p50_ms": step["e2e_p50_ms"], "p99_ms": step["e2e_p99_ms"],
                "keeps_up": step["keeps_up"], "cpu_ms_per_lead": per_lead,
                "low_p50_ms": low["e2e_p50_ms"] if low else None,
                "low_p99_ms": low["e2e_p99_ms"] if low else None,
                "low_consumer_p95_ms": low_stages.get("consumer_p95_ms"),
                "low_consumer_p99_ms": low_stages.get("consumer_p99_ms"),
                "idle_cpu_pct": idle["ours"],
                "other_pct": max(step["cpu"]["other"], idle["other"])}

    @staticmethod
    async def stages(conn: asyncpg.Connection, ids: list[str]) -> dict[str, float | None]:
        """Where the time goes: the relay (outbox row written to marked published, i.e. acked
        by the broker) and the consumer side (published to kpi's fact inserted)."""
        rows = await conn.fetch(
            "SELECT extract(epoch FROM o.published_at - o.created_at) * 1000, "
            "extract(epoch FROM f.recorded_at - o.published_at) * 1000 "
            "FROM scouting.outbox o JOIN kpi.facts f ON f.event_id = o.event_id "
            "WHERE o.event_type = $1 AND o.key = ANY($2::text[])", LEAD_SUBMITTED, ids)
        relay, consumer = [float(r[0]) for r in rows], [float(r[1]) for r in rows]
        return {"relay_p50_ms": _r(percentile(relay, 50)),
                "relay_p99_ms": _r(percentile(relay, 99)),
                "consumer_p50_ms": _r(percentile(consumer, 50)),
                "consumer_p95_ms": _r(percentile(consumer, 95)),
                "consumer_p99_ms": _r(percentile(consumer, 99))}

    async def idle_cpu(self, pids: dict[str, int], dsn: str) -> dict[str, float]:
        meter = CpuMeter(pids, dsn.rsplit("/", 1)[-1].split("?")[0])
        before = meter.sample()
        await asyncio.sleep(IDLE_SECONDS)
        cpu = CpuMeter.usage(before, meter.sample(), 0.0)
        return {"ours": sum(cpu[n] for n in pids), "other": cpu["other"]}

    def report(self) -> None:
        say("\n== summary (medians over rounds) ==")
        say(f"  {'settings':<40} {'p50 ms':>7} {'p99 ms':>7}  {'p99 per round':<16} "
            f"{'relay p99':>9} {'low-rate p50/p99':>16} {'low consumer p95/p99':>20} "
            f"{'CPU ms/lead':>11} {'idle CPU %':>10} "
            f"{'other % max':>11}")
        lines = []
        for key, rounds in self.results.items():
            p99s = [r["p99_ms"] for r in rounds if r["p99_ms"] is not None]
            line = {
                "settings": json.loads(key),
                "p50_ms": _median([r["p50_ms"] for r in rounds]),
                "p99_ms": _median(p99s),
                "p99_ms_rounds": [round(v, 1) for v in p99s],
                "relay_p99_ms": _median([r["relay_p99_ms"] for r in rounds]),
                "consumer_p99_ms": _median([r["consumer_p99_ms"] for r in rounds]),
                "low_rate_p50_ms": _median([r["low_p50_ms"] for r in rounds]),
                "low_rate_p99_ms": _median([r["low_p99_ms"] for r in rounds]),
                "low_rate_consumer_p95_ms": _median([r["low_consumer_p95_ms"] for r in rounds]),
                "low_rate_consumer_p99_ms": _median([r["low_consumer_p99_ms"] for r in rounds]),
                "all_kept_up": all(r["keeps_up"] for r in rounds),
                "cpu_ms_per_lead": _median([r["cpu_ms_per_lead"] for r in rounds]),
                "idle_cpu_pct": _median([r["idle_cpu_pct"] for r in rounds]),
                "other_pct_max": round(max(r["other_pct"] for r in rounds), 1),
            }
            lines.append(line)
            low = f"{line['low_rate_p50_ms']}/{line['low_rate_p99_ms']}"
            low_consumer = (f"{line['low_rate_consumer_p95_ms']}/"
                            f"{line['low_rate_consumer_p99_ms']}")
            say(f"  {key:<40} {line['p50_ms']:>7} {line['p99_ms']:>7}  "
                f"{str(line['p99_ms_rounds']):<16} {line['relay_p99_ms']:>9} {low:>16} "
                f"{low_consumer:>20} "
                f"{line['cpu_ms_per_lead']:>11} {line['idle_cpu_pct']:>10} "
                f"{line['other_pct_max']:>11}")
        say(json.dumps({"broker": self.args.broker, "seconds": self.args.seconds,
                        "low_rate": self.args.low_rate,
                        "rounds": self.args.rounds, "results": lines}))

    async def cleanup(self) -> None:
        if self.services:
            self.services.stop_all()
        try:
            await self.bench.postgres.drop_databases()
        except Exception as error:  # keep cleaning up
            say(f"  could not drop {self.bench.postgres.databases}: {error}")
        await self.bench.cleanup()


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 2) if present else None


async def amain(args: argparse.Namespace) -> int:
    sweep = Sweep(args)
    main_task = asyncio.current_task()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    try:
        return await sweep.run()
    finally:
        await asyncio.shield(sweep.cleanup())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=["kafka", "tansu"], default="kafka")
    parser.add_argument("--vary", action="append", metavar="NAME=V1,V2,...",
                        help="a setting of the services and the values to try (repeatable: "
                        "every combination is measured); default KAFKA_FETCH_MAX_WAIT_MS="
                        "5,10,25,50,100")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per value")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds at 200 leads/s")
    parser.add_argument("--low-rate", type=float, default=20.0,
                        help="a second latency step at this rate (0: none): where a partition "
                        "waits for the fetch of the others, quiet ones, to come back")
    args = parser.parse_args()
    args.vary = args.vary or ["KAFKA_FETCH_MAX_WAIT_MS=5,10,25,50,100"]
    try:
        return asyncio.run(amain(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted; everything started was stopped and the databases dropped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
