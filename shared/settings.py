"""Settings from the environment: the one place every knob of the platform is defined."""

from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.programme import MARKETS

SERVICES = ("scouting", "matching", "crm", "kpi")
ServiceName = Literal["scouting", "matching", "crm", "kpi"]
DEFAULT_PORTS = {"scouting": 8001, "matching": 8002, "crm": 8003, "kpi": 8004}


class Settings(BaseSettings):
    """Every setting of the platform; names are the environment variables (case-insensitive)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/gvn",
        description="Postgres server and database. Its credentials are used only by the "
        "bootstrap step (roles, schemas); services connect as their own role.",
    )
    db_role_password: str = Field(
        "", description="Password of the per-service roles gvn_<service> (empty: trust auth)."
    )
    db_pool_size: int = Field(
        10, ge=1, le=200, description="Connections per service process and pool (requests "
        "beyond it wait for one: opening connections under load costs more than waiting).")
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka brokers, comma separated."
    )
    kafka_topic_partitions: int = Field(6, ge=1, le=1000, description="Partitions per topic.")
    kafka_replication_factor: int = Field(1, ge=1, le=5, description="Replicas per topic.")
    kafka_min_insync_replicas: int = Field(
        1, ge=1, le=5, description="Replicas that must have a write before acks=all answers "
        "(topic setting min.insync.replicas; 2 with replication factor 3 in production).")
    kafka_retention_hours: float = Field(
        168.0, gt=0, description="How long the broker keeps events (topic setting retention.ms).")
    kafka_fetch_max_wait_ms: int = Field(
        50, ge=0, le=5000, description="How long the broker may hold a fetch: the dev broker "
        "holds each fetch this long, so it trades latency against polling cost.")
    outbox_batch_size: int = Field(500, ge=1, le=10000, description="Rows per relay batch.")
    outbox_poll_interval_s: float = Field(
        1.0, gt=0, description="Relay poll when no wake-up arrives (safety net)."
    )
    outbox_linger_ms: float = Field(
        20.0, ge=0, le=1000, description="After a partial batch, the relay waits this long "
        "before the next, so that under load it sends fewer, fuller batches (a batch costs "
        "the relay about 0.4 ms of CPU besides its events).")
    outbox_retention_days: float = Field(
        7.0, ge=0, description="Published outbox rows are kept this long for replays."
    )
    consumer_max_attempts: int = Field(
        3, ge=1, le=20, description="Attempts per event before it is dead-lettered."
    )
    consumer_retry_backoff_ms: int = Field(
        100, ge=0, le=60000, description="First retry delay; doubles per attempt."
    )
    max_body_bytes: int = Field(65536, ge=1024, description="Largest accepted request body.")
    write_rate_per_minute: int = Field(
        1200, ge=0, description="Writes a minute per API key and service process (0: no limit).")
    write_burst: int = Field(120, ge=1, description="Writes a key may make in a burst.")
    auth_cache_seconds: float = Field(
        2.0, ge=0, le=300, description="How long a service remembers a key it looked up; a "
        "revocation takes effect within this time (0: look up on every request).")
    otel_exporter_otlp_endpoint: str | None = Field(
        None, description="OTLP/HTTP collector, e.g. http://otel-collector:4318. Unset: spans "
        "are not recorded (trace ids still ride with events and logs)."
    )
    log_level: str = Field("INFO", description="Python log level.")
    host: str = Field("127.0.0.1", description="Interface the HTTP server binds.")
    port: int | None = Field(None, description="HTTP port; default per service 8001..8004.")
    data_dir: str = Field(".gvn", description="Where `gvn up` keeps embedded Postgres data.")
    extra_markets: str = Field(
        "", description="More market codes beyond the programme's ten, comma separated.")

    @property
    def markets(self) -> tuple[str, ...]:
        """The market codes in force: the programme's ten, then EXTRA_MARKETS."""
        extra = [m.strip().upper() for m in self.extra_markets.split(",") if m.strip()]
        return tuple(MARKETS) + tuple(m for m in extra if m not in MARKETS)

    def service_database_url(self, service: str) -> str:
        """The DSN a service uses: same server and database, the service's own role."""
        parts = urlsplit(self.database_url)
        host = parts.netloc.rsplit("@", 1)[-1]
        password = f":{self.db_role_password}" if self.db_role_password else ""
        return urlunsplit(parts._replace(netloc=f"gvn_{service}{password}@{host}"))

    def port_for(self, service: str) -> int:
        return self.port or DEFAULT_PORTS[service]


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
