"""Who may do what to which lead, as a matrix: every role × every scouting endpoint × own and
others' leads, with 0 cross-tenant reads or writes; fields only the service sets; and the
counterpart contact, which leaves scouting only for crm and is erased once crm holds it."""

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from services.scouting.queries import WITHHELD
from shared.contracts.crm import ContactEstablished
from shared.events import Event
from shared.keys import create_key
from tests.conftest import INTERNAL_TOKEN, Platform, a_lead, eventually, publish_event

# Who calls: role and cluster of each key (the first five and ops/admin come from conftest).
# `crm` is the crm service with the internal token and no API key.
CALLERS: dict[str, tuple[str | None, str | None]] = {
    "scout": ("scout", "LITEK"), "partner": ("partner", "LITEK"), "manager": ("manager", "LITEK"),
    "biocat_scout": ("scout", "BIOCAT"), "other_partner": ("partner", "BIOCAT"),
    "biocat_manager": ("manager", "BIOCAT"), "ops": ("ops", None), "admin": ("admin", None),
    "crm": (None, None),
}
EXTRA_KEYS = ("biocat_scout", "biocat_manager")

# The leads each cell acts on, by the key that submitted them: a LITEK scout's own lead, a LITEK
# colleague's lead (same cluster, other scout) and a BIOCAT lead.
OWNERS = ("scout", "other_scout", "biocat_scout")
OWNER_LABELS = {"scout": "scout's lead", "other_scout": "other scout's lead",
                "biocat_scout": "BIOCAT lead"}

#                     scout's  other scout's  BIOCAT
READ = {
    "scout":          (200,    404,           404),
    "partner":        (200,    200,           404),
    "manager":        (200,    200,           404),
    "biocat_scout":   (404,    404,           200),
    "other_partner":  (404,    404,           200),
    "biocat_manager": (404,    404,           200),
    "ops":            (200,    200,           200),
    "admin":          (200,    200,           200),
    "crm":            (401,    401,           401),
}
EDIT = {  # ops is read-only
    "scout":          (200,    404,           404),
    "partner":        (200,    200,           404),
    "manager":        (200,    200,           404),
    "biocat_scout":   (404,    404,           200),
    "other_partner":  (404,    404,           200),
    "biocat_manager": (404,    404,           200),
    "ops":            (403,    403,           403),
    "admin":          (200,    200,           200),
    "crm":            (401,    401,           401),
}
TRIAGE = {  # only a cluster's managers (and admin) move leads through the workflow
    "scout":          (403,    403,           403),
    "partner":        (403,    403,           403),
    "manager":        (200,    200,           404),
    "biocat_scout":   (403,    403,           403),
    "other_partner":  (403,    403,           403),
    "biocat_manager": (404,    404,           200),
    "ops":            (403,    403,           403),
    "admin":          (200,    200,           200),
    "crm":            (401,    401,           401),
}
INTERNAL = {  # the service token, never an API key
    "scout":          (401,    401,           401),
    "partner":        (401,    401,           401),
    "manager":        (401,    401,           401),
    "biocat_scout":   (401,    401,           401),
    "other_partner":  (401,    401,           401),
    "biocat_manager": (401,    401,           401),
    "ops":            (401,    401,           401),
    "admin":          (401,    401,           401),
    "crm":            (200,    200,           200),
}
ENDPOINTS: dict[str, tuple[str, str, dict[str, Any] | None, dict[str, tuple[int, ...]]]] = {
    "GET /v1/leads/{id}": ("GET", "/v1/leads/{id}", None, READ),
    "PATCH /v1/leads/{id}": ("PATCH", "/v1/leads/{id}", {"title": "Corrected by the matrix"},
                             EDIT),
    "POST /v1/leads/{id}/transitions": ("POST", "/v1/leads/{id}/transitions",
                                        {"to": "qualified"}, TRIAGE),
    "GET /v1/leads/{id}/transitions": ("GET", "/v1/leads/{id}/transitions", None, READ),
    "POST /v1/leads/{id}/renew": ("POST", "/v1/leads/{id}/renew", None, EDIT),
    "GET /internal/v1/leads/{id}/counterpart-contact": (
        "GET", "/internal/v1/leads/{id}/counterpart-contact", None, INTERNAL),
}
CELLS = [
    pytest.param(endpoint, caller, owner, table[caller][column],
                 id=f"{endpoint} | {caller} | {OWNER_LABELS[owner]}")
    for endpoint, (_, _, _, table) in ENDPOINTS.items()
    for caller in CALLERS
    for column, owner in enumerate(OWNERS)
]
#                    own cluster  naming another cluster in the body
SUBMIT = {
    "scout":          (201,       422),
    "partner":        (201,       422),
    "manager":        (201,       422),
    "biocat_scout":   (201,       422),
    "other_partner":  (201,       422),
    "biocat_manager": (201,       422),
    "ops":            (403,       403),
    "admin":          (403,       403),
    "crm":            (401,       401),
}
OTHER_CLUSTER = {"LITEK": "BIOCAT", "BIOCAT": "LITEK", None: "LITEK"}


@dataclass
class Keys:
    """Request headers for every caller of the matrix."""

    platform: Platform
    tokens: dict[str, str]
    key_ids: dict[str, uuid.UUID]

    def headers(self, who: str) -> dict[str, str]:
        if who == "crm":
            return {"X-Internal-Token": INTERNAL_TOKEN}
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def sees(self, who: str, item: dict[str, Any]) -> bool:
        """The tenancy rule, from outside: own leads for scouts, own cluster for the others."""
        role, cluster = CALLERS[who]
        if role == "scout":
            return item["submitted_by"] == str(self.key_ids[who])
        return cluster is None or item["cluster"] == cluster


@pytest.fixture(scope="module")
async def keys(platform: Platform) -> Keys:
    tokens, key_ids = dict(platform.keys), dict(platform.key_ids)
    for who in EXTRA_KEYS:
        role, cluster = CALLERS[who]
        key_ids[who], tokens[who] = await create_key(platform.settings, role=role,
                                                     cluster=cluster, name=who)
    return Keys(platform=platform, tokens=tokens, key_ids=key_ids)


def unique_lead(**overrides: Any) -> dict[str, Any]:
    """A lead no other lead resembles, with a counterpart contact only it holds."""
    tag = uuid.uuid4().hex
    words = " ".join(tag[i:i + 6] for i in range(0, 24, 6))
    digits = str(uuid.uuid4().int)[:8]
    return a_lead(
        title=f"Lead {words}", description=f"About {words} and {tag[24:]}",
        counterpart={"name": f"Optics {tag[:10]} KK", "country": "JP"},
        counterpart_contact={"name": f"Dr. Aiko Tanaka-{tag[:8]}",
                             "email": f"aiko.{tag[:12]}@kansai-optics.example.jp",
                             "phone": f"+81 6 {digits[:4]} {digits[4:]}"},
    ) | overrides


async def submit(keys: Keys, who: str, **overrides: Any) -> dict[str, Any]:
    body = unique_lead(**overrides)
    answer = await keys.platform.scouting.post("/v1/leads", json=body, headers=keys.headers(who))
    assert answer.status_code == 201, answer.text
    return answer.json() | {"sent": body}


async def snapshot(platform: Platform, lead_id: str) -> dict[str, Any]:
    """All scouting holds about one lead: its row, history, events and audit trail."""
    [lead] = await platform.sql("SELECT * FROM scouting.leads WHERE id = $1", uuid.UUID(lead_id))
    history = await platform.sql(
        "SELECT id, from_status, to_status, reason, by_key FROM scouting.lead_transitions "
        "WHERE lead_id = $1 ORDER BY id", uuid.UUID(lead_id))
    events = await platform.sql(
        "SELECT id, event_type, payload FROM scouting.outbox WHERE key = $1 ORDER BY id", lead_id)
    audit = await platform.sql(
        "SELECT id, action FROM scouting.audit_log WHERE subject = $1 ORDER BY id", lead_id)
    return {"lead": dict(lead), "history": [tuple(r) for r in history],
            "events": [tuple(r) for r in events], "audit": [tuple(r) for r in audit]}


# --- the matrix: role × endpoint × whose lead -------------------------------------------------

@pytest.mark.parametrize(("endpoint", "caller", "owner", "expected"), CELLS)
async def test_every_role_reaches_exactly_the_leads_the_matrix_allows(
    keys: Keys, endpoint: str, caller: str, owner: str, expected: int,
) -> None:
    platform = keys.platform
    lead = await submit(keys, owner)
    before = await snapshot(platform, lead["id"])
    method, path, body, _ = ENDPOINTS[endpoint]
    answer = await platform.scouting.request(method, path.format(id=lead["id"]), json=body,
                                             headers=keys.headers(caller))
    assert answer.status_code == expected, answer.text
    if expected >= 400:
        assert answer.headers["content-type"] == "application/problem+json"
        assert lead["title"] not in answer.text
        assert await snapshot(platform, lead["id"]) == before, "a refused call changed the lead"
    else:
        await ALLOWED_EFFECTS[endpoint](platform, lead, answer.json(), before)


async def _read(platform: Platform, lead: dict, answer: Any, before: dict) -> None:
    assert answer["id"] == lead["id"] and answer["has_contact"] is True
    assert lead["sent"]["counterpart_contact"]["email"] not in str(answer)
    assert await snapshot(platform, lead["id"]) == before


async def _edited(platform: Platform, lead: dict, answer: Any, before: dict) -> None:
    assert answer["title"] == "Corrected by the matrix"
    after = await snapshot(platform, lead["id"])
    assert after["lead"]["title"] == "Corrected by the matrix"


async def _qualified(platform: Platform, lead: dict, answer: Any, before: dict) -> None:
    assert answer["status"] == "qualified"
    after = await snapshot(platform, lead["id"])
    assert after["lead"]["status"] == "qualified"
    assert [e[1] for e in after["events"][len(before["events"]):]] == [
        "eu.lasergo.scouting.lead.qualified.v1"]


async def _history(platform: Platform, lead: dict, answer: Any, before: dict) -> None:
    assert [step["to_status"] for step in answer] == ["submitted"]
    assert await snapshot(platform, lead["id"]) == before


async def _renewed(platform: Platform, lead: dict, answer: Any, before: dict) -> None:
    after = await snapshot(platform, lead["id"])
    assert after["lead"]["last_activity_at"] > before["lead"]["last_activity_at"]
    assert after["lead"]["status"] == "submitted"


async def _handed_over(platform: Platform, lead: dict, answer: Any, before: dict) -> None:
    assert answer["lead_id"] == lead["id"]
    assert answer["contact"] == lead["sent"]["counterpart_contact"]


ALLOWED_EFFECTS = {
    "GET /v1/leads/{id}": _read, "PATCH /v1/leads/{id}": _edited,
    "POST /v1/leads/{id}/transitions": _qualified, "GET /v1/leads/{id}/transitions": _history,
    "POST /v1/leads/{id}/renew": _renewed,
    "GET /internal/v1/leads/{id}/counterpart-contact": _handed_over,
}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("cluster", ["own", "another"])
async def test_a_lead_is_submitted_only_into_the_callers_own_cluster(
    keys: Keys, caller: str, cluster: str,
) -> None:
    role, home = CALLERS[caller]
    expected = SUBMIT[caller][cluster == "another"]
    body = unique_lead() | ({"cluster": OTHER_CLUSTER[home]} if cluster == "another" else {})
    answer = await keys.platform.scouting.post("/v1/leads", json=body,
                                               headers=keys.headers(caller))
    assert answer.status_code == expected, answer.text
    stored = await keys.platform.sql(
        "SELECT cluster, submitted_by FROM scouting.leads WHERE title = $1", body["title"])
    if expected != 201:
        assert stored == []
        return
    assert [(r["cluster"], r["submitted_by"]) for r in stored] == [(home, keys.key_ids[caller])]
    assert answer.json()["cluster"] == home


LIST_FILTERS = {
    "no filter": lambda records: {},
    "cluster=BIOCAT": lambda records: {"cluster": "BIOCAT"},
    "cluster=LITEK": lambda records: {"cluster": "LITEK"},
    "scout_id of the other scout": lambda records: {"scout_id": records["other_scout"]["scout_id"]},
    "scout_id of the BIOCAT scout": lambda records: {
        "scout_id": records["biocat_scout"]["scout_id"]},
    "status and market": lambda records: {"status": "submitted", "market": "JP"},
    "full text": lambda records: {"q": records["tag"]},
}


@pytest.fixture(scope="module")
async def records(keys: Keys) -> dict[str, Any]:
    """One lead of each owner, sharing one word that a full-text search finds."""
    tag = uuid.uuid4().hex[:12]
    found = {owner: await submit(keys, owner, technologies=[tag],
                                 description=f"Shared word {tag} {uuid.uuid4().hex}")
             for owner in OWNERS}
    return found | {"tag": tag}


def _matches(lead: dict[str, Any], query: dict[str, str]) -> bool:
    fields = {"cluster": "cluster", "scout_id": "scout_id", "status": "status",
              "market": "target_market"}
    return all(lead[fields[name]] == value for name, value in query.items() if name in fields)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("variant", LIST_FILTERS)
async def test_the_lead_list_never_shows_another_tenants_lead_whatever_the_filter(
    keys: Keys, records: dict[str, Any], caller: str, variant: str,
) -> None:
    query = LIST_FILTERS[variant](records)
    items, cursor, pages = [], None, 0
    while True:
        answer = await keys.platform.scouting.get(
            "/v1/leads", params={**query, "limit": 200, **({"cursor": cursor} if cursor else {})},
            headers=keys.headers(caller))
        if caller == "crm":
            assert answer.status_code == 401
            return
        assert answer.status_code == 200, answer.text
        items += answer.json()["items"]
        cursor, pages = answer.json()["next_cursor"], pages + 1
        if cursor is None or pages > 50:
            break
    strangers = [item["id"] for item in items if not keys.sees(caller, item)]
    assert strangers == [], f"{caller} listed leads of another tenant"
    listed = {owner for owner in OWNERS if records[owner]["id"] in {i["id"] for i in items}}
    visible = {owner for column, owner in enumerate(OWNERS) if READ[caller][column] == 200}
    assert listed == {owner for owner in visible if _matches(records[owner], query)}


DUPLICATE_HINTS = {"POST /v1/leads/duplicate-check": "/v1/leads/duplicate-check",
                   "POST /v1/leads (duplicate warning)": "/v1/leads"}


@pytest.mark.parametrize(("endpoint", "caller", "owner"), [
    pytest.param(endpoint, caller, owner, id=f"{endpoint} | {caller} | {OWNER_LABELS[owner]}")
    for endpoint in DUPLICATE_HINTS for caller in CALLERS for owner in OWNERS
])
async def test_duplicate_hints_name_only_leads_the_caller_may_read(
    keys: Keys, endpoint: str, caller: str, owner: str,
) -> None:
    platform = keys.platform
    original = await submit(keys, owner)
    near_copy = unique_lead(duplicate_check="warn") | {
        k: original["sent"][k] for k in ("title", "description", "target_market", "counterpart")}
    answer = await platform.scouting.post(DUPLICATE_HINTS[endpoint], json=near_copy,
                                          headers=keys.headers(caller))
    if SUBMIT[caller][0] != 201:
        assert answer.status_code == SUBMIT[caller][0], answer.text
        return
    readable = READ[caller][OWNERS.index(owner)] == 200
    if endpoint == "POST /v1/leads/duplicate-check":
        assert answer.status_code == 200, answer.text
        candidates = answer.json()
    else:
        assert answer.status_code in ({409} if readable else {201, 409}), answer.text
        candidates = answer.json().get("candidates", [])
    named = [c["id"] for c in candidates if c["id"] is not None]
    assert (original["id"] in named) is readable
    # A colleague's lead is hinted at without naming it: no id, no title.
    assert all(c["title"] == WITHHELD for c in candidates if c["id"] is None)
    for lead_id in named:
        shown = await platform.scouting.get(f"/v1/leads/{lead_id}", headers=keys.headers(caller))
        assert shown.status_code == 200, f"{caller} was shown lead {lead_id} it may not read"


# --- fields only the service sets ----------------------------------------------------------

SERVICE_FIELDS = {
    "id": str(uuid.uuid4()), "status": "qualified", "status_reason": "pre-approved",
    "cluster": "BIOCAT", "submitted_by": str(uuid.uuid4()), "scout_id": str(uuid.uuid4()),
    "submitted_at": "2020-01-01T00:00:00Z", "last_activity_at": "2099-01-01T00:00:00Z",
    "duplicate_of": str(uuid.uuid4()), "has_contact": False, "stale": True,
    "contact_sealed": "c2VjcmV0", "contact_erased_at": "2020-01-01T00:00:00Z",
    "counterpart_key": "someone else", "owner": "me",
}


@pytest.mark.parametrize("field", SERVICE_FIELDS)
async def test_a_submission_setting_a_service_field_is_refused_and_nothing_is_stored(
    keys: Keys, field: str,
) -> None:
    body = unique_lead(**{field: SERVICE_FIELDS[field]})
    answer = await keys.platform.scouting.post("/v1/leads", json=body,
                                               headers=keys.headers("manager"))
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert f"body.{field}" in {error["location"] for error in answer.json()["errors"]}
    assert await keys.platform.sql(
        "SELECT id FROM scouting.leads WHERE title = $1 OR id::text = $2", body["title"],
        str(SERVICE_FIELDS[field])) == []


@pytest.mark.parametrize("field", SERVICE_FIELDS)
async def test_a_correction_setting_a_service_field_is_refused_and_the_lead_is_unchanged(
    keys: Keys, field: str,
) -> None:
    lead = await submit(keys, "scout")
    before = await snapshot(keys.platform, lead["id"])
    body = {"title": "A sneaky correction", field: SERVICE_FIELDS[field]}
    answer = await keys.platform.scouting.patch(f"/v1/leads/{lead['id']}", json=body,
                                                headers=keys.headers("manager"))
    assert answer.status_code == 422, answer.text
    assert f"body.{field}" in {error["location"] for error in answer.json()["errors"]}
    assert await snapshot(keys.platform, lead["id"]) == before


@pytest.mark.parametrize("field", ["by_key", "at", "from_status", "cluster", "status"])
async def test_a_transition_naming_who_or_when_is_refused_and_the_lead_is_unchanged(
    keys: Keys, field: str,
) -> None:
    lead = await submit(keys, "scout")
    before = await snapshot(keys.platform, lead["id"])
    answer = await keys.platform.scouting.post(
        f"/v1/leads/{lead['id']}/transitions", json={"to": "qualified", field: "x"},
        headers=keys.headers("manager"))
    assert answer.status_code == 422, answer.text
    assert await snapshot(keys.platform, lead["id"]) == before


# --- the counterpart contact: personal data ------------------------------------------------

def personal_strings(lead: dict[str, Any]) -> list[str]:
    contact = lead["sent"]["counterpart_contact"]
    return [contact["name"], contact["email"], contact["phone"]]


async def scouting_rows_containing(platform: Platform, text: str) -> list[str]:
    """Tables of scouting's schema with a row holding `text`, as plain text or as raw bytes."""
    tables = await platform.sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'scouting'")
    found = []
    for row in tables:
        hits = await platform.sql(
            f'SELECT 1 FROM scouting."{row["table_name"]}" t '
            "WHERE strpos(lower(t::text), lower($1)) > 0 OR strpos(t::text, $2) > 0 LIMIT 1",
            text, text.encode().hex())
        found += [row["table_name"]] if hits else []
    return found


async def test_events_and_answers_about_a_lead_carry_none_of_its_contacts_personal_data(
    keys: Keys,
) -> None:
    platform = keys.platform
    lead = await submit(keys, "scout")
    reads = [await platform.scouting.get(f"/v1/leads/{lead['id']}", headers=keys.headers("scout")),
             await platform.scouting.get("/v1/leads", headers=keys.headers("scout"),
                                         params={"q": lead["title"]})]
    moved = await platform.scouting.post(f"/v1/leads/{lead['id']}/transitions",
                                         json={"to": "qualified"}, headers=keys.headers("manager"))
    assert moved.status_code == 200
    events = await platform.sql("SELECT event_type, headers::text AS headers, payload "
                                "FROM scouting.outbox WHERE key = $1", lead["id"])
    assert {e["event_type"].split(".")[-2] for e in events} == {"submitted", "qualified"}
    for text in personal_strings(lead):
        for event in events:
            assert text not in event["headers"] and text.encode() not in event["payload"]
        for answer in (*reads, moved):
            assert text not in answer.text


async def test_the_contact_is_stored_only_encrypted(keys: Keys) -> None:
    platform = keys.platform
    body = unique_lead()
    answer = await platform.scouting.post(
        "/v1/leads", json=body, headers=keys.headers("scout") | {"Idempotency-Key": body["title"]})
    assert answer.status_code == 201
    lead = answer.json() | {"sent": body}
    [row] = await platform.sql("SELECT contact_sealed FROM scouting.leads WHERE id = $1",
                               uuid.UUID(lead["id"]))
    assert row["contact_sealed"]
    for text in personal_strings(lead):
        assert text.encode() not in row["contact_sealed"]
        assert await scouting_rows_containing(platform, text) == []


async def test_crm_fetches_the_contact_with_the_service_token_and_nothing_else_opens_it(
    keys: Keys,
) -> None:
    platform = keys.platform
    lead = await submit(keys, "scout")
    path = f"/internal/v1/leads/{lead['id']}/counterpart-contact"
    handover = await platform.scouting.get(path, headers=keys.headers("crm"))
    assert handover.status_code == 200
    assert handover.json()["contact"] == lead["sent"]["counterpart_contact"]
    refused = [{"X-Internal-Token": "not-the-token"}, {"Authorization": f"Bearer {INTERNAL_TOKEN}"},
               *({"X-Internal-Token": keys.tokens[who]} for who in CALLERS if who != "crm"),
               *(keys.headers(who) | {"X-Internal-Token": ""} for who in CALLERS if who != "crm")]
    for headers in refused:
        answer = await platform.scouting.get(path, headers=headers)
        assert answer.status_code == 401, headers
        assert lead["sent"]["counterpart_contact"]["email"] not in answer.text


async def test_scouting_erases_its_copy_once_crm_has_established_the_contact(
    keys: Keys,
) -> None:
    platform = keys.platform
    lead, kept = await submit(keys, "scout"), await submit(keys, "scout")
    await publish_event(platform, Event(data=ContactEstablished(
        contact_id=uuid.uuid4(), cluster="LITEK", lead_id=uuid.UUID(lead["id"]))))
    path = "/internal/v1/leads/{}/counterpart-contact"

    async def erased() -> bool:
        answer = await platform.scouting.get(path.format(lead["id"]), headers=keys.headers("crm"))
        return answer.status_code == 404
    await eventually(erased)
    shown = await platform.scouting.get(f"/v1/leads/{lead['id']}", headers=keys.headers("scout"))
    assert shown.json()["has_contact"] is False
    [row] = await platform.sql(
        "SELECT contact_sealed, contact_erased_at FROM scouting.leads WHERE id = $1",
        uuid.UUID(lead["id"]))
    assert row["contact_sealed"] is None and row["contact_erased_at"] is not None
    other = await platform.scouting.get(path.format(kept["id"]), headers=keys.headers("crm"))
    assert other.status_code == 200, "only the named lead's contact is erased"

