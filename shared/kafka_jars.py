"""Apache Kafka's jars, fetched by Maven from Maven Central into a cache outside the work tree.

The version is the one pinned in deploy/kafka/pom.xml (docker-compose.yml and deploy/ run the
same; a test checks). Fetched once per machine, into ~/.cache/gvn/kafka-<version>/libs (or
$XDG_CACHE_HOME/gvn/...); later runs only check the folder is complete.
"""

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

KAFKA_DIR = Path(__file__).resolve().parents[1] / "deploy" / "kafka"
POM = KAFKA_DIR / "pom.xml"
LOG_CONFIG = KAFKA_DIR / "log4j2.properties"


class KafkaUnavailable(RuntimeError):
    """Apache Kafka cannot run here: no Java 17+, or no jars and no Maven to fetch them."""


@cache
def version() -> str:
    """The Apache Kafka release the platform pins."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    assert match, f"no <kafka.version> in {POM}"
    return match.group(1)


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "gvn" / f"kafka-{version()}"


def java_version() -> int | None:
    """The major version of the `java` on PATH, or None without one."""
    if not shutil.which("java"):
        return None
    shown = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)', shown)
    return int(match.group(1)) if match else None


def unavailable_reason() -> str | None:
    """Why Apache Kafka cannot be started here, or None when it can."""
    java = java_version()
    if java is None or java < 17:
        return f"Apache Kafka {version()} needs Java 17+ (found {java or 'no java'})"
    if not _complete() and not shutil.which("mvn"):
        return f"no cached Kafka jars in {cache_dir()} and no Maven to fetch them"
    return None


def _complete() -> bool:
    return (cache_dir() / "libs" / ".complete").exists()


def classpath() -> str:
    """The broker's classpath, fetching the jars first if this machine has not got them."""
    libs = cache_dir() / "libs"
    if not _complete():
        reason = unavailable_reason()
        if reason:
            raise KafkaUnavailable(reason)
        shutil.rmtree(libs, ignore_errors=True)
        fetched = subprocess.run(
            ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
             "-DincludeScope=runtime", f"-DoutputDirectory={libs}"],
            capture_output=True, text=True)
        if fetched.returncode != 0:
            raise KafkaUnavailable(f"Maven could not fetch Kafka {version()}:\n"
                                   f"{fetched.stdout[-2000:]}{fetched.stderr[-2000:]}")
        (libs / ".complete").touch()
    return f"{libs}/*"
