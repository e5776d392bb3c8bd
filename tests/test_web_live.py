"""The workbench for people, in Debian's chromium against a small real federation (a
router and three nodes as processes over mutual TLS, no sample data needed): a search
runs in the background with a live page, one form sent is one search, errors are
pages, layouts fit a phone and a tablet, every page passes axe-core, and the
interface speaks German and French.

Set PRUM_SCREENSHOTS=docs/screenshots to refresh the documentation's screenshots
(30-... here); otherwise they go to a temporary directory.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy import func, select

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
    node.close()
    shots = Path(os.environ.get("PRUM_SCREENSHOTS") or root / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    with Federation(layout) as processes:
        processes.start_all()
        yield Live(layout, processes, shots)


@pytest.fixture(scope="module")
def browser(live: Live, chromium: Path) -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True)
        yield browser
        browser.close()


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
        shot(officer, live, "30-live-search")
    finally:
        live.signal("HU", signal.SIGCONT)
    officer.wait_for_selector("#statuses tr[data-party=HU] .status.no_hit", timeout=15_000)
    officer.wait_for_selector("#search-status:has-text('answered')")
    assert officer.query_selector("#waiting") is None  # reloaded: every answer is in


def shot(page: Page, live: Live, name: str) -> None:
    page.screenshot(path=str(live.shots / f"{name}.png"), full_page=True)
