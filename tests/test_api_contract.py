"""What every service's API promises, beyond its fields: strict request bodies, the markets in
force in its document, the problems each operation gives, and honest answers to methods."""

import uuid

import pytest

from services.scouting.settings import get_scouting_settings
from shared.keys import create_key
from tests.conftest import Platform, a_lead


async def a_scout(platform: Platform) -> dict:
    """A scout of LITEK, known to scouting from a first lead."""
    _, token = await create_key(platform.settings, role="scout", cluster="LITEK",
                                name=f"Strict {uuid.uuid4().hex[:6]}")
    auth = {"Authorization": f"Bearer {token}"}
    posted = await platform.scouting.post("/v1/leads", json=a_lead(), headers=auth)
    assert posted.status_code == 201
    [scout] = (await platform.scouting.get("/v1/scouts", headers=auth)).json()
    return scout


@pytest.mark.parametrize("change", [{"active": 0}, {"active": "false"}, {"name": None},
                                    {"affiliate_market": "AA"}])
async def test_a_scout_is_changed_only_by_values_of_the_documented_type_and_vocabulary(
    platform: Platform, change: dict,
) -> None:
    scout = await a_scout(platform)
    answer = await platform.scouting.patch(f"/v1/scouts/{scout['id']}", json=change,
                                           headers=platform.auth("manager"))
    assert answer.status_code == 422, answer.text
    [after] = [s for s in (await platform.scouting.get(
        "/v1/scouts", headers=platform.auth("manager"))).json() if s["id"] == scout["id"]]
    assert after == scout


@pytest.mark.parametrize("change", [{"estimated_value_eur": "1000"}, {"urgency": None},
                                    {"estimated_value_eur": 10.5}])
async def test_a_correction_is_refused_unless_of_the_documented_type(
    platform: Platform, change: dict,
) -> None:
    lead = (await platform.scouting.post("/v1/leads", json=a_lead(),
                                         headers=platform.auth("scout"))).json()
    answer = await platform.scouting.patch(f"/v1/leads/{lead['id']}", json=change,
                                           headers=platform.auth("scout"))
    assert answer.status_code == 422, answer.text


async def test_a_whole_number_written_with_a_point_is_a_whole_number(platform: Platform) -> None:
    posted = await platform.scouting.post("/v1/leads", json=a_lead(estimated_value_eur=1000.0),
                                          headers=platform.auth("scout"))
    assert posted.status_code == 201 and posted.json()["estimated_value_eur"] == 1000


async def test_the_document_names_the_markets_in_force_and_every_problem_an_operation_gives(
    platform: Platform,
) -> None:
    document = (await platform.scouting.get("/openapi.json")).json()
    market = document["components"]["schemas"]["LeadCreate"]["properties"]["target_market"]
    assert market["enum"] == list(get_scouting_settings().markets)
    post = document["paths"]["/v1/leads"]["post"]
    assert {"400", "401", "403", "409", "413", "415", "422", "429"} <= set(post["responses"])
    assert "Retry-After" in post["responses"]["429"]["headers"]
    assert post["responses"]["201"]["links"]["GetLead"]["operationId"] == "get_lead"
    get = document["paths"]["/v1/leads/{lead_id}"]["get"]
    assert {"401", "404", "422"} <= set(get["responses"]) and "429" not in get["responses"]
    problem = get["responses"]["404"]["content"]["application/problem+json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/Problem"}


@pytest.mark.parametrize(("path", "allowed"), [
    ("/v1/leads", "GET, OPTIONS, POST"),
    (f"/v1/leads/{uuid.uuid4()}", "GET, OPTIONS, PATCH"),
    (f"/v1/leads/{uuid.uuid4()}/attachments", "GET, OPTIONS, POST"),
    ("/v1/leads/duplicate-check", "OPTIONS, POST"),
])
async def test_options_lists_every_method_a_path_serves_and_others_get_405_with_them(
    platform: Platform, path: str, allowed: str,
) -> None:
    options = await platform.scouting.options(path, headers=platform.auth("manager"))
    assert (options.status_code, options.headers["allow"]) == (204, allowed)
    wrong = await platform.scouting.request("DELETE" if "GET" in allowed else "PATCH", path,
                                            headers=platform.auth("manager"), json={})
    assert (wrong.status_code, wrong.headers["allow"]) == (405, allowed)
    assert wrong.headers["content-type"] == "application/problem+json"


async def test_a_cursor_of_the_documented_shape_always_reads_a_page(platform: Platform) -> None:
    page = await platform.scouting.get("/v1/leads", params={"cursor": f"1.{'0' * 32}"},
                                       headers=platform.auth("manager"))
    assert page.status_code == 200 and page.json()["items"] == []
