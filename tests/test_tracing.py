"""Traces: a request whose caller records its trace shows up as spans (the request, the relay's
send, each consumer); any other request still gives its events a trace id, at no span's cost."""

import json
import secrets
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.conftest import Platform, a_lead, eventually

pytestmark = pytest.mark.broker

_exporter = InMemorySpanExporter()


@pytest.fixture
def spans(platform: Platform) -> Iterator[InMemorySpanExporter]:
    """What the services record, as a collector would receive it (one processor per session:
    a tracer provider cannot drop one)."""
    provider = trace.get_tracer_provider()
    if not getattr(provider, "_gvn_test_exporter", False):
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        provider._gvn_test_exporter = True
    _exporter.clear()
    yield _exporter


def in_trace(exporter: InMemorySpanExporter, trace_id: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans()
            if format(span.context.trace_id, "032x") == trace_id]


def traceparent(*, sampled: bool) -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


async def test_a_recorded_trace_shows_the_request_the_send_and_each_consumer(
    platform: Platform, spans: InMemorySpanExporter,
) -> None:
    trace_id, caller_span, header = traceparent(sampled=True)
    answer = await platform.scouting.post("/v1/leads", json=a_lead(), headers={
        **platform.auth("scout"), "traceparent": header})
    assert answer.status_code == 201, answer.text

    async def consumed() -> list[ReadableSpan]:
        done = [s for s in in_trace(spans, trace_id) if s.kind == SpanKind.CONSUMER]
        return done if len(done) >= 3 else []

    consumers = await eventually(consumed)
    [request] = [s for s in in_trace(spans, trace_id) if s.kind == SpanKind.SERVER]
    assert request.name == "POST /v1/leads"
    assert format(request.parent.span_id, "016x") == caller_span
    assert request.attributes["http.route"] == "/v1/leads"
    assert request.attributes["http.response.status_code"] == 201
    [send] = [s for s in in_trace(spans, trace_id) if s.kind == SpanKind.PRODUCER
              and s.name == "publish scouting.leads"]
    assert send.parent.span_id == request.context.span_id
    assert {s.parent.span_id for s in consumers} == {send.context.span_id}


async def test_a_span_is_named_by_its_route_not_by_the_record_it_reads(
    platform: Platform, spans: InMemorySpanExporter,
) -> None:
    trace_id, _, header = traceparent(sampled=True)
    missing = "00000000-0000-4000-8000-000000000000"
    answer = await platform.scouting.get(f"/v1/leads/{missing}", headers={
        **platform.auth("manager"), "traceparent": header})
    assert answer.status_code == 404
    [request] = in_trace(spans, trace_id)
    assert request.name == "GET /v1/leads/{lead_id}"
    assert request.attributes["url.path"] == f"/v1/leads/{missing}"
    assert request.attributes["http.response.status_code"] == 404


async def test_an_unrecorded_request_records_nothing_but_its_event_keeps_the_trace(
    platform: Platform, spans: InMemorySpanExporter,
) -> None:
    trace_id, _, header = traceparent(sampled=False)
    traced = await platform.scouting.post("/v1/leads", json=a_lead(), headers={
        **platform.auth("scout"), "traceparent": header})
    untraced = await platform.scouting.post("/v1/leads", json=a_lead(title="Another need"),
                                            headers=platform.auth("scout"))
    assert traced.status_code == untraced.status_code == 201

    async def headers_of(lead_id: str) -> dict[str, str]:
        [row] = await platform.sql("SELECT headers FROM scouting.outbox WHERE key = $1", lead_id)
        return json.loads(row["headers"])

    assert (await headers_of(traced.json()["id"]))["traceparent"].split("-")[1] == trace_id
    own_trace = (await headers_of(untraced.json()["id"]))["traceparent"].split("-")
    assert own_trace[1] not in (trace_id, "0" * 32)
    assert int(own_trace[3], 16) & 1 == 0  # not sampled: no collector in the tests

    async def delivered() -> bool:  # the event reached a consumer: its span would be there
        rows = await platform.sql("SELECT trace_id FROM kpi.inbox WHERE trace_id = $1", trace_id)
        return bool(rows)

    await eventually(delivered)
    assert in_trace(spans, trace_id) == []
    assert in_trace(spans, own_trace[1]) == []
