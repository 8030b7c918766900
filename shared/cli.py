"""`gvn`: run the platform, migrate, manage keys, replay the outbox and dead letters."""

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta
from uuid import UUID

from shared.auth import ROLES
from shared.settings import SERVICES, get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gvn", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run the whole platform (embedded broker/DB if needed)")
    up.add_argument("--no-demo", action="store_true", help="do not load the demo data")
    commands.add_parser("migrate", help="bootstrap roles and schemas, run every migration")
    commands.add_parser("topics", help="create the platform's Kafka topics")
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
    return asyncio.run(_run(args)) if args.command != "serve" else _serve(args.service)


async def _run(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.command == "up":
        from shared.platform import run_platform

        return await run_platform(settings, demo=not args.no_demo)
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
