"""Scouting's web pages in a real browser (headless Chromium) on a 360 px phone screen: the
scout's form that survives a dead network, "my leads", and the manager's one-click triage.

The scouting app already running in the `platform` fixture is served over real HTTP by uvicorn
in this event loop, so the pages call the same API, database and broker the other tests use.
"""

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.async_api import Browser, Page, Route, async_playwright, expect

from shared.keys import create_key
from tests.conftest import Platform, a_lead

CHROMIUM = Path("/usr/bin/chromium")
HAVE_CHROMIUM = CHROMIUM.exists()  # CI installs Debian's package: apt-get install chromium
PHONE = {"width": 360, "height": 640}
# Set the key before the page's scripts run, as if it had been typed on an earlier visit.
KEEP_KEY = "try { localStorage.getItem('gvn.apiKey') || localStorage.setItem('gvn.apiKey', %s) }" \
    " catch (e) {}"
OpenPage = Callable[..., Awaitable[Page]]


@pytest.fixture(scope="session")
async def web_url(platform: Platform) -> AsyncIterator[str]:
    """The scouting app on a loopback port; its lifespan already runs inside `platform`."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(platform.apps["scouting"], lifespan="off",
                                           log_level="warning", timeout_graceful_shutdown=2))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # startup failed: raise its error here
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    await task


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        pytest.skip("no browser: /usr/bin/chromium is missing (apt-get install chromium)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield browser
        await browser.close()


@pytest.fixture
async def pages(browser: Browser, web_url: str) -> AsyncIterator[OpenPage]:
    """Opens pages on a phone-sized screen; the test fails on any script error or CSP breach."""
    contexts, errors = [], []

    def on_console(message: Any) -> None:
        # HTTP errors the page handles (409, 422, offline) are logged by Chromium too: not bugs.
        if message.type == "error" and "Failed to load resource" not in message.text:
            errors.append(message.text)

    async def open_page(path: str, *, key: str | None) -> Page:
        context = await browser.new_context(viewport=PHONE, base_url=web_url, is_mobile=True,
                                            has_touch=True)
        contexts.append(context)
        if key:
            await context.add_init_script(script=KEEP_KEY % json.dumps(key))
        page = await context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", on_console)
        await page.goto(path)
        return page

    yield open_page
    for context in contexts:
        await context.close()
    assert errors == [], errors


def tag() -> str:
    return uuid.uuid4().hex[:8]


async def leads_titled(platform: Platform, title: str, *, who: str = "scout") -> list[dict]:
    """The leads with this exact title, as the API lists them to `who`."""
    answer = await platform.scouting.get("/v1/leads", params={"q": title, "limit": 200},
                                         headers=platform.auth(who))
    assert answer.status_code == 200, answer.text
    return [lead for lead in answer.json()["items"] if lead["title"] == title]


async def submitted_by_api(platform: Platform, **fields: Any) -> dict:
    answer = await platform.scouting.post("/v1/leads", json=a_lead(**fields),
                                          headers=platform.auth("scout"))
    assert answer.status_code == 201, answer.text
    return answer.json()


async def fill_lead(page: Page, *, title: str, description: str, market: str,
                    counterpart: str = "", email: str = "") -> None:
    await page.get_by_label("What did you find?").select_option("partner_candidate")
    await page.get_by_label("Title").fill(title)
    await page.get_by_label("Description").fill(description)
    await page.get_by_label("Target market").select_option(market)
    await page.get_by_label("Interventional imaging").check()
    await page.get_by_label("Technologies").fill("fluorescence imaging, near-infrared")
    organisation = page.get_by_role("group", name="Organisation concerned")
    if counterpart:
        await organisation.get_by_label("Name").fill(counterpart)
        await organisation.get_by_label("Website").fill("https://lumiere-medical.example.ca")
        await organisation.get_by_label("Country").fill("ca")
    if email:
        contact = page.get_by_role("group", name="Contact person")
        await contact.get_by_label("Name").fill("Dr. Marie Roy")
        await contact.get_by_label("E-mail").fill(email)
        await contact.get_by_label("Phone").fill("+1 514 555 0100")
    await page.get_by_label("Urgency").select_option("high")
    await page.get_by_label("Source").select_option("mission")
    await page.get_by_label("Found on").fill("2025-03-14")
    await page.get_by_label("Evidence link").fill("https://tenders.example.ca/notice/4711")


async def fits_the_screen(page: Page) -> bool:
    return await page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def my_lead(page: Page, title: str):  # noqa: ANN201 (a Playwright Locator)
    return page.locator("#leads li", has_text=title)


# --- serving -------------------------------------------------------------------------------

async def test_pages_and_their_files_come_with_a_strict_content_security_policy(
    platform: Platform,
) -> None:
    for path, kind in [("/scout", "text/html"), ("/triage", "text/html"),
                       ("/static/scout.js", "javascript"), ("/static/style.css", "text/css")]:
        answer = await platform.scouting.get(path)
        assert answer.status_code == 200, path
        assert kind in answer.headers["content-type"]
        assert answer.headers["content-security-policy"].startswith("default-src 'self'")
        assert answer.headers["x-content-type-options"] == "nosniff"


async def test_only_the_shipped_static_files_are_served(platform: Platform) -> None:
    for path in ["/static/web.py", "/static/..%2Fweb.py", "/static/%2E%2E%2Fmain.py",
                 "/static/nothing.js"]:
        assert (await platform.scouting.get(path)).status_code == 404, path


async def test_the_pages_are_not_part_of_the_api_schema(platform: Platform) -> None:
    paths = (await platform.scouting.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith(("/scout", "/triage", "/static"))]


# --- the scout's page ----------------------------------------------------------------------

async def test_a_scout_on_a_360px_phone_submits_a_lead_and_sees_it_in_my_leads(
    platform: Platform, pages: OpenPage,
) -> None:
    page = await pages("/scout", key=None)
    await page.get_by_label("Your API key").fill(platform.keys["scout"])
    await page.get_by_role("button", name="Save key").click()
    title = f"Distributor for fluorescence-guided surgery cameras {tag()}"
    await fill_lead(page, title=title, market="CA", counterpart=f"Lumière Médical {tag()}",
                    email="m.roy@lumiere-medical.ca",
                    description="Montreal hospital group tenders NIR cameras for breast surgery.")
    assert await fits_the_screen(page)
    await page.screenshot(path="/tmp/scout-360.png", full_page=True)

    await page.get_by_role("button", name="Submit lead").click()

    await expect(my_lead(page, title).locator(".badge")).to_have_text("submitted")
    await expect(page.get_by_role("status")).to_contain_text("Sent")
    assert await fits_the_screen(page)
    [lead] = await leads_titled(platform, title)
    assert lead["status"] == "submitted" and lead["kind"] == "partner_candidate"
    assert lead["counterpart_country"] == "CA" and lead["has_contact"]
    assert lead["source_date"] == "2025-03-14" and lead["urgency"] == "high"
    await expect(page.get_by_label("Title")).to_have_value("")  # ready for the next lead


async def test_a_lead_submitted_offline_is_queued_and_sent_once_back_online(
    platform: Platform, pages: OpenPage,
) -> None:
    page = await pages("/scout", key=platform.keys["scout"])
    title = f"Hyperspectral wound imaging for home care {tag()}"
    await page.evaluate("navigator.serviceWorker.ready.then(() => true)")  # page kept for offline
    await page.context.set_offline(True)
    await page.wait_for_function("!navigator.onLine")  # as a phone would know it
    await fill_lead(page, title=title, market="AU",
                    description="Home-care nurses in Perth photograph chronic wounds daily.")
    await page.get_by_role("button", name="Submit lead").click()

    queued = page.locator("#outbox li", has_text=title)
    await expect(queued).to_contain_text("Queued, will send when back online")
    await page.reload()  # the page opens with no network, the lead still queued
    await expect(queued).to_contain_text("queued")
    # Not asked of the server here: Chromium's emulated offline lets through a request the
    # reloaded page makes while it starts (seen in CI), where a phone's would fail. Whatever
    # got through, the lead stays queued until an answer arrives, and is saved once.

    await page.context.set_offline(False)
    await expect(my_lead(page, title)).to_be_visible()
    await expect(page.locator("#outbox")).to_be_hidden()
    await page.reload()
    await expect(my_lead(page, title)).to_be_visible()
    assert len(await leads_titled(platform, title)) == 1


async def test_a_lead_whose_answer_was_lost_is_resent_without_making_a_second(
    platform: Platform, pages: OpenPage,
) -> None:
    page = await pages("/scout", key=platform.keys["scout"])

    async def save_but_drop_the_answer(route: Route) -> None:
        if route.request.method != "POST":
            return await route.continue_()
        await route.fetch()  # the server saves the lead...
        await route.abort("connectionreset")  # ...and the phone never hears back

    await page.route(lambda url: url.endswith("/v1/leads"), save_but_drop_the_answer)
    title = f"Photoacoustic breast imaging pilot site {tag()}"
    await fill_lead(page, title=title, market="SG",
                    description="A Singapore hospital offers itself as a pilot site.")
    await page.get_by_role("button", name="Submit lead").click()
    await expect(page.locator("#outbox li", has_text=title)).to_contain_text(
        "Queued, will send when back online")
    assert len(await leads_titled(platform, title)) == 1

    await page.unroute_all()
    await page.reload()  # the next page load sends what is queued, with the same key
    await expect(my_lead(page, title)).to_be_visible()
    await expect(page.locator("#outbox")).to_be_hidden()
    assert len(await leads_titled(platform, title)) == 1


async def test_the_draft_and_its_idempotency_key_survive_a_reload(
    platform: Platform, pages: OpenPage,
) -> None:
    page = await pages("/scout", key=platform.keys["scout"])
    title = f"Laser therapy devices for dental clinics {tag()}"
    await page.get_by_label("Title").fill(title)
    await page.get_by_label("Target market").select_option("KR")
    await page.get_by_label("Therapy").check()
    draft_key = "JSON.parse(localStorage.getItem('gvn.scout.draft')).key"
    key = await page.evaluate(draft_key)

    await page.reload()
    await expect(page.get_by_label("Title")).to_have_value(title)
    await expect(page.get_by_label("Target market")).to_have_value("KR")
    await expect(page.get_by_label("Therapy")).to_be_checked()
    await page.get_by_label("Description").fill("Seoul dental chains want diode lasers.")
    assert await page.evaluate(draft_key) == key


async def test_a_likely_duplicate_shows_the_candidates_and_submit_anyway_saves_it(
    platform: Platform, pages: OpenPage,
) -> None:
    counterpart = f"Seoul Optics Hospital {tag()}"
    original = await submitted_by_api(
        platform, title=f"OCT angiography for retina clinics {tag()}", target_market="KR",
        description="Retina clinics want OCT-A.", counterpart={"name": counterpart})
    page = await pages("/scout", key=platform.keys["scout"])
    title = f"Retinal imaging partner in Seoul {tag()}"
    await fill_lead(page, title=title, market="KR", counterpart=counterpart,
                    description="The same hospital asked again at the trade fair.")
    await page.get_by_role("button", name="Submit lead").click()

    warning = page.locator("#outbox li", has_text=title)
    await expect(warning).to_contain_text("likely duplicate")
    await expect(warning.locator(".candidates")).to_contain_text(original["title"])
    await expect(warning.locator(".candidates")).to_contain_text("same organisation")
    assert await leads_titled(platform, title) == []

    await warning.get_by_role("button", name="Submit anyway").click()
    await expect(my_lead(page, title)).to_be_visible()
    await expect(page.locator("#outbox")).to_be_hidden()
    assert len(await leads_titled(platform, title)) == 1


async def test_dropping_a_likely_duplicate_saves_nothing(
    platform: Platform, pages: OpenPage,
) -> None:
    counterpart = f"Tel Aviv Laser Clinic {tag()}"
    await submitted_by_api(platform, title=f"Dermatology lasers {tag()}", target_market="IL",
                           description="Skin clinics.", counterpart={"name": counterpart})
    page = await pages("/scout", key=platform.keys["scout"])
    title = f"Aesthetic laser distributor {tag()}"
    await fill_lead(page, title=title, market="IL", counterpart=counterpart,
                    description="Met them again.")
    await page.get_by_role("button", name="Submit lead").click()
    warning = page.locator("#outbox li", has_text=title)
    await warning.get_by_role("button", name="Drop it").click()
    await expect(page.locator("#outbox")).to_be_hidden()
    assert await leads_titled(platform, title) == []


async def test_a_refused_field_is_explained_next_to_it_and_the_lead_is_back_in_the_form(
    platform: Platform, pages: OpenPage,
) -> None:
    page = await pages("/scout", key=platform.keys["scout"])
    title = f"Raman spectroscopy for tumour margins {tag()}"
    # The browser accepts "name@host"; the API wants a real domain.
    await fill_lead(page, title=title, market="JP", email="tanaka@clinic",
                    description="Osaka surgeons look for intraoperative Raman probes.")
    await page.get_by_role("button", name="Submit lead").click()

    email = page.get_by_role("group", name="Contact person").get_by_label("E-mail")
    await expect(email).to_have_attribute("aria-invalid", "true")
    error = page.locator("[data-field='counterpart_contact.email'] .error")
    await expect(error).to_contain_text("period")
    await expect(page.get_by_label("Title")).to_have_value(title)
    assert await leads_titled(platform, title) == []


async def test_my_leads_pages_on_and_marks_stale_leads(
    platform: Platform, pages: OpenPage,
) -> None:
    _, key = await create_key(platform.settings, role="scout", cluster="LITEK",
                              name=f"busy scout {tag()}")
    titles = [f"Lead number {n} from a busy scout {tag()}" for n in range(21)]
    for title in titles:
        answer = await platform.scouting.post(
            "/v1/leads", json=a_lead(title=title, description=f"Case {title}."),
            headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 201, answer.text
    newest = answer.json()
    await platform.sql("UPDATE scouting.leads SET last_activity_at = now() - interval '90 days' "
                       "WHERE id = $1", uuid.UUID(newest["id"]))

    page = await pages("/scout", key=key)
    await expect(page.locator("#leads li.lead")).to_have_count(20)
    await expect(my_lead(page, titles[-1]).locator(".badge-stale")).to_have_text("stale")
    await expect(my_lead(page, titles[-2]).locator(".badge-stale")).to_have_count(0)
    await page.get_by_role("button", name="Show more").click()
    await expect(page.locator("#leads li.lead")).to_have_count(21)
    await expect(my_lead(page, titles[0])).to_be_visible()
    await expect(page.get_by_role("button", name="Show more")).to_be_hidden()


async def test_a_key_the_api_refuses_is_asked_for_again(
    platform: Platform, pages: OpenPage,
) -> None:
    page = await pages("/scout", key="gvn_000000000000_not-a-real-key")
    await expect(page.locator("#leads")).to_contain_text("not accepted")
    await expect(page.get_by_label("Your API key")).to_be_visible()


# --- the manager's triage ------------------------------------------------------------------

async def test_a_manager_qualifies_rejects_and_marks_a_duplicate_with_one_click_each(
    platform: Platform, pages: OpenPage,
) -> None:
    clinic = f"Haifa Photonics Clinic {tag()}"
    original = await submitted_by_api(
        platform, title=f"Endoscopic Raman probe {tag()}", target_market="IL",
        description="Gastro units want Raman endoscopy.", counterpart={"name": clinic})
    repeat = await submitted_by_api(
        platform, title=f"Raman endoscopy wanted by Haifa {tag()}", target_market="IL",
        description="Heard it again at a workshop.", counterpart={"name": clinic})
    unrelated = await submitted_by_api(
        platform, title=f"Wearable pulse oximetry patch {tag()}", target_market="AU",
        description="Sydney sleep labs want a disposable SpO2 patch.")
    hostile = await submitted_by_api(
        platform, title=f"<img src=x onerror=alert(1)> <b>Laser goggles</b> {tag()}",
        target_market="NZ", description="<script>alert(2)</script> Safety eyewear.")

    page = await pages("/triage", key=platform.keys["manager"])

    def card(lead: dict):  # noqa: ANN202 (a Playwright Locator)
        return page.locator(f"article[data-lead-id='{lead['id']}']")

    hint = card(repeat).get_by_role("button", name=f"Duplicate of this: {original['title']}")
    await expect(hint).to_be_visible()
    assert await fits_the_screen(page)
    await page.screenshot(path="/tmp/triage-360.png", full_page=True,
                          clip={"x": 0, "y": 0, "width": 360, "height": 1400})

    await card(unrelated).get_by_role("button", name="Qualify").click()
    await hint.click()
    await card(hostile).get_by_label("Reason for rejecting").select_option("insufficient_evidence")
    await card(hostile).get_by_role("button", name="Reject").click()

    await expect(card(unrelated).locator(".badges")).to_have_text("qualified")
    await expect(card(repeat).locator(".outcome")).to_contain_text("Marked duplicate")
    await expect(card(hostile).locator(".badges")).to_have_text("rejected")
    await expect(card(hostile).locator("h3")).to_have_text(hostile["title"])  # shown as text
    assert await card(hostile).locator("img, b, script").count() == 0
    seen = {lead["id"]: (await platform.scouting.get(
        f"/v1/leads/{lead['id']}", headers=platform.auth("manager"))).json()
        for lead in (original, repeat, unrelated, hostile)}
    assert seen[unrelated["id"]]["status"] == "qualified"
    assert seen[repeat["id"]]["status"] == "duplicate"
    assert seen[repeat["id"]]["duplicate_of"] == original["id"]
    assert seen[hostile["id"]]["status"] == "rejected"
    assert seen[hostile["id"]]["status_reason"] == "insufficient_evidence"
    assert seen[original["id"]]["status"] == "submitted"
