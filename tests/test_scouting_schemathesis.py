"""Scouting's OpenAPI document against the running service, fuzzed by schemathesis: no request
gets a 5xx, and every answer has a documented status code, content type and body shape.

The service needs the run's Postgres and broker, so the `platform` fixture's scouting app is
served by uvicorn on a loopback port from the tests' own event loop, while schemathesis (which is
synchronous) sends its requests from a worker thread. Operations are read from the live document,
so endpoints added later are fuzzed too.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import INTERNAL_TOKEN, Platform, a_lead, eventually

# schemathesis' own strategies trip this Hypothesis deprecation; nothing for us to act on.
pytestmark = pytest.mark.filterwarnings(
    "ignore::hypothesis.errors.HypothesisDeprecationWarning")

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
MAX_EXAMPLES = 50

@pytest.fixture(scope="module")
async def served(platform: Platform) -> AsyncIterator[str]:
    """The platform's scouting app on a free loopback port, served from this event loop."""
    server = uvicorn.Server(uvicorn.Config(platform.apps["scouting"], host="127.0.0.1", port=0,
                                           lifespan="off", log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started
    await eventually(started, timeout=10)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


async def new_lead(platform: Platform) -> str:
    """A lead the scout and the manager may both see, so requests reach past the 404."""
    answer = await platform.scouting.post("/v1/leads", json=a_lead(
        title=f"Fuzzed lead {uuid.uuid4().hex}",
        counterpart_contact={"name": "Dr. Fuzz", "email": "fuzz@example.org"}),
        headers=platform.auth("scout"))
    assert answer.status_code == 201
    return answer.json()["id"]


@pytest.fixture(scope="module")
async def lead_id(platform: Platform) -> str:
    return await new_lead(platform)


@pytest.fixture(scope="module")
def schema(platform: Platform) -> Any:
    return schemathesis.openapi.from_dict(platform.apps["scouting"].openapi())


def operations(schema: Any) -> list[Any]:
    """Every operation the service documents."""
    return [result.ok() for result in schema.get_all_operations()]


def takes_input(operation: Any) -> bool:
    """Whether there is anything to send wrong (negative testing needs something to break)."""
    return any(len(list(part)) for part in (operation.path_parameters, operation.query,
                                            operation.headers, operation.body))


def fuzz(operation: Any, *, base_url: str, headers: dict[str, str], mode: GenerationMode,
         lead_id: str) -> None:
    """Send up to MAX_EXAMPLES generated requests (seeded) and check every answer."""
    strategy = operation.as_strategy(generation_mode=mode)
    if "{lead_id}" in operation.path:
        strategy = st.one_of(strategy, operation.as_strategy(
            generation_mode=mode, path_parameters={"lead_id": lead_id}))
    checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])
    session = requests.Session()

    @hypothesis.settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None,
                         deadline=None, suppress_health_check=list(hypothesis.HealthCheck),
                         print_blob=False, report_multiple_bugs=False)
    @hypothesis.given(case=strategy)
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base_url, session=session, headers=headers,
                               checks=checks, timeout=10)

    try:
        run()
    finally:
        session.close()


@pytest.mark.parametrize("who", ["manager", "scout"])
async def test_valid_requests_get_a_documented_answer_and_never_a_server_error(
    platform: Platform, served: str, schema: Any, lead_id: str, who: str, subtests: Any,
) -> None:
    headers = platform.auth(who) | {"X-Internal-Token": INTERNAL_TOKEN}
    for operation in operations(schema):
        with subtests.test(operation=operation.label):
            await asyncio.to_thread(fuzz, operation, base_url=served, headers=headers,
                                    mode=GenerationMode.POSITIVE, lead_id=lead_id)


async def test_invalid_requests_get_a_documented_answer_and_never_a_server_error(
    platform: Platform, served: str, schema: Any, lead_id: str, subtests: Any,
) -> None:
    for operation in filter(takes_input, operations(schema)):
        with subtests.test(operation=operation.label):
            await asyncio.to_thread(fuzz, operation, base_url=served,
                                    headers=platform.auth("manager"),
                                    mode=GenerationMode.NEGATIVE, lead_id=lead_id)


# Values the schema allows that random generation rarely draws; each answered 500 once (fixed).
EDGE_CASES = {
    "a NUL character in a title": (
        "POST /v1/leads", {"body": a_lead(title="Probe \u0000 title")}),
    "a NUL character in a counterpart's name": (
        "POST /v1/leads", {"body": a_lead(counterpart={"name": "Probe \u0000 KK"})}),
    "a NUL character in a duplicate check": (
        "POST /v1/leads/duplicate-check", {"body": a_lead(title="Probe \u0000 title")}),
    "a NUL character in a correction": (
        "PATCH /v1/leads/{lead_id}", {"body": {"title": "Probe \u0000 title"}}),
    "a NUL character in a rejection reason": (
        "POST /v1/leads/{lead_id}/transitions", {"body": {"to": "rejected", "reason": "\u0000"}}),
    "a NUL character in a search": ("GET /v1/leads", {"query": {"q": "probe\u0000"}}),
    "the largest documented deal value": (
        "POST /v1/leads", {"body": a_lead(estimated_value_eur=10**10)}),
    "leads submitted up to the last day of the calendar": (
        "GET /v1/leads", {"query": {"submitted_to": "9999-12-31"}}),
    "a correction that clears the description": (
        "PATCH /v1/leads/{lead_id}", {"body": {"description": None}}),
}


@pytest.mark.parametrize("case_name", EDGE_CASES)
async def test_edge_values_the_schema_allows_get_a_documented_answer_and_never_a_server_error(
    platform: Platform, served: str, schema: Any, case_name: str,
) -> None:
    label, data = EDGE_CASES[case_name]
    method, path = label.split(" ", 1)
    path_parameters = {"lead_id": await new_lead(platform)} if "{lead_id}" in path else None
    case = schema[path][method].Case(path_parameters=path_parameters, **data)
    await asyncio.to_thread(case.call_and_validate, base_url=served, checks=CHECKS, timeout=10,
                            headers=platform.auth("manager"))
