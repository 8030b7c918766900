"""Prometheus metrics of event flow; every service exports the same names, labelled by service."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PUBLISHED = Counter(
    "gvn_events_published_total", "Events the outbox relay published.", ["service", "topic"]
)
EVENTS_CONSUMED = Counter(
    "gvn_events_consumed_total",
    "Events a consumer took in, by outcome (handled, duplicate).",
    ["service", "consumer", "outcome"],
)
EVENTS_RETRIED = Counter(
    "gvn_events_retried_total", "Handler attempts that failed and were retried.",
    ["service", "consumer"],
)
EVENTS_DEAD_LETTERED = Counter(
    "gvn_events_dead_lettered_total", "Events sent to a dead-letter topic.", ["service", "consumer"]
)
OUTBOX_BACKLOG = Gauge("gvn_outbox_backlog", "Outbox rows not yet published.", ["service"])
OUTBOX_OLDEST_AGE = Gauge(
    "gvn_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row.", ["service"]
)
OUTBOX_FAILED = Gauge(
    "gvn_outbox_failed", "Outbox rows the relay could not send at all (marked failed, kept).",
    ["service"],
)
OUTBOX_REFILLS = Counter(
    "gvn_outbox_refills_total", "Times the relay found the broker lacking events it had "
    "published (a restarted or rebuilt broker) and queued them again from the outbox.",
    ["service"],
)
CONSUMER_LAG = Gauge(
    "gvn_consumer_lag", "Records on a partition the group has not committed yet (end offset "
    "minus committed offset; on Tansu: high-water mark minus the member's position).",
    ["service", "group", "topic", "partition"],
)
HANDLER_SECONDS = Histogram(
    "gvn_handler_seconds", "Time to handle one batch of events in one transaction.",
    ["service", "consumer"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
