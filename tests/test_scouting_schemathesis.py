"""Values scouting's OpenAPI document allows that random generation rarely draws: each answered
500 once (fixed), so each is sent on every run and must get a documented answer. The whole
document is fuzzed with every check in test_api_conformance.py."""

import asyncio
import uuid
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Platform, a_lead
from tests.test_api_conformance import serve

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
async def served(platform: Platform) -> Any:
    """The platform's scouting app on a free loopback port."""
    server, task = await serve(platform.apps["scouting"])
    yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    server.should_exit = True
    await task


async def new_lead(platform: Platform) -> str:
    """A lead the manager may see, so requests reach past the 404."""
    answer = await platform.scouting.post("/v1/leads", json=a_lead(
        title=f"Probed lead {uuid.uuid4().hex}",
        counterpart_contact={"name": "Dr. Fuzz", "email": "fuzz@example.org"}),
        headers=platform.auth("scout"))
    assert answer.status_code == 201
    return answer.json()["id"]


@pytest.fixture(scope="module")
def schema(platform: Platform) -> Any:
    return schemathesis.openapi.from_dict(platform.apps["scouting"].openapi())


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
    "a correction that clears the deal value": (
        "PATCH /v1/leads/{lead_id}", {"body": {"estimated_value_eur": None}}),
    "a correction whose description is one word longer than a search index takes": (
        "PATCH /v1/leads/{lead_id}", {"body": {"description": "0" * 4999}}),
    "a service token with a character beyond ASCII": (
        "GET /internal/v1/leads/{lead_id}/counterpart-contact",
        {"headers": {"X-Internal-Token": "tøken"}}),
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
