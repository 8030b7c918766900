"""Chaos benchmark: leads posted while services and brokers crash; every effect once, none lost.

    .venv/bin/python bench/chaos.py                     # 10,000 leads at 75/s (~2.5 minutes)
    .venv/bin/python bench/chaos.py --leads 2000 --service-kills 8 --broker-kills 1   # shorter

Not a test: it prints figures. What one run does:

1. Postgres as in bench/harness.py (the configured server, else an embedded one); a fresh
   database migrated with shared.migrations.migrate_all, scout keys from shared.keys.
2. A three-node Apache Kafka cluster (KafkaCluster(3), KRaft) and the four services as
   `gvn serve <service>` processes pointed at it with cluster.settings_for(...): topics get
   replication factor 3 and min.insync.replicas 2 (KAFKA_REPLICATION_FACTOR=3,
   KAFKA_MIN_INSYNC_REPLICAS=2 in their environment). WRITE_RATE_PER_MINUTE=0: the per-key
   limiter is not under test. Logs (LOG_LEVEL=INFO) go to a temporary folder, named at the end.
3. Posts `--leads` leads (lead i falls due at start + i/`--rate`). Each has its own
   Idempotency-Key and a title naming its number; a POST that meets a connection error, a
   timeout, a 5xx or a 429 is sent again (backoff 0.1 s doubling to 1 s), same key and body,
   until it is answered: a retry after a crash is then never a second lead. At most 32 leads
   are in flight; while scouting is down the leads falling due queue (chaos_parts.Poster). A
   lead counts as accepted when a 201 arrived for it.
4. Meanwhile, faults (chaos.Faults): `--service-kills` times a random service is killed with
   SIGKILL, and started again at once or after up to `--max-pause` s; `--broker-kills` times the
   node leading a random partition of `scouting.leads` is killed with SIGKILL and started again
   (KafkaCluster.start_node) after `--broker-pause` s. Faults are spread over the posting time;
   if the posting ends first, the remaining faults follow one another at once.
5. With every process up again, waits (up to `--converge-timeout` s) until every accepted lead
   has its effect in all three consumers, then checks every effect (chaos.Audit):
   matching.demands and crm.opportunities rows keyed by the lead id, kpi.facts rows with
   subject = the lead id and the lead.submitted type. Lost = accepted leads missing in a
   consumer; duplicated = effects beyond one per lead (by effect, not delivery: a redelivered
   event that the inbox turned away is fine), plus leads the scouting service made twice for
   one Idempotency-Key. Also shown: outbox rows marked failed or left unpublished, events per
   lead in scouting's outbox, and the records on dead-letter topics.
6. Stops every process it started and drops the database, also on errors and Ctrl-C.

Output: accepted, handled per consumer, lost, duplicated, faults injected, seconds from the
last fault (the last kill) to convergence, then ONE JSON line: accepted, lost, duplicated,
service_kills, broker_kills, converged_s (null when it never converged). Targets: lost = 0,
duplicated = 0, converged_s <= 60. Exit status 1 when lost or duplicated is not 0.
The machine has 2 cores shared with other work; a busy machine stretches convergence.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.chaos_parts import Audit, Faults, Poster  # noqa: E402
from bench.harness import Postgres, Services, say, scout_tokens  # noqa: E402
from shared.broker import KafkaCluster  # noqa: E402
from shared.settings import SERVICES  # noqa: E402


class Chaos:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run_id = uuid.uuid4().hex[:8]
        self.logdir = Path(tempfile.mkdtemp(prefix=f"gvn-chaos-{self.run_id}-"))
        self.postgres = Postgres()
        self.cluster: KafkaCluster | None = None
        self.services: Services | None = None
        self.after_posting_s: float | None = None

    async def run(self) -> int:
        args = self.args
        say(f"chaos run {self.run_id}; logs in {self.logdir}")
        say(f"  {await self.postgres.start()}")
        self.cluster = KafkaCluster(3, log_dir=self.logdir)
        self.cluster.start()  # from the main thread: the nodes die with this process
        settings = self.cluster.settings_for(
            await self.postgres.fresh_platform_database("gvn_chaos"))
        say(f"  Kafka (3 nodes) on {self.cluster.bootstrap}; database "
            f"{self.postgres.databases[-1]}")
        tokens = await scout_tokens(settings, 8)
        self.services = Services(settings, log_dir=self.logdir, env={
            "LOG_LEVEL": "INFO", "WRITE_RATE_PER_MINUTE": "0"})
        await self.services.start_all()
        say(f"  four services up: {self.services.ports}")

        poster = Poster(self.services.url("scouting", "/v1/leads"), tokens,
                        run_id=self.run_id, rate=args.rate, leads=args.leads)
        faults = Faults(self.cluster, self.services, service_kills=args.service_kills,
                        broker_kills=args.broker_kills, max_pause=args.max_pause,
                        broker_pause=args.broker_pause, seed=args.seed)
        began = time.monotonic()
        posting = asyncio.create_task(poster.run())
        try:
            await faults.run(spread_over=args.leads / args.rate, posting=posting)
            await posting
        finally:
            posting.cancel()  # on an error: no more requests during the clean-up
        posting_ended = time.monotonic()
        say(f"  posting done in {posting_ended - began:.0f}s: {poster.summary()}")
        await self.ensure_everything_up()

        audit = Audit(settings, poster.accepted, run_id=self.run_id)
        converged_at = await audit.wait_for_convergence(within_s=args.converge_timeout)
        figures = await audit.check()
        converged_s = (round(converged_at - faults.last_fault, 1)
                       if converged_at is not None else None)
        self.after_posting_s = (round(converged_at - posting_ended, 1)
                                if converged_at is not None else None)
        self.report(poster, faults, audit, figures, converged_s)
        return 0 if figures["lost"] == 0 and figures["duplicated"] == 0 else 1

    async def ensure_everything_up(self) -> None:
        """Every service and broker node running, as after any fault's restart."""
        assert self.services and self.cluster
        for service in self.services.dead():
            say(f"  WARNING: {service} was down after the faults; starting it")
            self.services.start(service)
            await self.services.wait_ready(service)
        for node in self.cluster.ids:
            if not self.cluster.alive(node):
                say(f"  WARNING: Kafka node {node} was down after the faults; starting it")
                self.cluster.start_node(node, wait=False)
        await asyncio.to_thread(self.cluster.wait_until_ready)

    def report(self, poster: Poster, faults: Faults, audit: Audit, f: dict,
               converged_s: float | None) -> None:
        say("\n== effects ==")
        say(f"  accepted (201): {f['accepted']} of {self.args.leads} posted "
            f"({poster.replayed} answered from the idempotency store after a retry, "
            f"{sum(poster.retries.values())} retries, gave up on {len(poster.gave_up)}, "
            f"refused {dict(poster.refused)})")
        say(f"  scouting: {f['scouting_leads']} leads of this run; "
            f"{f['source_duplicates']} made twice for one Idempotency-Key; "
            f"{f['events_per_lead_above_one']} extra lead.submitted outbox rows; "
            f"outbox failed {f['outbox_failed']}, unpublished {f['outbox_unpublished']}; "
            f"{f['records_on_scouting_leads']} records on scouting.leads (more than leads: "
            f"sent again by a relay killed before it marked them published)")
        for consumer in ("matching", "crm", "kpi"):
            c = f["consumers"][consumer]
            say(f"  {consumer:<9} handled {c['handled']:>6}  lost {c['lost']:>4}  "
                f"duplicated {c['duplicated']:>3}  inbox rows {c['inbox']}  "
                f"dead-lettered {c['dead_lettered']}" +
                (f"  e.g. missing {c['missing_sample']}" if c["missing_sample"] else ""))
        say(f"  lost {f['lost']} (accepted leads missing in at least one consumer), "
            f"duplicated {f['duplicated']}")
        say(f"  faults: {faults.service_kills} service kills "
            f"({', '.join(f'{s} {faults.kills_by_service[s]}' for s in SERVICES)}), "
            f"{faults.broker_kills} broker kills (nodes {faults.broker_nodes_killed})"
            + (f"; restarts that did not become ready in time: {faults.restart_failures}"
               if faults.restart_failures else ""))
        say(f"  converged {converged_s} s after the last fault"
            + (f" ({self.after_posting_s} s after the last lead was accepted)"
               if converged_s is not None else
               f" -- NOT converged within {self.args.converge_timeout} s"))
        say(f"  logs in {self.logdir}")
        say(json.dumps({"accepted": f["accepted"], "lost": f["lost"],
                        "duplicated": f["duplicated"], "service_kills": faults.service_kills,
                        "broker_kills": faults.broker_kills, "converged_s": converged_s}))

    async def cleanup(self) -> None:
        if self.services:
            self.services.stop_all()
        if self.cluster:
            self.cluster.stop()
        try:
            await self.postgres.drop_databases()
        except Exception as error:  # keep cleaning up
            say(f"  could not drop {self.postgres.databases}: {error}")
        self.postgres.stop()


async def amain(args: argparse.Namespace) -> int:
    chaos = Chaos(args)
    main_task = asyncio.current_task()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    try:
        return await chaos.run()
    finally:
        await asyncio.shield(chaos.cleanup())


def main() -> int:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # our own admin clients' retries
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=75.0, help="leads posted per second")
    parser.add_argument("--service-kills", type=int, default=24)
    parser.add_argument("--broker-kills", type=int, default=2)
    parser.add_argument("--max-pause", type=float, default=3.0,
                        help="a killed service starts again after 0..this many seconds")
    parser.add_argument("--broker-pause", type=float, default=5.0,
                        help="seconds a killed broker node stays down")
    parser.add_argument("--converge-timeout", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=None, help="random seed of the faults")
    args = parser.parse_args()
    try:
        return asyncio.run(amain(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted; everything started was stopped and the database dropped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
