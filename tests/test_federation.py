"""The federation as separate processes over real mutual TLS on 127.0.0.1: a router
and three nodes; a face search end to end, refusals, and exactly-once delivery of
core-data messages across kill -9."""

from __future__ import annotations

import base64
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from prum.categories.face.bulk import PhotoResult
from prum.categories.face.store import NewRecord
from prum.categories.interface import SubjectCategory
from prum.demo.processes import Federation, Layout, lay_out
from prum.federation.messages import Category
from prum.node.core import Node
from prum.node.schema import core_data
from prum.node.users import Role, add_user

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

PARTIES = ["AT", "DE", "HU"]
USERS = {"olga": Role.OFFICER, "eric": Role.EXAMINER, "anna": Role.APPROVER, "otto": Role.AUDITOR}
FACTS = "Robbery of a petrol station in Linz on 12 October 2026; CCTV still of the robber."


def password(party: str) -> str:
    return f"test-{party.lower()}-password"


@pytest.fixture(scope="module")
def probe_and_layout(
    tmp_path_factory: pytest.TempPathFactory, embedded: list[PhotoResult]
) -> tuple[PhotoResult, Layout]:
    """DE holds every sample photo but the probe; AT and HU hold nothing."""
    layout = lay_out(tmp_path_factory.mktemp("federation"), PARTIES, outbox_retry_seconds=0.2)
    counts: dict[str | None, int] = {}
    for r in embedded:
        counts[r.item.identity] = counts.get(r.item.identity, 0) + 1
    probe = next(r for r in embedded if counts[r.item.identity] >= 2)
    for party in PARTIES:
        node = Node(layout.config(party))
        for name, role in USERS.items():
            add_user(node.engine, name, password(party), {role})
        if party == "DE":
            gallery = node.matcher(Category.FACE).gallery  # type: ignore[attr-defined]
            stored = gallery.add_records(
                [
                    NewRecord(
                        subject_category=SubjectCategory.CONVICTED,
                        provenance="DE national collection",
                        model_id=r.model_id,
                        template=r.vector,
                        person_key=r.item.identity,
                        source_key=r.item.source_key,
                        image=r.image,
                    )
                    for r in embedded
                    if r is not probe
                ]
            )
            with node.engine.begin() as conn:
                for _, reference in stored:
                    conn.execute(
                        core_data.insert().values(
                            reference=reference,
                            data={"surnames": [f"Person {reference[-4:]}"], "gender": "U"},
                        )
                    )
        node.close()
    return probe, layout


@pytest.fixture(scope="module")
def federation(probe_and_layout: tuple[PhotoResult, Layout]) -> Iterator[Federation]:
    with Federation(probe_and_layout[1]) as running:
        running.start_all()
        yield running


def api(layout: Layout, party: str, user: str) -> httpx.Client:
    return httpx.Client(
        base_url=layout.parties[party].api_url, auth=(user, password(party)), timeout=60
    )


def search(layout: Layout, image: bytes, **fields: Any) -> httpx.Response:
    body = {
        "category": "face",
        "purpose": "investigation",
        "offence": "1500 00",
        "max_penalty_months": 60,
        "case_reference": "AT-2026-77",
        "image": base64.b64encode(image).decode(),
    }
    body.update(fields)
    with api(layout, "AT", "olga") as officer:
        return officer.post("/api/searches", json=body)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def confirmed_request(layout: Layout, probe: PhotoResult) -> tuple[int, dict[str, Any]]:
    """Search, confirm DE's first candidate; returns the search id and that candidate."""
    response = search(layout, probe.image or b"")
    assert response.status_code == 200, response.text
    result = response.json()
    de = next(r for r in result["replies"] if r["party"] == "DE")
    top = de["candidates"][0]
    with api(layout, "AT", "eric") as examiner:
        verified = examiner.post(
            f"/api/searches/{result['id']}/verifications",
            json={
                "party": "DE",
                "reference": top["reference"],
                "decision": "confirmed",
                "justification": "Same face shape and ears; high score, low false-match rate.",
            },
        )
    assert verified.status_code == 200, verified.text
    return result["id"], top


def request_core(layout: Layout, search_id: int, reference: str) -> None:
    with api(layout, "AT", "olga") as officer:
        response = officer.post(
            "/api/core-data-requests",
            json={"search_id": search_id, "party": "DE", "reference": reference, "facts": FACTS},
        )
    assert response.status_code == 200, response.text


def inbox(layout: Layout) -> list[dict[str, Any]]:
    with api(layout, "DE", "anna") as approver:
        response = approver.get("/api/inbox")
    assert response.status_code == 200, response.text
    return list(response.json())


def test_face_search_end_to_end_to_released_core_data(
    federation: Federation, probe_and_layout: tuple[PhotoResult, Layout]
) -> None:
    probe, layout = probe_and_layout
    response = search(layout, probe.image or b"")
    assert response.status_code == 200, response.text
    result = response.json()
    statuses = {r["party"]: r["status"] for r in result["replies"]}
    assert statuses == {"DE": "answered", "HU": "no_hit"}
    de = next(r for r in result["replies"] if r["party"] == "DE")
    top = de["candidates"][0]
    assert top["rank"] == 1 and top["image"] and top["false_match_words"]
    assert len(de["candidates"]) <= 10

    search_id, top = confirmed_request(layout, probe)
    request_core(layout, search_id, top["reference"])
    [incoming] = wait_for(
        "the request at DE",
        lambda: [
            r
            for r in inbox(layout)
            if r["reference"] == top["reference"] and r["status"] == "pending"
        ],
    )
    assert 47 * 3600 < incoming["seconds_left"] <= 48 * 3600
    with api(layout, "DE", "anna") as approver:
        decided = approver.post(f"/api/inbox/{incoming['id']}/decision", json={"action": "release"})
    assert decided.status_code == 200, decided.text

    def released() -> list[dict[str, Any]]:
        with api(layout, "AT", "olga") as officer:
            rows = officer.get("/api/core-data-requests").json()
        return [r for r in rows if r["status"] == "released" and r["search_id"] == search_id]

    [done] = wait_for("the core data at AT", released)
    assert done["reply"]["core_data"]["surnames"] == [f"Person {top['reference'][-4:]}"]

    for party in ("AT", "DE"):
        with api(layout, party, "otto") as auditor:
            report = auditor.get("/api/audit/verify").json()
        assert report["ok"], report


def test_officer_cannot_verify_and_examiner_cannot_search(
    federation: Federation, probe_and_layout: tuple[PhotoResult, Layout]
) -> None:
    probe, layout = probe_and_layout
    with api(layout, "AT", "eric") as examiner:
        refused = examiner.post(
            "/api/searches",
            json={
                "offence": "1500 00",
                "max_penalty_months": 60,
                "case_reference": "X",
                "image": base64.b64encode(probe.image or b"").decode(),
            },
        )
    assert refused.status_code == 403
    assert refused.json()["code"] == "role_required"
    with httpx.Client(base_url=layout.parties["AT"].api_url) as anonymous:
        assert anonymous.get("/api/searches").status_code == 403


def test_penalty_below_one_year_is_refused_by_every_node(
    federation: Federation, probe_and_layout: tuple[PhotoResult, Layout]
) -> None:
    probe, layout = probe_and_layout
    response = search(layout, probe.image or b"", max_penalty_months=6)
    assert response.status_code == 200, response.text
    replies = response.json()["replies"]
    assert {r["status"] for r in replies} == {"refused"}
    assert {r["error"]["code"] for r in replies} == {"penalty_below_threshold"}


def test_unusable_probe_is_refused_before_it_travels(
    federation: Federation, probe_and_layout: tuple[PhotoResult, Layout]
) -> None:
    _, layout = probe_and_layout
    response = search(layout, b"\xff\xd8\xff\xe0 truncated jpeg")
    assert response.status_code == 400
    assert response.json()["code"] == "unreadable_image"


def count_requests_at_de(layout: Layout, reference: str) -> int:
    db = layout.parties["DE"].data_dir / "gallery.sqlite"
    with sqlite3.connect(db) as conn:
        return int(
            conn.execute(
                "select count(*) from node_core_requests_in where reference = ?", (reference,)
            ).fetchone()[0]
        )


@pytest.mark.parametrize("victim", ["DE", "ROUTER"])
def test_request_delivered_exactly_once_after_kill_9(
    federation: Federation, probe_and_layout: tuple[PhotoResult, Layout], victim: str
) -> None:
    probe, layout = probe_and_layout
    search_id, top = confirmed_request(layout, probe)
    before = count_requests_at_de(layout, top["reference"])
    federation.kill(victim)  # kill -9: no goodbye
    request_core(layout, search_id, top["reference"])
    time.sleep(1.5)  # the AT outbox tries and fails meanwhile
    assert count_requests_at_de(layout, top["reference"]) == before
    federation.restart(victim)
    wait_for("delivery", lambda: count_requests_at_de(layout, top["reference"]) == before + 1)
    time.sleep(1.0)
    assert count_requests_at_de(layout, top["reference"]) == before + 1


def test_redelivery_after_a_sender_crash_changes_nothing(
    federation: Federation, probe_and_layout: tuple[PhotoResult, Layout]
) -> None:
    """The sender dies after the destination acknowledged but before it recorded the
    acknowledgement: on restart it delivers again, and the destination ignores it."""
    probe, layout = probe_and_layout
    search_id, top = confirmed_request(layout, probe)
    before = count_requests_at_de(layout, top["reference"])
    request_core(layout, search_id, top["reference"])
    wait_for("delivery", lambda: count_requests_at_de(layout, top["reference"]) == before + 1)
    federation.kill("AT")
    db = layout.parties["AT"].data_dir / "gallery.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("update node_outbox set delivered_at = null, attempts = 0")
    federation.restart("AT")

    def redelivered() -> bool:
        with sqlite3.connect(db) as conn:
            left = conn.execute("select count(*) from node_outbox where delivered_at is null")
            return int(left.fetchone()[0]) == 0

    wait_for("the redelivery", redelivered)
    assert count_requests_at_de(layout, top["reference"]) == before + 1


def test_audit_tampering_is_detected_by_the_cli(
    federation: Federation, probe_and_layout: tuple[PhotoResult, Layout]
) -> None:
    probe, layout = probe_and_layout
    assert search(layout, probe.image or b"").status_code == 200  # HU logs its answer
    db = layout.parties["HU"].data_dir / "gallery.sqlite"
    url = f"sqlite:///{db}"
    cli = [sys.executable, "-m", "prum", "audit", "verify", "--database-url", url, "--party", "HU"]
    cli += ["--pki-dir", str(layout.pki_dir)]
    clean = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "signatures checked" in clean.stdout
    with sqlite3.connect(db) as conn:
        conn.execute(
            "update audit_entries set body = replace(body, 'search_received', 'search_sent')"
            " where seq = 1"
        )
    tampered = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert tampered.returncode == 1
    assert "entry 1" in tampered.stdout + tampered.stderr
