"""The lead workflow as a manager and a scout live it: triage, duplicates, search, expiry,
and leads moved on by other services' events."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.scouting.domain import (
    check_transition,
    duplicate_reason,
    lead_alike_words,
    lead_title_keys,
    organisation_key,
    search_query,
    similar_words,
    title_terms,
    titles_alike,
)
from shared.contracts.matching import MatchProposed
from shared.events import Event
from tests.conftest import Platform, a_lead, eventually, publish_event


def unique_lead(**overrides) -> dict:
    words = " ".join(uuid.uuid4().hex[:6] for _ in range(4))
    return a_lead(title=f"Lead {words}", description=f"About {words}", **overrides)


async def submit(platform: Platform, who: str = "scout", **overrides) -> dict:
    answer = await platform.scouting.post("/v1/leads", json=unique_lead(**overrides),
                                          headers=platform.auth(who))
    assert answer.status_code == 201, answer.text
    return answer.json()


async def move(platform: Platform, lead: dict, who: str = "manager", **body):
    return await platform.scouting.post(f"/v1/leads/{lead['id']}/transitions", json=body,
                                        headers=platform.auth(who))


async def events_for(platform: Platform, lead: dict) -> list[str]:
    rows = await platform.sql("SELECT event_type FROM scouting.outbox WHERE key = $1 ORDER BY id",
                              lead["id"])
    return [r["event_type"].split(".")[-2] for r in rows]


async def test_a_manager_qualifies_and_closes_a_lead_and_every_step_is_recorded(
    platform: Platform,
) -> None:
    lead = await submit(platform)
    qualified = await move(platform, lead, to="qualified")
    assert qualified.status_code == 200 and qualified.json()["status"] == "qualified"
    closed = await move(platform, lead, to="closed", reason="counterpart_unresponsive")
    assert closed.json()["status"] == "closed"
    history = (await platform.scouting.get(f"/v1/leads/{lead['id']}/transitions",
                                           headers=platform.auth("scout"))).json()
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        (None, "submitted"), ("submitted", "qualified"), ("qualified", "closed")]
    assert history[-1]["reason"] == "counterpart_unresponsive"
    assert history[-1]["by_key"] == str(platform.key_ids["manager"])
    assert await events_for(platform, lead) == ["submitted", "qualified", "closed"]


async def test_an_invalid_transition_is_refused_with_409_and_says_what_is_allowed(
    platform: Platform,
) -> None:
    lead = await submit(platform)
    refused = await move(platform, lead, to="converted")
    assert refused.status_code == 409
    assert "allowed from submitted: duplicate, qualified, rejected" in refused.json()["detail"]
    assert (await move(platform, lead, to="rejected")).status_code == 422  # reason required
    assert await events_for(platform, lead) == ["submitted"]


async def test_marking_a_duplicate_links_the_original_and_announces_it(platform: Platform) -> None:
    original, repeat = await submit(platform), await submit(platform)
    marked = await move(platform, repeat, to="duplicate", duplicate_of=original["id"])
    assert marked.json()["status"] == "duplicate"
    assert marked.json()["duplicate_of"] == original["id"]
    assert await events_for(platform, repeat) == ["submitted", "duplicate"]
    missing = await move(platform, await submit(platform), to="duplicate",
                         duplicate_of=str(uuid.uuid4()))
    assert missing.status_code == 404


async def test_scouts_and_partners_cannot_triage(platform: Platform) -> None:
    lead = await submit(platform)
    for who in ("scout", "partner", "ops"):
        assert (await move(platform, lead, who=who, to="qualified")).status_code == 403


async def test_a_likely_duplicate_is_flagged_before_saving_and_can_be_confirmed(
    platform: Platform,
) -> None:
    firm = f"Kansai Optics {uuid.uuid4().hex[:6]}"
    first = unique_lead(counterpart={"name": f"{firm} K.K.", "country": "JP",
                                     "website": f"https://www.{firm[-6:]}.example.jp/en"})
    first["duplicate_check"] = "warn"
    assert (await platform.scouting.post("/v1/leads", json=first,
                                         headers=platform.auth("scout"))).status_code == 201
    again = unique_lead(counterpart={"name": firm.upper()})
    again["duplicate_check"] = "warn"
    before = await platform.sql("SELECT count(*) AS n FROM scouting.leads")
    flagged = await platform.scouting.post("/v1/leads", json=again, headers=platform.auth("scout"))
    assert flagged.status_code == 409
    [candidate] = flagged.json()["candidates"]
    assert candidate["why"] == "same_counterpart" and candidate["title"] == first["title"]
    assert await platform.sql("SELECT count(*) AS n FROM scouting.leads") == before
    again["duplicate_check"] = "confirmed_new"
    saved = await platform.scouting.post("/v1/leads", json=again, headers=platform.auth("scout"))
    assert saved.status_code == 201


@pytest.mark.parametrize(("first_title", "second_title"), [
    ("Fundus camera {m} glaucoma screening", "Fundus camera {m} for the glaucoma screening"),
    ("Glaucoma screening fundus camera {m}", "{m} fundus camera for glaucoma"),  # one fewer
    ("Fundus camera {m} glaucoma", "Portable fundus camera {m} glaucoma"),  # one more
], ids=["small words", "a word fewer, another order", "a word more"])
async def test_a_retyped_lead_is_flagged_though_its_title_changed_a_little(
    platform: Platform, first_title: str, second_title: str,
) -> None:
    """The search asks for leads whose titles have the same telling words, in any order, or
    one more or one fewer; the wording is then judged on title, description and counterpart
    together."""
    m = uuid.uuid4().hex[:8]
    first = a_lead(title=first_title.format(m=m), target_market="JP",
                   description=f"Eye clinics in Kobe want a {m} fundus camera for glaucoma "
                   "screening", duplicate_check="warn")
    saved = await platform.scouting.post("/v1/leads", json=first, headers=platform.auth("scout"))
    assert saved.status_code == 201, saved.text
    again = {**first, "title": second_title.format(m=m)}
    flagged = await platform.scouting.post("/v1/leads", json=again,
                                           headers=platform.auth("scout"))
    assert flagged.status_code == 409, flagged.text
    [candidate] = flagged.json()["candidates"]
    assert (candidate["id"], candidate["why"]) == (saved.json()["id"], "similar_text")


async def test_a_post_is_refused_as_similar_exactly_when_the_domain_rule_says_so(
    platform: Platform,
) -> None:
    """The submit statement judges similar wording in SQL; it must agree with
    `domain.similar_words` (what imports use) on both sides of the threshold."""
    t1, t2, *d = (uuid.uuid4().hex[:8] for _ in range(11))
    first = a_lead(title=f"{t1} {t2}", description=" ".join(d[:6]), target_market="SG",
                   duplicate_check="warn")
    saved = await platform.scouting.post("/v1/leads", json=first, headers=platform.auth("scout"))
    assert saved.status_code == 201, saved.text
    tries = {  # description of the retry: its share of the words in common
        " ".join(d[:4]): 6 / 8,  # at the threshold
        " ".join(d[:6] + d[6:8]): 8 / 10,
        " ".join(d[:3] + d[6:7]): 5 / 9,
        " ".join(d[:5] + d[6:9]): 7 / 11,
    }

    def words(lead: dict) -> list[str]:
        return lead_alike_words(title=lead["title"], description=lead["description"],
                                counterpart_name=None)

    for description, share in tries.items():
        retry = {**first, "description": description}
        answer = await platform.scouting.post("/v1/leads", json=retry,
                                              headers=platform.auth("scout"))
        similar = similar_words(words(first), words(retry))
        assert similar == (share >= 0.75)
        assert answer.status_code == (409 if similar else 201), (share, answer.text)
        if similar:
            assert [c["why"] for c in answer.json()["candidates"]] == ["similar_text"]


async def test_a_corrected_lead_is_found_by_its_new_words_not_its_old_ones(
    platform: Platform,
) -> None:
    marker = uuid.uuid4().hex[:8]
    first = a_lead(title=f"Raman probe {marker} for skin cancer", target_market="KR",
                   description=f"Seoul dermatology clinics want {marker} Raman probes",
                   duplicate_check="warn")
    saved = await platform.scouting.post("/v1/leads", json=first, headers=platform.auth("scout"))
    assert saved.status_code == 201, saved.text
    corrected = {"title": f"Hyperspectral camera {marker} wound care",
                 "description": f"Busan home-care nurses want {marker} hyperspectral cameras"}
    fixed = await platform.scouting.patch(f"/v1/leads/{saved.json()['id']}", json=corrected,
                                          headers=platform.auth("scout"))
    assert fixed.status_code == 200, fixed.text
    retyped = {**first, **corrected}
    flagged = await platform.scouting.post("/v1/leads", json=retyped,
                                           headers=platform.auth("scout"))
    assert flagged.status_code == 409, flagged.text
    assert [c["id"] for c in flagged.json()["candidates"]] == [saved.json()["id"]]
    old_words = await platform.scouting.post("/v1/leads", json=first,
                                             headers=platform.auth("scout"))
    assert old_words.status_code == 201, old_words.text  # no open lead says this any more


def test_a_search_of_small_words_alone_asks_for_nothing() -> None:
    assert search_query("the") is None
    assert search_query('"" or -') is None
    assert search_query("OCT for the ENT") == "( 'oct' & 'ent' )"


def test_title_terms_leave_out_common_words_and_keep_accented_words_whole() -> None:
    assert title_terms("OCT probe for the ENT clinics") == ["oct", "probe", "ent", "clinics"]
    assert title_terms("Distributor in Zürich, near-infrared") == [
        "distributor", "zürich", "near", "infrared"]
    assert title_terms("For the") == []


def test_a_title_of_small_words_alone_has_no_title_key() -> None:
    assert lead_title_keys(cluster="LITEK", market="SG", title="For the") == (None, [])


def test_the_duplicate_search_finds_titles_with_the_same_words_up_to_one_more_or_fewer() -> None:
    """In one cluster and market: the same telling words in any order, or one word more or
    fewer (the longer title of three or more); not a replaced word."""
    def alike(old: str, new: str, *, market: str = "SG") -> bool:
        return titles_alike(lead_title_keys(cluster="LITEK", market="SG", title=old),
                            lead_title_keys(cluster="LITEK", market=market, title=new))

    assert alike("OCT probe for ENT clinics", "ENT clinics: the OCT probe")
    assert alike("OCT probe for ENT clinics", "OCT probe for ENT")  # dropped
    assert alike("OCT probe for ENT", "Handheld OCT probe for ENT")  # added
    assert alike("OCT probe", "OCT probe for ENT")
    assert not alike("OCT probe for ENT clinics", "OCT probe for ENT hospitals")  # replaced
    assert not alike("OCT probe for ENT", "Handheld OCT probe for ENT clinics")  # two more
    assert not alike("OCT", "OCT probe")  # the longer of two words
    assert not alike("OCT probe for ENT clinics", "OCT probe for ENT clinics", market="JP")


def test_the_words_wording_is_judged_on_are_a_leads_own_each_once() -> None:
    words = lead_alike_words(title="OCT probe for the ENT", description="Zürich clinics want OCT",
                             counterpart_name="Optima AG")
    assert sorted(words) == ["ag", "clinics", "ent", "oct", "optima", "probe", "want", "zürich"]


async def test_a_lead_sharing_only_its_title_with_another_is_saved_at_once(
    platform: Platform,
) -> None:
    """The titles match (the search finds the earlier lead), but the texts
    differ and so do the counterparts: not a duplicate, so no 409."""
    title = f"Raman probe {uuid.uuid4().hex[:8]}"
    first = a_lead(title=title, description="Hospitals in Seoul need a compact probe for "
                   "tissue diagnostics during surgery", target_market="KR",
                   counterpart={"name": f"Seoul Photonics {uuid.uuid4().hex[:6]}"},
                   duplicate_check="warn")
    second = a_lead(title=title, description="A distributor in Busan asks about service "
                    "contracts, spare parts and training for laboratory lasers",
                    target_market="KR", duplicate_check="warn",
                    counterpart={"name": f"Busan Lasers {uuid.uuid4().hex[:6]}"})
    for body in (first, second):
        answer = await platform.scouting.post("/v1/leads", json=body,
                                              headers=platform.auth("scout"))
        assert answer.status_code == 201, answer.text
    saved = await platform.sql("SELECT count(*) AS n FROM scouting.leads WHERE title = $1", title)
    events = await platform.sql(
        "SELECT count(*) AS n FROM scouting.outbox o JOIN scouting.leads l ON o.key = l.id::text "
        "WHERE l.title = $1", title)
    assert saved[0]["n"] == events[0]["n"] == 2


async def test_near_identical_text_is_a_duplicate_hint_but_another_cluster_is_not_told(
    platform: Platform,
) -> None:
    lead = await submit(platform)
    check = {k: lead[k] for k in ("kind", "title", "description", "target_market")}
    hints = await platform.scouting.post("/v1/leads/duplicate-check", json=check,
                                         headers=platform.auth("other_scout"))
    [hint] = hints.json()
    assert hint["why"] == "similar_text"
    assert hint["id"] is None and hint["title"] != lead["title"]  # a colleague's: told, not shown
    managers = await platform.scouting.post("/v1/leads/duplicate-check", json=check,
                                            headers=platform.auth("manager"))
    assert [(h["id"], h["title"]) for h in managers.json()] == [(lead["id"], lead["title"])]
    other = await platform.scouting.post("/v1/leads/duplicate-check", json=check,
                                         headers=platform.auth("other_partner"))
    assert other.json() == []


async def test_leads_are_searchable_and_pages_are_stable(platform: Platform) -> None:
    marker = uuid.uuid4().hex[:8]
    for _ in range(5):
        await submit(platform, who="partner", target_market="KR",
                     technologies=[f"tag{marker}"], application_areas=["sensing"])
    found = []
    cursor = None
    while True:
        params = {"market": "KR", "application_area": "sensing", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await platform.scouting.get("/v1/leads", params=params,
                                            headers=platform.auth("manager"))).json()
        found += [i for i in page["items"] if f"tag{marker}" in i["technologies"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(found) == 5
    stamps = [(i["submitted_at"], i["id"]) for i in found]
    assert stamps == sorted(stamps, reverse=True)
    text = (await platform.scouting.get("/v1/leads", params={"q": found[0]["title"].split()[1]},
                                        headers=platform.auth("manager"))).json()
    assert [i["id"] for i in text["items"]] == [found[0]["id"]]
    bad = await platform.scouting.get("/v1/leads", params={"cursor": "nonsense"},
                                      headers=platform.auth("manager"))
    assert bad.status_code == 422  # not of the documented shape


async def test_a_search_asks_for_words_excludes_with_a_minus_and_takes_either_across_or(
    platform: Platform,
) -> None:
    m = uuid.uuid4().hex[:8]
    ids = {}
    for name, title in {"nir": f"{m} near-infrared camera", "raman": f"{m} Raman probe",
                        "oct": f"{m} OCT probe"}.items():
        saved = await platform.scouting.post("/v1/leads", json=a_lead(
            title=title, description=f"Clinics in Seoul want one, {uuid.uuid4().hex}",
            target_market="KR"), headers=platform.auth("partner"))
        assert saved.status_code == 201, saved.text
        ids[saved.json()["id"]] = name

    async def found(q: str) -> set[str]:
        answer = await platform.scouting.get("/v1/leads", params={"q": q, "limit": 200},
                                             headers=platform.auth("manager"))
        assert answer.status_code == 200, answer.text
        return {ids[lead["id"]] for lead in answer.json()["items"] if lead["id"] in ids}

    assert await found(f"{m} infrared") == {"nir"}
    assert await found(f"{m.upper()} Near-Infrared") == {"nir"}
    assert await found(f'"{m} probe" -raman') == {"oct"}
    assert await found(f"{m} raman or {m} oct") == {"raman", "oct"}
    assert await found(f"{m} probe for the camera") == set()  # every telling word required


async def test_a_lead_left_alone_turns_stale_and_renewing_it_revives_it(platform: Platform) -> None:
    lead = await submit(platform)
    await platform.sql("UPDATE scouting.leads SET last_activity_at = $2 WHERE id = $1",
                       uuid.UUID(lead["id"]), datetime.now(UTC) - timedelta(days=45))
    stale = (await platform.scouting.get(f"/v1/leads/{lead['id']}",
                                         headers=platform.auth("scout"))).json()
    assert stale["stale"] is True
    listed = (await platform.scouting.get("/v1/leads", params={"stale": "true"},
                                          headers=platform.auth("scout"))).json()
    assert lead["id"] in [i["id"] for i in listed["items"]]
    renewed = await platform.scouting.post(f"/v1/leads/{lead['id']}/renew",
                                           headers=platform.auth("scout"))
    assert renewed.json()["stale"] is False


async def test_a_scout_corrects_an_open_lead_but_not_a_closed_one(platform: Platform) -> None:
    lead = await submit(platform)
    fixed = await platform.scouting.patch(f"/v1/leads/{lead['id']}", json={
        "title": "Corrected title", "technologies": ["Raman Spectroscopy"]},
        headers=platform.auth("scout"))
    assert fixed.json()["title"] == "Corrected title"
    assert fixed.json()["technologies"] == ["raman-spectroscopy"]
    await move(platform, lead, to="rejected", reason="out_of_scope")
    late = await platform.scouting.patch(f"/v1/leads/{lead['id']}", json={"title": "Too late"},
                                         headers=platform.auth("scout"))
    assert late.status_code == 409


async def test_a_match_from_matching_moves_a_qualified_lead_to_matched(platform: Platform) -> None:
    lead = await submit(platform)
    await move(platform, lead, to="qualified")
    match = Event(data=MatchProposed(match_id=uuid.uuid4(), lead_id=lead["id"],
                                     offering_id=uuid.uuid4(), cluster="LITEK", score=0.82))
    await publish_event(platform, match)

    async def matched() -> bool:
        got = await platform.scouting.get(f"/v1/leads/{lead['id']}", headers=platform.auth("scout"))
        return got.json()["status"] == "matched"
    await eventually(matched)
    history = (await platform.scouting.get(f"/v1/leads/{lead['id']}/transitions",
                                           headers=platform.auth("manager"))).json()
    assert history[-1]["by_key"] is None and str(match.data.match_id) in history[-1]["reason"]


def test_the_workflow_allows_only_its_documented_moves() -> None:
    check_transition("submitted", "qualified")
    check_transition("matched", "converted")
    for current, target in [("submitted", "matched"), ("rejected", "qualified"),
                            ("converted", "closed"), ("qualified", "submitted")]:
        try:
            check_transition(current, target)
        except ValueError:
            continue
        raise AssertionError(f"{current} -> {target} was allowed")


def test_organisation_names_compare_without_legal_forms_case_or_accents() -> None:
    assert organisation_key("Nikon Healthcare Co., Ltd.") == organisation_key("NIKON HEALTHCARE")
    assert organisation_key("Öptik GmbH") == organisation_key("optik")
    assert organisation_key("Ltd.") is None


def test_duplicate_reasons_name_what_matched() -> None:
    from types import SimpleNamespace as Lead

    def words(title: str, description: str = "") -> list[str]:
        return lead_alike_words(title=title, description=description, counterpart_name=None)

    new = Lead(alike_words=words("Handheld OCT for ENT", "clinics in Osaka want one"),
               counterpart_key="optics kansai", counterpart_domain="kmo.jp")
    assert duplicate_reason(new, Lead(alike_words=words("x"), counterpart_key="optics kansai",
                                      counterpart_domain=None)) == "same_counterpart"
    assert duplicate_reason(new, Lead(alike_words=words("y"), counterpart_key=None,
                                      counterpart_domain="kmo.jp")) == "same_website"
    assert duplicate_reason(new, Lead(alike_words=words("Handheld OCT for the ENT!",
                                                        "Clinics in Osaka want one"),
                                      counterpart_key=None,
                                      counterpart_domain=None)) == "similar_text"
    assert duplicate_reason(new, Lead(alike_words=words("Raman probe", "for breast surgery"),
                                      counterpart_key=None, counterpart_domain=None)) is None


def test_similar_wording_is_three_quarters_of_the_telling_words_in_common() -> None:
    four = ["oct", "probe", "ent", "osaka"]
    assert similar_words(four, [*four[:3], "kobe"]) is False  # 3 of 5 words: 0.6
    assert similar_words(four, [*four, "clinics"]) is True  # 4 of 5: 0.8
    assert similar_words([*four[:3]], [*four[:3], "kobe"]) is True  # 3 of 4: exactly 0.75
    assert similar_words(four, []) is False and similar_words(None, four) is False


async def test_a_manager_deactivates_a_scout_who_then_cannot_submit(platform: Platform) -> None:
    from shared.keys import create_key

    _, token = await create_key(platform.settings, role="scout", cluster="LITEK", name="Ana Ruiz")
    auth = {"Authorization": f"Bearer {token}"}
    first = await platform.scouting.post("/v1/leads", json=unique_lead(), headers=auth)
    assert first.status_code == 201
    [me] = (await platform.scouting.get("/v1/scouts", headers=auth)).json()
    assert (me["name"], me["home_cluster"], me["active"]) == ("Ana Ruiz", "LITEK", True)
    assert first.json()["scout_id"] == me["id"]  # registered by the first lead, and linked
    other = await platform.scouting.patch(f"/v1/scouts/{me['id']}", json={"active": False},
                                          headers=platform.auth("other_partner"))
    assert other.status_code == 403
    done = await platform.scouting.patch(f"/v1/scouts/{me['id']}",
                                         json={"active": False, "affiliate_market": "JP"},
                                         headers=platform.auth("manager"))
    assert done.json()["active"] is False and done.json()["affiliate_market"] == "JP"
    refused = await platform.scouting.post("/v1/leads", json=unique_lead(), headers=auth)
    assert refused.status_code == 403 and "inactive" in refused.json()["detail"]


async def test_the_programme_kpis_count_qualified_leads_once_each(platform: Platform) -> None:
    # Counted from now: earlier tests' qualifications may still be on their way to kpi.
    since = datetime.now(UTC)

    async def qualified() -> int:
        report = (await platform.kpi.get("/v1/kpis", params={"from": since.isoformat()},
                                         headers=platform.auth("manager"))).json()
        return next(k["value"] for k in report["kpis"] if k["key"] == "leads_qualified")

    await move(platform, await submit(platform), to="qualified")

    async def counted() -> bool:
        return await qualified() == 1
    await eventually(counted)


async def test_what_a_lead_needs_of_an_offering_is_kept_and_reaches_matching_in_its_events(
    platform: Platform,
) -> None:
    lead = await submit(platform, min_trl=7, requires_clearance=True)
    assert (lead["min_trl"], lead["requires_clearance"]) == (7, True)
    await move(platform, lead, to="qualified")
    rows = await platform.sql(
        "SELECT event_type, convert_from(payload, 'UTF8')::jsonb AS data FROM scouting.outbox "
        "WHERE key = $1 ORDER BY id", lead["id"])
    for row in rows:  # what matching scores offerings against
        data = json.loads(row["data"])
        assert (data["min_trl"], data["requires_clearance"]) == (7, True), row["event_type"]
        assert data["title"] == lead["title"] and "description" not in data
    plain = await submit(platform)
    assert (plain["min_trl"], plain["requires_clearance"]) == (None, False)
    refused = await platform.scouting.post("/v1/leads", json=unique_lead(min_trl=10),
                                           headers=platform.auth("scout"))
    assert refused.status_code == 422
