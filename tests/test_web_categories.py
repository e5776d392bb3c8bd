"""The workbench's other categories in a real browser (Debian's chromium driven by
Playwright) against the real demo federation: router and five nodes as processes over
mutual TLS, the demo's generated DNA profiles, police records and vehicle registrations
and DE's AFIS of FVC development prints (prum.demo.scenarios).

Set PRUM_SCREENSHOTS=docs/screenshots to refresh the documentation's screenshots
(13-... here); otherwise they go to a temporary directory.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from prum.categories.finger.matcher import GALLERY_CALIBRATION_MIN_FINGERS
from prum.demo import scenarios
from prum.node.web.views import FINGER_POSITIONS
from test_web_browser import log_in, new_page, shot
from webfixtures import DemoFederation

pytestmark = [pytest.mark.realdata, pytest.mark.slow]
# Only these two parties' users log in here (argon2 hashing is slow on purpose).


@pytest.fixture
def federation(demo_with_other_categories: DemoFederation) -> DemoFederation:
    """The shared demo federation with its non-face data (conftest), running."""
    return demo_with_other_categories


def fill_grounds(page: Any, offence: str, months: str, case: str) -> None:
    page.select_option("#offence", offence)
    page.fill("#max_penalty_months", months)
    page.fill("#case_reference", case)
    page.fill("#deadline_s", "60")


def test_dna_trace_finds_de_with_the_profile_table(
    federation: DemoFederation, browser: Browser
) -> None:
    fed = federation
    officer = new_page(browser)
    log_in(officer, fed, "AT", "olga")
    officer.goto(fed.url("AT", "/workbench/search?category=dna"))
    officer.fill("#profile_text", fed.facts.dna_trace.decode())
    fill_grounds(officer, "0500 00", "120", "AT-LKA-2026-0977")
    shot(officer, fed, "13-dna-search")
    officer.click("#submit-search")
    officer.wait_for_url(re.compile(r"/workbench/searches/\d+$"), timeout=90_000)
    officer.wait_for_selector("#waiting", state="detached", timeout=90_000)  # all answers in
    statuses = officer.text_content("#statuses") or ""
    assert re.search(r"DE\s+answered", statuses)
    hit = officer.locator("#candidates-DE + details li.candidate").first
    assert fed.facts.dna_source in (hit.locator(".ref").text_content() or "")
    assert "identified person" in (hit.text_content() or "")
    assert "random match probability about 1 in" in (hit.locator(".rmp").text_content() or "")
    hit.locator("details.profile summary").click()
    rows = hit.locator("table.dna tbody tr")
    assert rows.count() >= 10
    states = hit.locator("table.dna tbody tr td:last-child").all_text_contents()
    assert "match" in states and "mismatch" not in states  # the trace comes from this person
    shot(officer, fed, "14-dna-results")

    examiner = new_page(browser)
    log_in(examiner, fed, "AT", "eric")
    examiner.goto(officer.url)
    examiner.locator("#candidates-DE + details li.candidate a.button").first.click()
    examiner.wait_for_selector("#dna-profile")
    probe_cells = examiner.locator("#dna-profile tbody tr td:nth-child(2)").all_text_contents()
    held_cells = examiner.locator("#dna-profile tbody tr td:nth-child(3)").all_text_contents()
    # The trace has 10 loci (the demo's keep=10); the held profile has more.
    assert sum(c != "–" for c in probe_cells) == 10
    assert sum(c != "–" for c in held_cells) > 10
    assert examiner.is_visible("#verify-form")
    shot(examiner, fed, "15-dna-compare")


def test_records_search_with_a_transliterated_name_hits_without_a_name(
    federation: DemoFederation, browser: Browser
) -> None:
    fed = federation
    typed = scenarios.WANTED_AS_TYPED
    officer = new_page(browser)
    log_in(officer, fed, "AT", "olga")
    officer.goto(fed.url("AT", "/workbench/search?category=records"))
    assert "Only pseudonyms leave this node" in (officer.text_content("#pseudonyms-note") or "")
    officer.fill("#surnames", ", ".join(typed["surnames"]))
    officer.fill("#first_names", ", ".join(typed["first_names"]))
    officer.fill("#date_of_birth", str(typed["date_of_birth"]))
    officer.select_option("#gender", str(typed["gender"]))
    fill_grounds(officer, "0900 00", "120", "AT-BK-2026-2210")
    shot(officer, fed, "16-records-search")
    officer.click("#submit-search")
    officer.wait_for_url(re.compile(r"/workbench/searches/\d+$"), timeout=90_000)
    officer.wait_for_selector("#waiting", state="detached", timeout=90_000)  # all answers in
    assert re.search(r"DE\s+answered", officer.text_content("#statuses") or "")
    hit = officer.locator("#candidates-DE + details li.candidate").first
    assert fed.facts.records_reference in (hit.locator(".ref").text_content() or "")
    quality = hit.locator(".records-quality").text_content() or ""
    assert re.match(r"quality \d+ %: \S", quality)
    assert "agreed on:" in (hit.locator(".matched-on").text_content() or "")
    page_text = officer.text_content("main") or ""
    names = [*scenarios.WANTED["surnames"], *scenarios.WANTED["first_names"]]
    names += [*typed["surnames"], *typed["first_names"]]
    assert not any(str(n) in page_text for n in names), "a name on the results page"
    shot(officer, fed, "17-records-results")

    examiner = new_page(browser)
    log_in(examiner, fed, "AT", "eric")
    examiner.goto(officer.url)
    hit = examiner.locator("#candidates-DE + details li.candidate").first
    hit.locator("a.button").click()
    examiner.wait_for_selector("#records-fields")
    assert examiner.locator("#records-fields tr.agreed").count() >= 2
    assert not any(str(n) in (examiner.text_content("main") or "") for n in names)
    assert examiner.is_visible("#verify-form")
    shot(examiner, fed, "18-records-compare")


def test_vehicle_form_refuses_a_short_vin_before_sending(
    federation: DemoFederation, browser: Browser
) -> None:
    fed = federation
    page = new_page(browser)
    log_in(page, fed, "AT", "olga")
    page.goto(fed.url("AT", "/workbench/search?category=vehicle"))
    assert page.is_visible("#plate") and not page.is_visible("#vin")
    page.check("input[name=way][value=vin]")
    assert page.is_visible("#vin") and not page.is_visible("#plate")
    page.fill("#vin", "WVWZZZ1JZ3W38")
    fill_grounds(page, "1500 00", "36", "AT-2026-car")
    page.click("#submit-search")
    page.wait_for_selector("#search-error")
    assert "has 13 characters; it needs 17" in (page.text_content("#search-error") or "")
    assert page.input_value("#vin") == "WVWZZZ1JZ3W38"  # kept to correct
    assert page.is_visible("#vin")  # the chosen way stays open
    shot(page, fed, "19-vehicle-refused")


def test_vehicle_plate_search_shows_the_stolen_dutch_car_without_a_second_step(
    federation: DemoFederation, browser: Browser
) -> None:
    fed = federation
    plate = fed.facts.stolen_plate
    assert plate, "the demo signals no stolen car"
    page = new_page(browser)
    log_in(page, fed, "AT", "olga")
    page.goto(fed.url("AT", "/workbench/search?category=vehicle"))
    page.fill("#plate", plate.lower().replace("-", " "))  # as a witness wrote it down
    page.select_option("#registration_country", "NL")
    fill_grounds(page, "0900 00", "120", "AT-BK-2026-2210")
    page.click("#submit-search")
    page.wait_for_url(re.compile(r"/workbench/searches/\d+$"), timeout=90_000)
    page.wait_for_selector("#waiting", state="detached", timeout=90_000)  # all answers in
    assert "no second step" in (page.text_content("#vehicle-note") or "")
    asked = page.locator("#statuses tbody th").all_text_contents()
    assert [a.strip() for a in asked] == ["NL"]  # a plate goes to one country only
    assert re.search(r"NL\s+answered", page.text_content("#statuses") or "")
    hit = page.locator("#candidates-NL + details li.candidate")
    assert hit.count() == 1
    table = hit.locator("table.vehicle")
    assert "Directive 1999/37/EC" in (table.locator("caption").text_content() or "")
    codes = [c.strip() for c in table.locator("td.code").all_text_contents()]
    assert {"A", "E", "D.1"} <= set(codes)
    rows = {
        (r.locator("td.code").text_content() or "").strip(): r.locator("td").last.text_content()
        for r in table.locator("tbody tr").all()
    }
    assert rows["A"] == plate and rows["E"] == fed.facts.stolen_vin
    signal = hit.locator(".signals .status.signal")
    assert signal.all_text_contents() == ["reported stolen"]
    assert hit.locator(".signals").get_attribute("role") == "alert"
    colour = signal.evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour not in ("rgba(0, 0, 0, 0)", "transparent")  # highlighted
    # Registration data come at once: nothing to compare, verify or request.
    assert hit.locator("a.button").count() == 0
    assert page.locator("#verify-form, #core-data-form").count() == 0
    shot(page, fed, "21-vehicle-results")
    reference = (hit.locator(".ref").text_content() or "").strip()
    page.goto(f"{page.url}/candidates/NL/{reference}")
    page.wait_for_selector("#vehicle-heading")
    assert page.locator("#verify-form, #core-data-form, #decisions").count() == 0


def test_finger_form_offers_the_search_types(federation: DemoFederation, browser: Browser) -> None:
    fed = federation
    page = new_page(browser)
    log_in(page, fed, "AT", "olga")
    page.goto(fed.url("AT", "/workbench/search?category=finger"))
    options = page.locator("#search_type option").all_inner_texts()
    assert [o.split(":")[0] for o in options] == ["TP/TP", "TP/UL", "LT/TP", "LT/UL"]
    page.set_input_files(
        "#finger_file",
        files=[
            {
                "name": "case.an2",
                "mimeType": "application/octet-stream",
                "buffer": b"1.001:17\x1d1.002:0502\x1c",
            }
        ],
    )
    page.select_option("#search_type", "LT/TP")
    fill_grounds(page, "1500 00", "36", "AT-2026-print")
    page.click("#submit-search")
    page.wait_for_selector("#search-error")
    # In words, with what is wrong; never the internal code.
    error = page.text_content("#search-error") or ""
    assert "Unreadable ANSI/NIST-ITL record" in error and "the length is wrong" in error
    assert "malformed_nist_record" not in error
    assert page.input_value("#search_type") == "LT/TP"
    shot(page, fed, "20-finger-refused")


def test_finger_tenprint_search_finds_de_and_compares_the_prints(
    federation: DemoFederation, browser: Browser, tmp_path: Path
) -> None:
    fed = federation
    assert fed.facts.finger_probe, "the demo's AFIS was not filled: see demo.log"
    probe = tmp_path / "AT-2026-0001.an2"
    probe.write_bytes(fed.facts.finger_probe)
    officer = new_page(browser)
    log_in(officer, fed, "AT", "olga")
    officer.goto(fed.url("AT", "/workbench/search?category=finger"))
    officer.set_input_files("#finger_file", probe)
    officer.select_option("#search_type", "TP/TP")
    fill_grounds(officer, "0900 00", "120", "AT-BK-2026-2210")
    officer.click("#submit-search")
    officer.wait_for_url(re.compile(r"/workbench/searches/\d+$"), timeout=120_000)
    officer.wait_for_selector("#waiting", state="detached", timeout=120_000)  # all answers in
    assert re.search(r"DE\s+answered", officer.text_content("#statuses") or "")
    hits = officer.locator("#candidates-DE + details li.candidate")
    assert hits.count() == 1  # TP/TP: the legacy cap of one candidate
    hit = hits.first
    assert (hit.locator(".ref").text_content() or "").strip() in fed.facts.finger_source
    summary = hit.locator(".finger-summary").text_content() or ""
    finger = FINGER_POSITIONS[fed.facts.finger_position]
    assert summary.startswith(f"TP/TP (ten-print against ten-prints); {finger}")
    assert re.search(r"; \d+ matched minutiae$", summary.strip())
    # A false-match rate from the AFIS's own impostor pairs, or plainly none (few prints).
    calibrated = fed.facts.finger_records >= GALLERY_CALIBRATION_MIN_FINGERS
    fmr = hit.locator(".fmr").text_content() or ""
    assert ("impostors scored this high" if calibrated else "not calibrated") in fmr
    shot(officer, fed, "22-finger-results")

    examiner = new_page(browser)
    log_in(examiner, fed, "AT", "eric")
    examiner.goto(officer.url)
    examiner.locator("#candidates-DE + details li.candidate a.button").first.click()
    examiner.wait_for_selector("#finger-heading")
    facts = examiner.text_content("section[aria-labelledby=finger-heading] dl") or ""
    assert "TP/TP" in facts and finger in facts
    images = examiner.locator("section[aria-labelledby=finger-heading] img.finger")
    assert images.count() == 2  # probe and candidate side by side
    for image in images.all():
        image.evaluate("e => e.decode()")
        assert image.evaluate("e => e.complete && e.naturalWidth > 0")
    assert examiner.is_visible("#verify-form")
    shot(examiner, fed, "23-finger-compare")
