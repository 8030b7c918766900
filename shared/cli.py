"""`gvn`: run the platform, migrate, manage keys, replay the outbox and dead letters."""

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

from shared.auth import ROLES
from shared.settings import SERVICES, get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gvn", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run the whole platform (embedded broker/DB if needed)")
    up.add_argument("--no-demo", action="store_true", help="do not load the demo data")
    up.add_argument("--broker", choices=("auto", "kafka", "tansu"), default="auto",
                    help="auto (default): Apache Kafka where Java 17+ and its jars or Maven are "
                    "found, else the embedded Tansu; none when KAFKA_BOOTSTRAP_SERVERS is set")
    commands.add_parser("down", help="stop the platform a `gvn up` runs (in the background)")
    commands.add_parser("migrate", help="bootstrap roles and schemas, run every migration")
    commands.add_parser("topics", help="create the platform's Kafka topics")
    broker = commands.add_parser(
        "broker", help="run a local broker in the foreground (Ctrl-C stops it)")
    broker.add_argument("--kind", choices=("kafka", "tansu"), default="kafka")
    broker.add_argument("--nodes", type=int, default=1,
                        help="Apache Kafka nodes (3: a quorum of three, topics with 3 replicas "
                        "and min ISR 2)")
    broker.add_argument("--data", type=Path, help="Kafka data folder (default: a temporary "
                        "one, deleted at the end)")
    commands.add_parser("asyncapi", help="print the AsyncAPI document of every event")
    serve = commands.add_parser("serve", help="run one service (API, relay, consumers)")
    serve.add_argument("service", choices=SERVICES)

    keys = commands.add_parser("keys", help="create or revoke API keys").add_subparsers(
        dest="action", required=True)
    create = keys.add_parser("create", help="create a key; the token is printed once")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--cluster", help="cluster code (not for ops and admin)")
    create.add_argument("--name", required=True, help="who or what holds the key")
    revoke = keys.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id", type=UUID)

    replay = commands.add_parser(
        "replay-outbox", help="publish a service's retained events again, retry failed ones")
    replay.add_argument("service", choices=SERVICES)
    replay.add_argument("--hours", type=float, default=24.0, help="how far back (default 24)")

    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args.service)
    if args.command == "broker":
        return _broker(args)
    if args.command == "down":
        from shared.platform import stop_platform

        return stop_platform(get_settings())
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.command == "up":
        from shared.platform import run_platform

        return await run_platform(settings, demo=not args.no_demo, broker=args.broker)
    if args.command == "migrate":
        from shared.migrations import migrate_all

        await migrate_all(settings)
        print("migrated:", ", ".join(SERVICES))
    elif args.command == "topics":
        from shared.broker import ensure_topics

        await ensure_topics(settings)
    elif args.command == "asyncapi":
        import json

        from shared.asyncapi import asyncapi_document

        print(json.dumps(asyncapi_document(), indent=2))
    elif args.command == "keys":
        return await _keys(settings, args)
    elif args.command == "replay-outbox":
        from shared.outbox import replay

        since = datetime.now(UTC) - timedelta(hours=args.hours)
        count = await replay(settings.service_database_url(args.service), service=args.service,
                             since=since)
        print(f"{count} events of {args.service} queued for publishing again")
    return 0


async def _keys(settings, args: argparse.Namespace) -> int:  # noqa: ANN001
    from shared import keys

    if args.action == "create":
        try:
            key_id, token = await keys.create_key(settings, role=args.role, cluster=args.cluster,
                                                  name=args.name)
        except ValueError as error:
            print(f"gvn: {error}", file=sys.stderr)
            return 2
        print(f"key id: {key_id}\ntoken:  {token}\n(the token is shown only now; keep it safe)")
        return 0
    if await keys.revoke(settings, key_id=args.key_id):
        print(f"revoked {args.key_id}")
        return 0
    print(f"gvn: no active key {args.key_id}", file=sys.stderr)
    return 1


def _broker(args: argparse.Namespace) -> int:
    import signal

    from shared.broker import KafkaCluster, TansuBroker

    ports = [9092 + 2 * i for i in range(args.nodes)] + [9093 + 2 * i for i in range(args.nodes)]
    broker = (TansuBroker(9092) if args.kind == "tansu"
              else KafkaCluster(args.nodes, data_dir=args.data, ports=ports))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    broker.start()
    try:
        print(f"{args.kind} at {broker.bootstrap}; for the services:\n"
              f"  export KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap}", flush=True)
        if isinstance(broker, KafkaCluster) and args.nodes >= 3:
            print("  export KAFKA_REPLICATION_FACTOR=3 KAFKA_MIN_INSYNC_REPLICAS=2", flush=True)
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()
    return 0


def _serve(service: str) -> int:
    import importlib

    import uvicorn

    from shared.service import tune_garbage_collector

    settings = get_settings()
    app = importlib.import_module(f"services.{service}.main").create_app()
    tune_garbage_collector()
    uvicorn.run(app, host=settings.host, port=settings.port_for(service), log_config=None,
                access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
