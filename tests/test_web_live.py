"""The workbench for people, in Debian's chromium against a small real federation (a
router and three nodes as processes over mutual TLS, no sample data needed): a search
runs in the background with a live page, one form sent is one search, errors are
pages, layouts fit a phone and a tablet, every page passes axe-core, and the
interface speaks German and French.

Set PRUM_SCREENSHOTS=docs/screenshots to refresh the documentation's screenshots
(50-53 here); otherwise they go to a temporary directory.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from PIL import Image
from playwright.sync_api import Browser, Page
from sqlalchemy import func, insert, select

from prum.demo import run as demo
from prum.demo import scenarios
from prum.demo.processes import Federation, Layout, lay_out
from prum.federation.messages import Category
from prum.node.config import CategoryPolicy
from prum.node.core import Node
from prum.node.schema import searches
from prum.node.users import add_user

pytestmark = [pytest.mark.slow]
PARTIES = ["AT", "DE", "HU"]
VIN = "1M8GDM9AXKP042788"  # a valid VIN no register here holds: every country answers "no hit"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 375, "height": 740}
TABLET = {"width": 768, "height": 1024}
FACE_SEARCH = "/workbench/searches/1"
COMPARE = FACE_SEARCH + "/candidates/DE/DE-F-0007"


class Live:
    def __init__(self, layout: Layout, processes: Federation, shots: Path) -> None:
        self.layout, self.processes, self.shots = layout, processes, shots

    def url(self, path: str = "/workbench/") -> str:
        return self.layout.parties["AT"].api_url + path

    def signal(self, party: str, sig: int) -> None:
        os.killpg(self.processes.processes[party].pid, sig)

    def searches_sent(self) -> int:
        node = Node(self.layout.config("AT"))
        try:
            with node.engine.connect() as conn:
                return int(conn.execute(select(func.count()).select_from(searches)).scalar_one())
        finally:
            node.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, chromium: Path) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("web-live")
    vehicles = scenarios.POLICIES[Category.VEHICLE]
    plan = {p: {Category.FACE: CategoryPolicy(), Category.VEHICLE: vehicles} for p in PARTIES}
    layout = lay_out(root / "fed", PARTIES, policies=plan)
    node = Node(layout.config("AT"))
    for name, role in demo.USERS.items():
        add_user(node.engine, name, demo.password("AT"), {role})
    answered_face_search(node)
    node.close()
    shots = Path(os.environ.get("PRUM_SCREENSHOTS") or root / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    with Federation(layout) as processes:
        processes.start_all()
        yield Live(layout, processes, shots)


def new_page(browser: Browser, viewport: dict[str, int] = DESKTOP, **options: Any) -> Page:
    context = browser.new_context(viewport=viewport, **options)
    context.set_default_timeout(20_000)
    return context.new_page()


def log_in(page: Page, live: Live, user: str, then: str = "/workbench/") -> None:
    page.goto(live.url(then))
    page.fill("#username", user)
    page.fill("#password", demo.password("AT"))
    page.click("button[type=submit]")
    page.wait_for_load_state()


def fill_vehicle_search(page: Page, live: Live, case: str, wait_s: int) -> None:
    page.goto(live.url("/workbench/search?category=vehicle"))
    page.check("input[name=way][value=vin]")
    page.fill("#vin", VIN)
    page.select_option("#offence", "0500 00")
    page.fill("#max_penalty_months", "120")
    page.fill("#case_reference", case)
    page.fill("#deadline_s", str(wait_s))


def status_of(page: Page, party: str) -> str:
    return page.text_content(f"#statuses tr[data-party={party}] .status") or ""


def test_a_double_click_sends_one_search(live: Live, browser: Browser) -> None:
    officer = new_page(browser)
    log_in(officer, live, "olga")
    fill_vehicle_search(officer, live, "AT-LKA-2026-1201", 10)
    before = live.searches_sent()
    officer.dblclick("#submit-search")
    officer.wait_for_url(re.compile(r"/workbench/searches/\d+$"))
    officer.wait_for_selector("#statuses tr[data-party=DE] .status.no_hit", timeout=15_000)
    assert live.searches_sent() == before + 1

    # The server holds to it too: the same form sent twice, without the page's script.
    fill_vehicle_search(officer, live, "AT-LKA-2026-1202", 10)
    form = {
        el.get_attribute("name"): el.get_attribute("value")
        for el in officer.query_selector_all("#search-form input[type=hidden]")
    }
    fields = {
        **form,
        "way": "vin",
        "vin": VIN,
        "case_reference": "AT-LKA-2026-1202",
        "purpose": "investigation",
        "offence": "0500 00",
        "max_penalty_months": "120",
        "deadline_s": "10",
    }
    answers = [
        officer.request.post(live.url("/workbench/search"), multipart=fields, max_redirects=0)
        for _ in range(2)
    ]
    assert [a.status for a in answers] == [303, 303]
    assert answers[0].headers["location"] == answers[1].headers["location"]
    assert live.searches_sent() == before + 2


def test_the_live_page_shows_a_late_country_arriving(live: Live, browser: Browser) -> None:
    officer = new_page(browser)
    log_in(officer, live, "olga")
    fill_vehicle_search(officer, live, "AT-LKA-2026-1203", 30)
    live.signal("HU", signal.SIGSTOP)  # HU is busy: it takes the request but answers late
    try:
        started = time.monotonic()
        officer.click("#submit-search")
        officer.wait_for_url(re.compile(r"/workbench/searches/\d+$"))
        assert time.monotonic() - started < 5  # the page came at once, not after 30 s
        officer.wait_for_selector("#statuses tr[data-party=DE] .status.no_hit")
        assert status_of(officer, "HU") == "waiting"
        assert "Waiting for answers" in (officer.text_content("#waiting") or "")
        # Without script the page refreshes itself.
        html = officer.request.get(officer.url).text()
        assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in html
        shot(officer, live, "50-live-search")
    finally:
        live.signal("HU", signal.SIGCONT)
    officer.wait_for_selector("#statuses tr[data-party=HU] .status.no_hit", timeout=15_000)
    officer.wait_for_selector("#search-status:has-text('answered')")
    assert officer.query_selector("#waiting") is None  # reloaded: every answer is in


def shot(page: Page, live: Live, name: str) -> None:
    page.screenshot(path=str(live.shots / f"{name}.png"), full_page=True)


def photo(shade: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (240, 300), (shade, 120, 200 - shade // 2)).save(buffer, "JPEG")
    return base64.b64encode(buffer.getvalue()).decode()


def answered_face_search(node: Node) -> None:
    """Search 1: a face search DE answered with one candidate (stored as a node stores
    an answer), for the pages that show candidates."""
    candidate = {
        "rank": 1,
        "reference": "DE-F-0007",
        "score": 0.82,
        "distance": 0.31,
        "false_match_rate": 1e-5,
        "false_match_words": "fewer than 1 in 100,000 impostors score this high",
        "provenance": "DE custody photo",
        "synthetic": False,
        "quality": 71.0,
        "image": photo(90),
        "details": None,
    }
    with node.engine.begin() as conn:
        conn.execute(
            insert(searches).values(
                message_id="6e8b3c47-2d2f-4d68-8b62-4b2e3c5d6f70",
                request_number="AT-20261207-00001",
                user="olga",
                category="face",
                purpose="investigation",
                offence="0800 00",
                max_penalty_months=60,
                case_reference="AT-LKA-2026-1190",
                targets=["all"],
                probe={"format": "image", "image": photo(160), "box": None},
                status="answered",
                reply={
                    "replies": [
                        {"party": "DE", "status": "answered", "candidates": [candidate]},
                        {"party": "HU", "status": "no_hit", "candidates": []},
                    ]
                },
                created_at=dt.datetime.now(dt.UTC),
                answered_at=dt.datetime.now(dt.UTC),
            )
        )


# The innermost elements reaching past the window's right edge (for the failure message).
OVERFLOWING = """() => {
  const past = (e) => e.getBoundingClientRect().right > window.innerWidth + 1;
  const name = (e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "")
    + (typeof e.className === "string" && e.className ? "." + e.className.replace(/ /g, ".") : "");
  return [...document.querySelectorAll("body *")]
    .filter((e) => past(e) && ![...e.children].some(past)).slice(0, 4).map(name);
}"""


# Every page, by the role that sees it (the login page without a session).
PAGES = {
    None: ["/workbench/login"],
    "olga": [
        "/workbench/",
        "/workbench/search?category=face",
        "/workbench/search?category=dna",
        "/workbench/search?category=finger",
        "/workbench/search?category=vehicle",
        "/workbench/search?category=records",
        FACE_SEARCH,
        COMPARE,
        "/workbench/cases",
        "/workbench/requests",
        "/workbench/no-such-page",
    ],
    "eric": [COMPARE, "/workbench/queue", "/workbench/notifications"],
    "anna": ["/workbench/inbox"],
    "otto": ["/workbench/audit", "/workbench/stats"],
    "ada": ["/workbench/admin"],
}


def width_past_the_window(page: Page, settle_s: float) -> int:
    """How many pixels the page reaches past the window; given ``settle_s``, it waits up
    to that long for the page to fit (charts follow the window's size a moment later)."""
    deadline = time.monotonic() + settle_s
    while True:
        wide = int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))
        if wide <= 0 or time.monotonic() >= deadline:
            return wide
        time.sleep(0.05)


def test_every_page_passes_axe_and_fits_a_phone(live: Live, browser: Browser) -> None:
    axe = Axe()
    problems: list[str] = []
    checked = 0
    for user, paths in PAGES.items():
        page = new_page(browser)
        if user:
            log_in(page, live, user)
        for path in paths:
            page.set_viewport_size(DESKTOP)
            page.goto(live.url(path))
            page.wait_for_load_state("load")
            found = axe.run(page).response["violations"]
            for v in found:
                if v["impact"] in ("serious", "critical"):
                    where = ", ".join(str(n["target"]) for n in v["nodes"][:3])
                    problems.append(f"{path} ({user}): {v['id']} [{v['impact']}] {where}")
            page.set_viewport_size(PHONE)
            wide = width_past_the_window(page, settle_s=2 if "stats" in path else 0)
            if wide > 0:
                culprits = page.evaluate(OVERFLOWING)
                problems.append(f"{path} ({user}): {wide} px wider than a phone: {culprits}")
            checked += 1
        page.context.close()
    assert checked == sum(len(p) for p in PAGES.values())
    assert not problems, "\n".join(problems)


def test_the_comparison_stays_side_by_side_on_a_tablet(live: Live, browser: Browser) -> None:
    page = new_page(browser, TABLET)
    log_in(page, live, "olga")
    page.goto(live.url(COMPARE))
    probe, candidate = (f.bounding_box() for f in page.query_selector_all(".pair figure"))
    assert probe and candidate
    assert candidate["x"] >= probe["x"] + probe["width"] - 1  # beside, not below
    assert abs(candidate["y"] - probe["y"]) < 2
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, live, "51-compare-tablet")
    page.set_viewport_size(PHONE)
    page.goto(live.url(FACE_SEARCH))
    shot(page, live, "52-results-phone")


def test_times_show_in_the_officers_zone_with_its_name(live: Live, browser: Browser) -> None:
    page = new_page(browser, timezone_id="Europe/Vienna", locale="de-AT")
    log_in(page, live, "olga")
    page.goto(live.url(FACE_SEARCH))
    sent = page.locator("dl.facts time")
    utc = sent.get_attribute("datetime") or ""
    local = dt.datetime.fromisoformat(utc.replace("Z", "+00:00")).astimezone(
        dt.timezone(dt.timedelta(hours=1))  # Vienna in December: UTC+1 (MEZ / CET)
    )
    shown = sent.text_content() or ""
    assert shown.startswith(local.strftime("%Y-%m-%d %H:%M"))
    assert re.search(r"(MEZ|CET|GMT\+1|UTC\+1)$", shown), shown
    assert "UTC" in (sent.get_attribute("title") or "")


def test_a_page_in_german_chosen_by_the_officer(live: Live, browser: Browser) -> None:
    page = new_page(browser, timezone_id="Europe/Berlin")
    log_in(page, live, "olga")
    page.click("#language-de")  # the header's language choice, kept for the next pages
    page.wait_for_selector("html[lang=de]")
    page.goto(live.url(FACE_SEARCH))
    assert page.text_content("h2") == "Antworten je Land"
    assert status_of(page, "HU") == "kein Treffer"
    assert "strafrechtliche Ermittlung" in (page.text_content("dl.facts") or "")
    assert (page.text_content("dl.facts time") or "").endswith(("MEZ", "CET", "GMT+1"))
    shot(page, live, "53-results-german")
    page.goto(live.url("/workbench/search?category=vehicle"))
    assert page.text_content("h1") == "Neue Suche"
    assert "Zielländer" in (page.text_content("fieldset.targets legend") or "")
