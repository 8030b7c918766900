"""Tracing and JSON logs: one call per process, so every service reports the same way."""

import json
import logging
import sys
from datetime import UTC, datetime

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from opentelemetry.trace import SpanKind
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


def sampled(carrier: dict[str, str]) -> bool:
    """Whether the trace a carrier names is recorded (its traceparent's sampled flag), so that
    a span in it is worth making: even unrecorded, a span costs an event a tenth of its relay."""
    parts = carrier.get("traceparent", "").split("-")
    try:
        return len(parts) == 4 and int(parts[3], 16) & 1 == 1
    except ValueError:
        return False


TRACE_HEADERS = ("traceparent", "tracestate")  # W3C trace context, as events carry it too
_TRACE_HEADERS = tuple(name.encode() for name in TRACE_HEADERS)


class TraceRequests:
    """One server span per HTTP request, current while the app answers it, so the events and
    logs the request causes carry its trace id; a caller's `traceparent` is continued.

    Written here because the libraries cost a POST far more, recorded or not: FastAPI's own
    telemetry builds every span's attributes and wraps receive and send (9% more instructions
    per POST, callgrind), opentelemetry-instrumentation-asgi even with its send and receive
    spans off 20% more. Here an unrecorded span costs only its ids."""

    def __init__(self, app: ASGIApp, *, service: str, untraced: frozenset[str]) -> None:
        self.app = app
        self.tracer = tracer(service)
        self.untraced = untraced

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.untraced:
            return await self.app(scope, receive, send)
        carrier = {name.decode("latin-1"): value.decode("latin-1")
                   for name, value in scope["headers"] if name in _TRACE_HEADERS}
        parent = propagate.extract(carrier) if carrier else None
        method = scope["method"]
        span = self.tracer.start_span(method, context=parent, kind=SpanKind.SERVER)
        token = context.attach(trace.set_span_in_context(span, parent))
        try:
            if not span.is_recording():
                return await self.app(scope, receive, send)
            await self._recorded(span, scope, receive, send)
        finally:
            context.detach(token)
            span.end()

    async def _recorded(self, span: trace.Span, scope: Scope, receive: Receive,
                        send: Send) -> None:
        method = scope["method"]
        span.set_attributes({"http.request.method": method, "url.path": scope["path"]})

        async def send_noting_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(trace.StatusCode.ERROR)
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        except Exception as error:
            span.record_exception(error)
            span.set_status(trace.StatusCode.ERROR)
            raise
        finally:
            if route := getattr(scope.get("route"), "path", None):
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
