"""Tracing and JSON logs: one call per process, so every service reports the same way."""

import json
import logging
import sys
from datetime import UTC, datetime

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased

from shared.settings import Settings

_configured = False


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the trace and span ids of the current span."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
            entry["span_id"] = format(span.span_id, "016x")
        for key in ("service", "event_id", "event_type", "consumer"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_telemetry(settings: Settings, *, service: str) -> None:
    """Install the tracer provider (OTLP export when configured) and JSON logging, once."""
    global _configured
    if _configured:
        return
    _configured = True
    # Without a collector no span is recorded (recording one nobody receives cost a request
    # a tenth of its CPU), but every request still gets a trace id, which rides with its
    # events and logs; a caller's sampled trace is recorded either way.
    exported = bool(settings.otel_exporter_otlp_endpoint)
    provider = TracerProvider(resource=Resource.create({"service.name": f"gvn-{service}"}),
                              sampler=ParentBased(ALWAYS_ON if exported else ALWAYS_OFF))
    if exported:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


def tracer(service: str) -> trace.Tracer:
    return trace.get_tracer(f"gvn.{service}")
