"""Decisions that hold, in a real browser (Debian's chromium driven by Playwright):
verdict changes after a core-data request need a second examiner and withdraw the
request, four-eyes verification, the approver's review with the exact outgoing core
data, refusals in words, holds told to the requester, notifications and the queue.

Two nodes (AT requests, DE holds) serve their national apps over HTTP in this process;
the router's part, carrying each outbox message to the other node's inbox, is played
by :func:`relay` (the router's forwarding of these kinds is tested in
tests/test_router.py). Set PRUM_SCREENSHOTS=docs/screenshots to refresh the
documentation's screenshots (30-...).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import insert, select, update

import webfixtures
from prum.federation.messages import (
    Category,
    Decision,
    RecordWithdrawn,
    Withdrawal,
    WithdrawalReason,
)
from prum.federation.security import pki
from prum.node import followup, notifications
from prum.node.core import Node
from prum.node.schema import core_data, outbox, requests_in, requests_out, searches
from prum.node.users import Role, User
from webfixtures import national_node, serving

pytestmark = [pytest.mark.slow]
ROUTER = pki.PeerIdentity("ROUTER", "router", 1, dt.datetime(2100, 1, 1, tzinfo=dt.UTC))
AT_USERS = {
    "olga": {Role.OFFICER},
    "eric": {Role.EXAMINER},
    "emma": {Role.EXAMINER},
    "paul": {Role.OFFICER, Role.EXAMINER},
}
DE_USERS = {"anna": {Role.APPROVER}}
CORE = {
    "surnames": ["Kowalczyk"],
    "first_names": ["Marta", "Ewa"],
    "date_of_birth": "1988-04-02",
    "nationalities": ["PL"],
    "offence": "burglary",
}
FACTS = "Burglary of a pharmacy in Linz on 3 November 2026; the trace is from the safe."


class Party:
    def __init__(self, node: Node, url: str):
        self.node, self.url = node, url


@pytest.fixture(scope="module")
def parties(
    tmp_path_factory: pytest.TempPathFactory, national_pki: Path
) -> Iterator[dict[str, Party]]:
    root = tmp_path_factory.mktemp("decisions")
    at = national_node(root / "at", national_pki, "AT", Category.DNA, AT_USERS)
    de = national_node(root / "de", national_pki, "DE", Category.DNA, DE_USERS)
    try:
        with serving(at) as at_url, serving(de) as de_url:
            yield {"AT": Party(at, at_url), "DE": Party(de, de_url)}
    finally:
        at.close()
        de.close()


def relay(parties: dict[str, Party]) -> int:
    """Play the router: carry every undelivered outbox message to its destination's
    inbox (exactly what /v1/deliver forwards), once."""
    carried = 0
    for party in parties.values():
        with party.node.engine.connect() as conn:
            due = conn.execute(
                select(outbox).where(outbox.c.delivered_at.is_(None)).order_by(outbox.c.id)
            ).all()
        for row in due:
            raw = json.dumps(row.envelope).encode()
            followup.receive(parties[row.destination].node, raw, ROUTER)
            with party.node.engine.begin() as conn:
                conn.execute(
                    update(outbox)
                    .where(outbox.c.id == row.id)
                    .values(delivered_at=dt.datetime.now(dt.UTC))
                )
            carried += 1
    return carried


_counter = iter(range(1, 10_000))


def dna_search(at: Node, user: str = "olga") -> tuple[int, str]:
    """A DNA search of AT answered by DE with one hit; DE holds its core data."""
    n = next(_counter)
    reference = f"DE-D-{n:04d}"
    with at.engine.begin() as conn:
        pk = conn.execute(
            insert(searches).values(
                message_id=f"5d7a2b36-1c1e-4c57-9a51-{n:012d}",
                request_number=f"AT-{n}",
                user=user,
                category="dna",
                purpose="investigation",
                offence="0500 00",
                max_penalty_months=120,
                case_reference=f"AT-LKA-2026-{n:04d}",
                targets=["DE"],
                status="answered",
                reply={
                    "replies": [
                        {
                            "party": "DE",
                            "status": "answered",
                            "candidates": [
                                {
                                    "rank": 1,
                                    "reference": reference,
                                    "score": 1.0,
                                    "distance": 0.0,
                                    "false_match_rate": None,
                                    "false_match_words": "",
                                    "provenance": "DE DNA database",
                                    "synthetic": False,
                                    "quality": None,
                                    "image": None,
                                    "details": None,
                                }
                            ],
                        }
                    ]
                },
                created_at=dt.datetime.now(dt.UTC),
                answered_at=dt.datetime.now(dt.UTC),
            )
        ).inserted_primary_key
    assert pk is not None
    return int(pk[0]), reference


def hold_core_data(de: Node, reference: str) -> None:
    with de.engine.begin() as conn:
        conn.execute(insert(core_data).values(reference=reference, data=CORE))


def requested(parties: dict[str, Party], examiner: str = "eric") -> tuple[int, str]:
    """A confirmed DNA hit whose core data AT requested and DE received."""
    at, de = parties["AT"].node, parties["DE"].node
    search_id, reference = dna_search(at)
    hold_core_data(de, reference)
    with at.engine.connect() as conn:
        search = conn.execute(select(searches).where(searches.c.id == search_id)).one()
    de.log(  # what DE's node logs when it answers the search (prum.node.exchange)
        kind="search_received",
        requesting_party="AT",
        requested_party="DE",
        category="dna",
        purpose="investigation",
        offence=search.offence,
        max_penalty_months=search.max_penalty_months,
        case_reference=search.case_reference,
        message_id=search.message_id,
        request_number=search.request_number,
        reference=[reference],
        outcome="hit",
        candidate_count=1,
    )
    user = User(examiner, frozenset({Role.EXAMINER}))
    followup.verify_candidate(
        at,
        user,
        search_id,
        party="DE",
        reference=reference,
        decision=Decision.CONFIRMED,
        justification="All 16 loci agree, amelogenin included.",
    )
    followup.request_core_data(at, user, search_id, party="DE", reference=reference, facts=FACTS)
    relay(parties)
    return search_id, reference


def incoming_id(de: Node, reference: str) -> int:
    with de.engine.connect() as conn:
        return int(
            conn.execute(
                select(requests_in.c.id).where(requests_in.c.reference == reference)
            ).scalar_one()
        )


def counts(node: Node) -> dict[str, int]:
    """AT's statistics of DNA searches (yearly totals)."""
    return dict(node.statistics.summary()["totals"].get("AT", {}).get("dna", {}))


LOGINS = webfixtures.Logins()


def log_in(browser: Browser, party: Party, user: str) -> Page:
    """A fresh browser context of ``user`` on the workbench's home page (each user logs
    in once in this module: the login itself is tested in test_web_sessions)."""
    return LOGINS.page(browser, party.url, user)


def text(page: Page, selector: str = "main") -> str:
    return page.text_content(selector) or ""


def test_approver_preview_shows_exactly_the_outgoing_core_data_and_needs_confirmation(
    parties: dict[str, Party], browser: Browser, shots: Path
) -> None:
    at, de = parties["AT"], parties["DE"]
    _, reference = requested(parties)
    request_id = incoming_id(de.node, reference)
    anna = log_in(browser, de, "anna")
    anna.goto(de.url + "/workbench/inbox")
    anna.click(f"#review-{request_id}")
    assert FACTS in text(anna, "#facts")  # the requester's justification
    assert "confirmed by the examiner eric" in text(anna, "#match-evidence")
    answered = text(anna, "#answered-search")
    assert "1 candidate(s) sent, this reference as number 1" in answered
    shown = dict(
        zip(
            anna.locator("#preview dt").all_text_contents(),
            anna.locator("#preview dd").all_text_contents(),
            strict=True,
        )
    )
    assert shown == {
        "surnames": "Kowalczyk",
        "first names": "Marta, Ewa",
        "date of birth": "1988-04-02",
        "nationalities": "PL",
        "offence": "burglary",
    }
    shot = shots / "30-approver-review.png"
    anna.screenshot(path=str(shot), full_page=True)
    # Without the confirmation box nothing is sent (the browser stops the form) ...
    anna.click("#release")
    assert anna.locator("h1 .status.pending").count() == 1
    # ... and the server refuses a release that skipped the review.
    token = anna.get_attribute("meta[name=csrf-token]", "content")
    blind = anna.request.post(
        f"{de.url}/workbench/inbox/{request_id}/decision",
        form={"action": "release", "csrf_token": token or ""},
    )
    assert blind.status == 400 and "confirmation" in blind.text()
    anna.check("#confirm-release")
    anna.click("#release")
    assert anna.locator("#decided .status.released").count() == 1
    relay(parties)
    with at.node.engine.connect() as conn:
        reply = conn.execute(
            select(requests_out.c.reply).where(requests_out.c.reference == reference)
        ).scalar_one()
    sent = {k: v for k, v in reply["core_data"].items() if v not in (None, [])}
    assert sent == CORE  # what arrived is what the preview showed, field for field


def test_refusal_needs_free_text_and_the_requester_sees_a_hold_with_its_reason(
    parties: dict[str, Party], browser: Browser, shots: Path
) -> None:
    at, de = parties["AT"], parties["DE"]
    _, reference = requested(parties)
    request_id = incoming_id(de.node, reference)
    anna = log_in(browser, de, "anna")
    anna.goto(f"{de.url}/workbench/inbox/{request_id}")
    options = anna.locator("#reason option").all_text_contents()
    assert not any("pending" in o for o in options)  # a pending authorisation is a hold
    anna.select_option("#reason", "disproportionate")
    anna.click("#refuse")  # no explanation: the browser keeps the form
    assert anna.locator("h1 .status.pending").count() == 1
    token = anna.get_attribute("meta[name=csrf-token]", "content") or ""
    bare = anna.request.post(
        f"{de.url}/workbench/inbox/{request_id}/decision",
        form={"action": "refuse", "reason": "disproportionate", "csrf_token": token},
    )
    assert bare.status == 400 and "explanation" in bare.text()
    anna.select_option("#hold_reason", "judicial_authorisation")
    anna.fill("#hold-note", "The investigating judge in Hamburg decides on Monday.")
    anna.click("#hold")
    assert anna.locator("h1 .status.on_hold").count() == 1
    unread = notifications.unread(at.node.engine, "eric")
    relay(parties)

    eric = log_in(browser, at, "eric")
    assert text(eric, "#unread") == f"{unread + 1} unread"  # the badge counts the hold
    eric.goto(at.url + "/workbench/requests")
    held = text(eric, "main")
    assert "On hold at DE" in held and "judicial authorisation is needed" in held
    assert "The investigating judge in Hamburg decides on Monday." in held
    eric.screenshot(path=str(shots / "31-requester-sees-hold.png"), full_page=True)
    eric.goto(at.url + "/workbench/notifications")
    assert f"DE holds your request for {reference}" in text(eric, "#notifications")
    eric.screenshot(path=str(shots / "32-notifications.png"), full_page=True)

    anna.click("#resume")
    anna.select_option("#reason", "disproportionate")
    anna.fill("#explanation", "A first theft of this value does not justify releasing names.")
    anna.click("#refuse")
    assert anna.locator("#decided .status.refused").count() == 1
    relay(parties)
    eric.goto(at.url + "/workbench/requests")
    assert "A first theft of this value does not justify releasing names." in text(eric)


def test_verdict_change_after_a_request_needs_a_second_examiner_and_erases_the_core_data(
    parties: dict[str, Party], browser: Browser, shots: Path
) -> None:
    at, de = parties["AT"], parties["DE"]
    search_id, reference = requested(parties)
    followup.decide(
        de.node,
        User("anna", frozenset({Role.APPROVER})),
        incoming_id(de.node, reference),
        action="release",
    )
    relay(parties)
    before = counts(at.node)
    compare = f"{at.url}/workbench/searches/{search_id}/candidates/DE/{reference}"
    eric = log_in(browser, at, "eric")
    eric.goto(compare)
    assert "a second examiner countersigns" in text(eric, "#change-rule")
    eric.check("input[name=decision][value=rejected]")
    eric.fill("#justification", "Locus D18S51 was misread: 14/17 on the trace, not 14/16.")
    eric.click("#verify-form button[type=submit]")
    assert "eric proposes to change the verdict" in text(eric, "#proposal")
    assert eric.locator("#countersign").count() == 0  # not by the one who proposed it
    with at.node.engine.connect() as conn:
        asked = conn.execute(
            select(requests_out.c.id).where(requests_out.c.reference == reference)
        ).scalar_one()
    eric.goto(at.url + "/workbench/requests")
    assert "Kowalczyk" in text(eric, f"#request-{asked}")  # nothing changed yet

    emma = log_in(browser, at, "emma")
    emma.goto(at.url + "/workbench/queue")
    assert reference in text(emma, "#queue-countersign")
    emma.click(f"#queue-countersign a:has-text('{reference}')")
    emma.screenshot(path=str(shots / "33-countersign-change.png"), full_page=True)
    emma.click("#countersign")
    assert "countersigned by emma" in text(emma, ".history")
    emma.goto(at.url + "/workbench/requests")
    withdrawn = text(emma, f"#request-{asked}")
    assert "Withdrawn" in withdrawn and "were erased here" in withdrawn
    assert "Kowalczyk" not in withdrawn
    with at.node.engine.connect() as conn:
        row = conn.execute(select(requests_out).where(requests_out.c.reference == reference)).one()
        [notice] = conn.execute(select(outbox).where(outbox.c.kind == "core_data_cancelled")).all()
    assert row.status == "cancelled" and "core_data" not in row.reply
    assert "Kowalczyk" not in json.dumps(row.reply)
    assert notice.destination == "DE" and notice.envelope["body"]["erased"] is True
    relay(parties)
    with de.node.engine.connect() as conn:
        held = conn.execute(
            select(requests_in.c.cancelled).where(requests_in.c.reference == reference)
        ).scalar_one()
    assert held["reason"] == "verdict_revised"
    [changed] = at.node.audit.entries(kind="verdict_changed")
    assert changed.event.user == "emma" and changed.event.previous_outcome == "confirmed"
    after = counts(at.node)
    assert after["confirmed_matches"] == before["confirmed_matches"] - 1
    assert after["rejected_candidates"] == before.get("rejected_candidates", 0) + 1
    assert after["verdicts_changed"] == before.get("verdicts_changed", 0) + 1


def test_four_eyes_blocks_a_lone_examiner_until_a_second_confirms_blind(
    parties: dict[str, Party], browser: Browser, shots: Path
) -> None:
    at = parties["AT"]
    at.node.config.four_eyes = True
    try:
        search_id, reference = dna_search(at.node, user="paul")
        compare = f"{at.url}/workbench/searches/{search_id}/candidates/DE/{reference}"
        paul = log_in(browser, at, "paul")  # searched, and examines
        paul.goto(compare)
        paul.check("input[name=decision][value=confirmed]")
        paul.fill("#justification", "Every locus agrees with the trace.")
        paul.click("#verify-form button[type=submit]")
        assert "a second examiner must confirm" in text(paul, "#awaiting-second")
        assert paul.locator("#core-data-form").count() == 0
        token = paul.get_attribute("meta[name=csrf-token]", "content") or ""
        alone = paul.request.post(
            f"{at.url}/workbench/searches/{search_id}/core-data",
            form={"party": "DE", "reference": reference, "facts": FACTS, "csrf_token": token},
        )
        assert alone.status == 403 and "second examiner" in alone.text()

        emma = log_in(browser, at, "emma")
        emma.goto(compare)
        assert "stays hidden until you record yours" in text(emma, "#blind")
        assert emma.locator(".history").count() == 0  # the first verdict is not shown
        emma.screenshot(path=str(shots / "34-blind-second-verification.png"), full_page=True)
        emma.check("input[name=decision][value=confirmed]")
        emma.fill("#justification", "Compared independently: all loci agree.")
        emma.click("#verify-form button[type=submit]")
        assert "paul" in text(emma, ".history") and "emma" in text(emma, ".history")
        assert emma.locator("#core-data-form").count() == 1
    finally:
        at.node.config.four_eyes = False


def test_a_withdrawn_reference_is_notified_to_the_searcher_and_the_requester(
    parties: dict[str, Party], browser: Browser
) -> None:
    at, de = parties["AT"], parties["DE"]
    search_id, reference = requested(parties)  # searched by olga, requested by eric
    notice = RecordWithdrawn(
        holder_party="DE",
        requesting_party="AT",
        withdrawn=[
            Withdrawal(
                reference=reference, category=Category.DNA, reason=WithdrawalReason.COURT_ORDER
            )
        ],
        withdrawn_at=dt.datetime.now(dt.UTC),
    )
    envelope = de.node.signer.sign(notice.model_dump(mode="json")).to_json()
    followup.receive(at.node, envelope, ROUTER)
    olga = log_in(browser, at, "olga")
    olga.click("#notifications-link")
    assert f"DE withdrew 1 candidate(s) of your search #{search_id}" in text(olga)
    eric = log_in(browser, at, "eric")
    eric.click("#notifications-link")
    assert f"DE withdrew {reference}" in text(eric)
    assert eric.locator("#unread").count() == 0  # opening the list read them
