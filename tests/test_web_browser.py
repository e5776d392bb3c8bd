"""The workbench in a real browser (Debian's chromium driven by Playwright) against the
real demo federation: router and five nodes as processes over mutual TLS, real photos.

Set PRUM_SCREENSHOTS=docs/screenshots to refresh the documentation's screenshots;
otherwise they go to a temporary directory (taking them is part of the test).
"""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page

from prum.demo import national
from prum.demo import run as demo
from prum.node.users import Role
from webfixtures import DemoFederation

pytestmark = [pytest.mark.realdata, pytest.mark.slow]
ADMIN = next(name for name, role in demo.USERS.items() if role == Role.ADMIN)
DESKTOP = {"width": 1280, "height": 860}
TABLET = {"width": 820, "height": 1180}


@pytest.fixture
def federation(demo_with_faces: DemoFederation) -> DemoFederation:
    """The shared demo federation with real faces (conftest), running."""
    return demo_with_faces


def new_page(browser: Browser, viewport: dict[str, int] = DESKTOP) -> Page:
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(30_000)
    return context.new_page()


def log_in(
    page: Page, fed: DemoFederation, party: str, user: str, password: str | None = None
) -> None:
    page.goto(fed.url(party, "/workbench/login"))
    page.fill("#username", user)
    page.fill("#password", password or demo.password(party))
    page.click("button[type=submit]")


def shot(page: Page, fed: DemoFederation, name: str, *, full: bool = True) -> None:
    page.screenshot(path=str(fed.shots / f"{name}.png"), full_page=full)


def drop_file(page: Page, path: Path, mime: str) -> None:
    """Drag and drop a file onto the drop zone, as a user does."""
    data = base64.b64encode(path.read_bytes()).decode()
    transfer = page.evaluate_handle(
        """([b64, name, mime]) => {
            const bin = atob(b64); const bytes = new Uint8Array(bin.length);
            for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, { type: mime }));
            return dt;
        }""",
        [data, path.name, mime],
    )
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})


def reload_until(page: Page, selector: str, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if text in (page.text_content(selector) or ""):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{text!r} did not appear in {selector}")
        time.sleep(0.5)
        page.reload()


def test_face_search_from_probe_to_released_core_data(
    federation: DemoFederation, browser: Browser
) -> None:
    fed = federation
    officer = new_page(browser)
    log_in(officer, fed, "AT", "olga")
    officer.goto(fed.url("AT", "/workbench/search"))
    assert fed.probe is not None  # the fixture skips without one
    drop_file(officer, fed.probe, "image/jpeg")
    officer.wait_for_selector(".face-choice")
    assert officer.is_checked("#face-0")
    assert "overall quality" in officer.text_content("#faces")
    assert officer.locator("#preview-boxes rect").count() >= 1
    officer.select_option("#offence", "1500 00")
    officer.fill("#max_penalty_months", "96")
    officer.fill("#case_reference", "AT-LKA-2026-0412")
    officer.fill("#deadline_s", "90")  # the first search loads every node's models
    shot(officer, fed, "01-new-search")
    officer.click("#submit-search")
    officer.wait_for_url(re.compile(r"/workbench/searches/\d+$"), timeout=150_000)
    officer.wait_for_selector("#waiting", state="detached", timeout=150_000)  # all answers in
    results_url = officer.url
    statuses = officer.text_content("#statuses")
    assert re.search(r"DE\s+answered", statuses or "")
    assert {"HU", "NL", "EUROPOL"} <= set(re.findall(r"[A-Z]{2,7}", statuses or ""))
    first = officer.locator("#candidates-DE + details li.candidate").first
    assert "in" in first.locator(".fmr").text_content()  # FMR in words
    shot(officer, fed, "02-results", full=False)

    examiner = new_page(browser)
    log_in(examiner, fed, "AT", "eric")
    examiner.goto(results_url)
    examiner.locator("#candidates-DE + details li.candidate a.button").first.click()
    examiner.wait_for_selector("#verify-form")
    compare_url = examiner.url
    assert not examiner.is_visible("#candidate-overlay")
    examiner.check("#landmarks-toggle")
    assert examiner.locator("#probe-overlay circle").count() > 5
    assert examiner.locator("#candidate-overlay circle").count() > 5
    assert examiner.is_visible("#candidate-overlay")
    examiner.focus(".viewport")
    examiner.keyboard.press("+")
    examiner.keyboard.press("ArrowLeft")
    transforms = examiner.eval_on_selector_all(
        ".layer", "layers => layers.map(l => l.style.transform)"
    )
    assert transforms[0] == transforms[1] and "scale(1.2)" in transforms[0]
    # A first, cautious outcome whose justification carries markup: shown as text.
    examiner.check("input[name=decision][value=inconclusive]")
    examiner.fill("#justification", "<script>window.__xss = 1</script> ears hidden on the probe")
    examiner.click("#verify-form button[type=submit]")
    examiner.wait_for_selector(".history .justification")
    assert "<script>window.__xss = 1</script>" in examiner.text_content(".history")
    assert examiner.evaluate("window.__xss") is None
    examiner.check("input[name=decision][value=confirmed]")
    examiner.fill("#justification", "Same face shape, nose and eyebrows in the zoomed comparison.")
    examiner.click("#verify-form button[type=submit]")
    examiner.wait_for_selector("#core-data-form")
    examiner.fill(
        "#facts",
        "Theft of a car from a dealer in Graz on 2 October 2026; the probe is a CCTV still.",
    )
    examiner.check("#landmarks-toggle")
    examiner.click("#zoom-in")
    shot(examiner, fed, "03-compare")
    examiner.click("#core-data-form button[type=submit]")
    examiner.wait_for_url("**/workbench/requests")
    assert re.search(r"4[78] h \d\d min left", examiner.text_content("main") or "")

    approver = new_page(browser)
    log_in(approver, fed, "DE", "anna")
    approver.goto(fed.url("DE", "/workbench/inbox"))
    reload_until(approver, "main", "Theft of a car from a dealer in Graz")
    assert "1500 00 Theft offences" in (approver.text_content("main") or "")
    shot(approver, fed, "05-inbox")
    approver.locator("a:has-text('Review and decide')").first.click()
    assert "surnames" in (approver.text_content("#preview") or "")
    approver.check("#confirm-release")
    approver.click("#release")
    assert approver.locator("#decided .status.released").count() == 1

    examiner.goto(fed.url("AT", "/workbench/requests"))
    reload_until(examiner, "main", "Core data released by DE")
    core = examiner.text_content(".core-data") or ""
    assert "surnames" in core and any(name in core for name in national.SURNAMES)
    shot(examiner, fed, "04-follow-up")
    examiner.goto(compare_url)
    assert "released" in (examiner.text_content("#follow-up") or "")
    examiner.goto(fed.url("AT", "/workbench/cases"))
    assert "AT-LKA-2026-0412" in (examiner.text_content("main") or "")
    shot(examiner, fed, "06-cases")

    tablet = new_page(browser, TABLET)
    log_in(tablet, fed, "AT", "eric")
    tablet.goto(results_url)
    width = tablet.evaluate("document.documentElement.scrollWidth")
    assert width <= TABLET["width"], "the results page scrolls sideways on a tablet"
    shot(tablet, fed, "07-results-tablet", full=False)


def test_auditor_verifies_the_chain_and_sees_charts(
    federation: DemoFederation, browser: Browser
) -> None:
    page = new_page(browser)
    log_in(page, federation, "AT", "otto")
    page.goto(federation.url("AT", "/workbench/audit"))
    page.click("#verify-chain")
    assert "Intact:" in (page.text_content("#verify-result") or "")
    page.select_option("#f-kind", "login")
    page.click("form.filters button")
    kinds = page.locator("#audit-entries tbody td:nth-child(3)").all_text_contents()
    assert kinds and set(kinds) == {"login"}
    shot(page, federation, "08-audit")
    page.goto(federation.url("AT", "/workbench/stats"))
    page.wait_for_selector("#chart-monthly .main-svg")
    page.wait_for_selector("#chart-response .main-svg")
    assert "searches sent" in (page.text_content("#monthly-table") or "")
    shot(page, federation, "09-statistics")


def test_admin_lists_users_and_shows_the_configuration(
    federation: DemoFederation, browser: Browser
) -> None:
    page = new_page(browser)
    log_in(page, federation, "AT", ADMIN)
    page.goto(federation.url("AT", "/workbench/admin"))
    page.fill("#new-name", "nina")
    page.fill("#new-password", "a good long password")
    page.check("input[name=roles][value=examiner]")
    page.check("input[name=roles][value=officer]")
    page.click("#add-user button")
    assert "user nina added" in (page.text_content("main") or "")
    assert "examiner, officer" in (page.text_content("#users") or "")
    assert '"party": "AT"' in (page.text_content("pre.config") or "")
    shot(page, federation, "10-admin")


def test_officer_opening_the_inbox_gets_a_403_page(
    federation: DemoFederation, browser: Browser
) -> None:
    page = new_page(browser)
    log_in(page, federation, "AT", "olga")
    response = page.goto(federation.url("AT", "/workbench/inbox"))
    assert response.status == 403
    assert page.text_content("h1") == "Not allowed"
    shot(page, federation, "11-role-refused")


def test_probe_without_a_face_shows_the_reason(
    federation: DemoFederation, browser: Browser, tmp_path: Path
) -> None:
    blank = tmp_path / "wall.png"
    Image.linear_gradient("L").resize((640, 480)).convert("RGB").save(blank)
    page = new_page(browser)
    log_in(page, federation, "AT", "olga")
    page.goto(federation.url("AT", "/workbench/search"))
    page.set_input_files("#image", str(blank))
    page.wait_for_selector("#preview-status.alert")
    assert "no face was found" in (page.text_content("#preview-status") or "")
    page.select_option("#offence", "0800 00")
    page.fill("#max_penalty_months", "60")
    page.fill("#case_reference", "AT-2026-blank")
    page.click("#submit-search")
    page.wait_for_selector("#search-error")
    assert "No face found." in (page.text_content("#search-error") or "")  # the code in words
    shot(page, federation, "12-probe-refused")


def test_officer_chooses_one_face_of_a_group_photo(
    federation: DemoFederation, browser: Browser
) -> None:
    assert federation.group_photos, "both sample sets (shared, registry) hold group photos"
    page = new_page(browser)
    log_in(page, federation, "AT", "olga")
    page.goto(federation.url("AT", "/workbench/search"))
    page.set_input_files("#image", str(federation.group_photos[0]))
    page.wait_for_selector(".face-choice")
    faces = page.locator(".face-choice").count()
    assert faces >= 2 and page.locator("#preview-boxes rect").count() == faces
    usable = page.locator(".face-choice input[type=radio]:not([disabled])")
    assert usable.count() >= 1
    if usable.count() > 1:
        assert page.input_value("#face_box") == ""  # the officer chooses, not the page
    usable.last.check()
    box = page.input_value("#face_box")
    assert re.fullmatch(r"\d+,\d+,\d+,\d+", box)


def test_post_without_the_csrf_token_is_refused(
    federation: DemoFederation, browser: Browser
) -> None:
    page = new_page(browser)
    log_in(page, federation, "DE", "anna")
    page.goto(federation.url("DE", "/workbench/inbox"))
    # The session cookie goes with it; the token does not.
    response = page.request.post(
        federation.url("DE", "/workbench/inbox/1/decision"),
        form={"action": "hold", "hold_reason": "judicial_authorisation"},
    )
    assert response.status == 403 and "CSRF" in response.text()


def test_login_page_and_lockout(federation: DemoFederation, browser: Browser) -> None:
    page = new_page(browser)
    page.goto(federation.url("NL", "/workbench/login"))
    shot(page, federation, "00-login")
    for _ in range(5):
        log_in(page, federation, "NL", "otto", "not the password")
        assert "wrong user name or password" in (page.text_content("#login-error") or "")
    log_in(page, federation, "NL", "otto")
    assert "/login" in page.url
    assert "locked" in (page.text_content("#login-error") or "")
