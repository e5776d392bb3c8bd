"""The workbench without a browser: sessions, CSRF, roles, lockout and the pages that
call step-2 functions (FastAPI's TestClient against a real node database)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import insert, select

from prum.categories.records.keys import create_key_file
from prum.federation.messages import (
    Candidate,
    Category,
    CoreDataRequest,
    CountryReply,
    DnaHit,
    FingerHit,
    RecordsHit,
    ReplyStatus,
    VehicleData,
)
from prum.federation.security import pki
from prum.federation.security.signing import Signer
from prum.node import followup
from prum.node.api import create_national_app
from prum.node.config import CategoryPolicy, NodeConfig
from prum.node.core import Node
from prum.node.schema import core_data, outbox, requests_in, searches
from prum.node.users import Role, add_user
from prum.node.web import sessions

ROUTER = pki.PeerIdentity("ROUTER", "router", 1, dt.datetime(2100, 1, 1, tzinfo=dt.UTC))
PASSWORD = "correct horse battery"
USERS = {
    "olga": {Role.OFFICER},
    "eric": {Role.EXAMINER},
    "anna": {Role.APPROVER},
    "otto": {Role.AUDITOR},
    "ada": {Role.ADMIN},
    "vera": {Role.EXAMINER, Role.APPROVER},
}


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pki")
    pki.init_ca(path)
    for party in ("ROUTER", "AT", "DE"):
        pki.issue(path, party, role="router" if party == "ROUTER" else "node")
    create_key_file(path / "records.key", "federation-1")  # police records (pseudonyms)
    return path


def node_config(data_dir: Path, pki_dir: Path) -> NodeConfig:
    return NodeConfig(
        party="DE",
        data_dir=data_dir,
        pki_dir=pki_dir,
        router_url="https://localhost:1",
        categories={Category.FACE: CategoryPolicy()},
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, pki_dir: Path) -> Path:
    """A migrated node database with the users (argon2 is slow on purpose: hash once)."""
    data_dir = tmp_path_factory.mktemp("template") / "de"
    node = Node(node_config(data_dir, pki_dir))
    for name, roles in USERS.items():
        add_user(node.engine, name, PASSWORD, roles)
    node.close()
    return data_dir


@pytest.fixture
def node(tmp_path: Path, pki_dir: Path, template: Path) -> Iterator[Node]:
    shutil.copytree(template, tmp_path / "de")
    node = Node(node_config(tmp_path / "de", pki_dir))
    yield node
    node.close()


@pytest.fixture
def client(node: Node) -> TestClient:
    # No `with`: the lifespan (outbox loop) is not needed for these pages.
    return TestClient(create_national_app(node), follow_redirects=False)


def token_in(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def login(client: TestClient, name: str, password: str = PASSWORD) -> Any:
    page = client.get("/workbench/login")
    return client.post(
        "/workbench/login",
        data={"username": name, "password": password, "csrf_token": token_in(page.text)},
    )


def test_login_sets_a_strict_httponly_cookie_and_the_server_keeps_only_its_hash(
    client: TestClient, node: Node
) -> None:
    response = login(client, "olga")
    assert response.status_code == 303 and response.headers["location"] == "/workbench/"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith(sessions.COOKIE)
    )
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/workbench" in cookie
    session_id = client.cookies[sessions.COOKIE]
    with node.engine.connect() as conn:
        [row] = conn.execute(select(sessions.web_sessions)).all()
    assert row.id_hash == hashlib.sha256(session_id.encode()).hexdigest()
    assert session_id not in row
    home = client.get("/workbench/")
    assert home.status_code == 200 and "olga" in home.text
    [entry] = node.audit.entries(kind="login")
    assert entry.event.user == "olga" and entry.event.outcome == "ok"


def test_pages_need_a_session(client: TestClient) -> None:
    for path in ("/workbench/", "/workbench/search", "/workbench/inbox", "/workbench/audit"):
        response = client.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/workbench/login")  # and back (?next=)
    assert client.get("/").headers["location"] == "/workbench/"


def test_login_form_without_its_token_is_refused(client: TestClient, node: Node) -> None:
    client.get("/workbench/login")
    response = client.post(
        "/workbench/login", data={"username": "olga", "password": PASSWORD, "csrf_token": "x"}
    )
    assert response.status_code == 403
    assert sessions.COOKIE not in client.cookies


def test_post_without_the_csrf_token_is_refused_and_changes_nothing(
    client: TestClient, node: Node
) -> None:
    login(client, "ada")
    form = {"name": "mallory", "password": "a long enough password", "roles": "admin"}
    for data in (form, {**form, "csrf_token": "forged"}):
        response = client.post("/workbench/admin/users", data=data)
        assert response.status_code == 403
        assert "CSRF" in response.text
    assert client.get("/workbench/admin").text.count("mallory") == 0
    token = token_in(client.get("/workbench/admin").text)
    added = client.post("/workbench/admin/users", data={**form, "csrf_token": token})
    assert added.status_code == 200 and "user mallory added" in added.text
    assert [e.event.reason_code for e in node.audit.entries(kind="refused")] == ["csrf", "csrf"]


def test_logout_ends_the_session_on_the_server(client: TestClient, node: Node) -> None:
    login(client, "olga")
    stolen = client.cookies[sessions.COOKIE]
    token = token_in(client.get("/workbench/").text)
    assert client.post("/workbench/logout", data={"csrf_token": token}).status_code == 303
    client.cookies.set(sessions.COOKIE, stolen, path="/workbench")
    assert client.get("/workbench/").headers["location"] == "/workbench/login"


def test_idle_and_old_sessions_expire(node: Node) -> None:
    user = next(iter([u for u in [add_user(node.engine, "ida", PASSWORD, {Role.OFFICER})]]))
    start = dt.datetime.now(dt.UTC)
    session_id = sessions.start(node.engine, user, now=start)
    assert sessions.resume(node.engine, session_id, now=start + dt.timedelta(minutes=29))
    later = start + dt.timedelta(minutes=29) + sessions.IDLE
    assert sessions.resume(node.engine, session_id, now=later) is None
    fresh = sessions.start(node.engine, user, now=start)
    for minutes in range(25, 13 * 60, 25):  # active all day: still ends after 12 hours
        alive = sessions.resume(node.engine, fresh, now=start + dt.timedelta(minutes=minutes))
        if alive is None:
            assert minutes >= sessions.ABSOLUTE.total_seconds() / 60
            break
    else:
        pytest.fail("a session outlived its absolute lifetime")


def test_role_violation_shows_a_403_page_and_is_logged(client: TestClient, node: Node) -> None:
    login(client, "olga")
    response = client.get("/workbench/inbox")
    assert response.status_code == 403
    assert "Not allowed" in response.text and "approver" in response.text
    [entry] = node.audit.entries(kind="refused")
    assert entry.event.user == "olga" and entry.event.reason_code == "role_required"


def test_account_locks_after_five_wrong_passwords(client: TestClient, node: Node) -> None:
    for _ in range(5):
        assert login(client, "eric", "wrong password!").status_code == 401
    response = login(client, "eric")  # the right password, too late
    assert response.status_code == 401 and "locked" in response.text
    outcomes = [e.event.reason_code for e in node.audit.entries(kind="login")]
    assert outcomes.count("wrong_credentials") == 5 and outcomes[0] == "locked"


# --- step 2 through the pages ------------------------------------------------------------


def incoming(
    pki_dir: Path, node: Node, *, requester: str = "AT", verified_by: str = "eric"
) -> None:
    request = CoreDataRequest(
        requesting_party=requester,
        holder_party="DE",
        reference="DE-F-0001",
        category=Category.FACE,
        search_message_id="5d7a2b36-1c1e-4c57-9a51-3a1d2b4c5e6f",
        requesting_user="olga",
        verified_by=verified_by,
        facts="Armed robbery of a jewellery shop; <b>CCTV</b> still of the suspect.",
        offence="0800 00",
        max_penalty_months=60,
        case_reference="AT/2026/123",
    )
    envelope = Signer(pki_dir, requester).sign(request.model_dump(mode="json")).to_json()
    followup.receive(node, envelope, ROUTER)
    with node.engine.begin() as conn:
        conn.execute(
            core_data.insert().values(reference="DE-F-0001", data={"surnames": ["Muster"]})
        )


def test_approver_releases_from_the_inbox(client: TestClient, node: Node, pki_dir: Path) -> None:
    incoming(pki_dir, node)
    login(client, "anna")
    page = client.get("/workbench/inbox")
    assert "Crimes against the person" in page.text
    assert "&lt;b&gt;CCTV&lt;/b&gt;" in page.text  # the requester's text, escaped
    assert re.search(r"4[78] h \d\d min left", page.text)
    token = token_in(page.text)
    hold = {"action": "hold", "hold_reason": "judicial_authorisation", "csrf_token": token}
    held = client.post("/workbench/inbox/1/decision", data=hold)
    assert held.status_code == 303
    assert "clock paused" in client.get("/workbench/inbox").text
    client.post("/workbench/inbox/1/decision", data={"action": "resume", "csrf_token": token})
    # A release without the review's confirmation is refused and changes nothing.
    blind = client.post(
        "/workbench/inbox/1/decision", data={"action": "release", "csrf_token": token}
    )
    assert blind.status_code == 400 and "confirmation" in blind.text
    review = client.get("/workbench/inbox/1").text
    assert "Muster" in review and 'id="preview"' in review
    digest = re.search(r'name="previewed" value="([0-9a-f]{64})"', review)
    assert digest is not None
    release = {"action": "release", "previewed": digest.group(1), "confirm": "yes"}
    client.post("/workbench/inbox/1/decision", data={**release, "csrf_token": token})
    with node.engine.connect() as conn:
        assert conn.execute(select(requests_in.c.status)).scalar_one() == "released"
        queued = conn.execute(select(outbox).order_by(outbox.c.id)).all()
    # The requester is told of the hold and of its end, then gets the release.
    assert [q.kind for q in queued] == ["core_data_hold", "core_data_hold", "core_data_reply"]
    assert {q.destination for q in queued} == {"AT"}
    [decided] = node.audit.entries(kind="core_data_decided")
    assert decided.event.user == "anna"


def test_verifier_cannot_release_through_the_inbox(
    client: TestClient, node: Node, pki_dir: Path
) -> None:
    incoming(pki_dir, node, requester="DE", verified_by="vera")
    login(client, "vera")
    token = token_in(client.get("/workbench/inbox").text)
    confirmed = {"previewed": "0" * 64, "confirm": "yes"}
    response = client.post(
        "/workbench/inbox/1/decision",
        data={"action": "release", "csrf_token": token, **confirmed},
    )
    assert response.status_code == 403 and "vera verified this match" in response.text


def test_justification_is_shown_as_text(client: TestClient, node: Node) -> None:
    with node.engine.begin() as conn:
        conn.execute(
            insert(searches).values(
                message_id="5d7a2b36-1c1e-4c57-9a51-3a1d2b4c5e6f",
                request_number="DE-1",
                user="olga",
                category="face",
                purpose="investigation",
                offence="0800 00",
                max_penalty_months=60,
                case_reference="DE/2026/7",
                targets=["all"],
                status="answered",
                reply={
                    "replies": [
                        {
                            "party": "AT",
                            "status": "answered",
                            "candidates": [
                                {
                                    "rank": 1,
                                    "reference": "AT-F-0001",
                                    "score": 0.7,
                                    "distance": 0.4,
                                    "false_match_rate": 1e-4,
                                    "false_match_words": "fewer than 1 in 10,000",
                                    "provenance": "AT custody",
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
            )
        )
    login(client, "eric")
    url = "/workbench/searches/1/candidates/AT/AT-F-0001"
    token = token_in(client.get(url).text)
    script = "<script>alert('x')</script> ears differ"
    response = client.post(
        "/workbench/searches/1/verifications",
        data={
            "party": "AT",
            "reference": "AT-F-0001",
            "decision": "rejected",
            "justification": script,
            "csrf_token": token,
        },
    )
    assert response.status_code == 303
    page = client.get(url).text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; ears differ" in page
    assert script not in page
    cases = client.get("/workbench/cases").text
    assert "DE/2026/7" in cases and "rejected" in cases
    results = client.get("/workbench/searches/1")
    assert results.status_code == 200
    assert "fewer than 1 in 10,000" in results.text and "rejected</span> by eric" in results.text


def test_auditor_filters_the_log_and_verifies_the_chain(client: TestClient, node: Node) -> None:
    login(client, "otto")
    page = client.get("/workbench/audit", params={"kind": "login"})
    assert page.status_code == 200 and "otto" in page.text
    token = token_in(page.text)
    verified = client.post("/workbench/audit/verify", data={"csrf_token": token})
    assert "Intact:" in verified.text
    assert node.audit.entries(kind="log_viewed")


def test_statistics_page_serves_plotly_from_the_wheel(client: TestClient) -> None:
    login(client, "otto")
    page = client.get("/workbench/stats")
    assert page.status_code == 200 and "/workbench/static/plotly.min.js" in page.text
    script = client.get("/workbench/static/plotly.min.js")
    assert script.status_code == 200 and len(script.content) > 1_000_000
    assert client.get("/workbench/static/..%2Fapp.py").status_code == 404


def test_dna_form_validates_the_profile_before_it_travels(client: TestClient, node: Node) -> None:
    login(client, "olga")
    page = client.get("/workbench/search", params={"category": "dna"})
    assert page.status_code == 200 and 'id="profile_text"' in page.text
    form = {
        "category": "dna",
        "purpose": "investigation",
        "offence": "0800 00",
        "max_penalty_months": "60",
        "case_reference": "DE/2026/8",
        "csrf_token": token_in(page.text),
    }
    bad = client.post("/workbench/search", data={**form, "profile_text": "vWA,14,15\n"})
    assert bad.status_code == 400 and 'id="search-error"' in bad.text
    assert "DE/2026/8" in bad.text  # the form keeps what the officer typed
    loci = ["D3S1358", "vWA", "D8S1179", "D21S11", "D18S51", "TH01", "FGA"]
    alleles = ["15,16", "17,18", "13,14", "29,30", "14,17", "6,9.3", "21,22"]
    csv = "".join(f"{locus},{pair}\n" for locus, pair in zip(loci, alleles, strict=True))
    # A valid profile goes to send_search; this node's router does not exist.
    sent = client.post("/workbench/search", data={**form, "profile_text": csv})
    assert sent_away(sent)
    with node.engine.connect() as conn:
        [search] = conn.execute(select(searches)).all()
    assert search.category == "dna" and search.status in {"sent", "failed"}
    assert search.probe["format"] == "dna_profile"


# --- the other categories: forms and what their candidates carry --------------------------

SEARCH_FORM = {
    "purpose": "investigation",
    "offence": "0800 00",
    "max_penalty_months": "60",
    "case_reference": "DE/2026/9",
}


def search_form(client: TestClient, category: str) -> dict[str, str]:
    page = client.get("/workbench/search", params={"category": category})
    assert page.status_code == 200
    return {**SEARCH_FORM, "category": category, "csrf_token": token_in(page.text)}


def stored_searches(node: Node) -> list[Any]:
    with node.engine.connect() as conn:
        return list(conn.execute(select(searches)).all())


def sent_away(response: Any) -> bool:
    """The form was accepted: the search is recorded and goes out in the background
    (this node's router does not exist: tests/test_web_people.py follows one to its
    failure), and the officer lands on its live page."""
    return response.status_code == 303 and bool(
        re.fullmatch(r"/workbench/searches/\d+", response.headers["location"])
    )


def test_category_tabs_offer_every_form(client: TestClient) -> None:
    login(client, "olga")
    page = client.get("/workbench/search").text
    for category in ("face", "dna", "finger", "vehicle", "records"):
        assert f'href="/workbench/search?category={category}"' in page
    assert "tab-disabled" not in page


def test_records_form_validates_then_sends_only_pseudonyms(client: TestClient, node: Node) -> None:
    login(client, "olga")
    form = search_form(client, "records")
    page = client.get("/workbench/search", params={"category": "records"}).text
    assert "Only pseudonyms leave this node" in page
    person = {"surnames": "Dimitrios", "first_names": "Papadopulos", "gender": "M"}
    for bad, reason in (
        ({**person, "date_of_birth": "1983-13"}, "month of birth 13 is impossible"),
        ({**person, "date_of_birth": "17.04.1983"}, "is not YYYY, YYYY-MM or YYYY-MM-DD"),
        ({**person, "surnames": " "}, "needs at least one surname"),
        ({**person, "nationalities": "Greece"}, "is not an ISO 3166 country code"),
    ):
        refused = client.post("/workbench/search", data={**form, **bad})
        assert refused.status_code == 400 and 'id="search-error"' in refused.text
        assert reason in refused.text and "Invalid person data." in refused.text
        assert 'value="Papadopulos"' in refused.text  # kept for the officer to correct
    assert stored_searches(node) == []  # nothing was sent
    sent = client.post(
        "/workbench/search",
        data={**form, **person, "date_of_birth": "1983-04", "aliases": "Papadopoulos, Dimitris"},
    )
    assert sent_away(sent)
    [search] = stored_searches(node)
    assert search.category == "records" and search.probe["format"] == "records_query"
    kept = json.dumps(search.probe).lower()
    assert "papadop" not in kept and "dimitri" not in kept and "1983" not in kept
    assert search.probe["records"]["blocking_keys"] and search.probe["records"]["birth_month"]


def test_vehicle_form_checks_the_vin_and_sends_a_plate_to_one_country(
    client: TestClient, node: Node
) -> None:
    login(client, "olga")
    form = search_form(client, "vehicle")
    for bad, reason in (
        ({"way": "vin", "vin": "WVWZZZ1JZ3W38"}, "has 13 characters; it needs 17"),
        ({"way": "vin", "vin": "WVWZZZ1JZ3W386752X"}, "has 18 characters; it needs 17"),
        ({"way": "vin", "vin": "WVWZZZ1JZ3WO86752"}, "did you mean &#39;0&#39;"),
        ({"way": "plate", "plate": "W-12345X"}, "choose the registration country"),
        ({"way": "plate", "plate": "W 1234 中", "registration_country": "AT"}, "not a letter"),
        ({"way": "holder", "holder_first_names": "Anna"}, "needs the holder&#39;s surname"),
        (
            {"way": "plate", "plate": "W1", "registration_country": "AT", "at": "3.11.2026"},
            "not a date",
        ),
    ):
        refused = client.post("/workbench/search", data={**form, **bad})
        assert refused.status_code == 400, bad
        assert 'id="search-error"' in refused.text and reason in refused.text, bad
    assert stored_searches(node) == []
    legacy = {"way": "vin", "vin": "WVWZZZ1JZ3W38", "vin_legacy": "1"}
    assert sent_away(client.post("/workbench/search", data={**form, **legacy}))
    plate = {"way": "plate", "plate": "W-12345X", "registration_country": "at", "at": "2026-11-03"}
    sent = client.post("/workbench/search", data={**form, **plate, "targets": ["NL", "HU"]})
    assert sent_away(sent)
    first, second = stored_searches(node)
    assert first.probe["vehicle"]["vin"] == "WVWZZZ1JZ3W38"
    assert second.probe["format"] == "vehicle_query"
    assert second.probe["vehicle"] == {"plate": "W-12345X", "at": "2026-11-03"}
    assert second.targets == ["AT"]  # a plate goes to its registration country only


def test_finger_form_reads_the_file_before_it_travels(
    client: TestClient, node: Node, tmp_path: Path
) -> None:
    login(client, "olga")
    form = search_form(client, "finger")
    page = client.get("/workbench/search", params={"category": "finger"}).text
    assert all(t in page for t in ("TP/TP", "TP/UL", "LT/TP", "LT/UL"))
    cases = (
        ({"search_type": "TP/TP"}, None, "choose an ANSI/NIST-ITL transaction"),
        ({"search_type": "XX/YY"}, ("print.png", b"x"), "choose the search type"),
        ({"search_type": "TP/TP"}, ("print.png", b"not an image"), "Unreadable image."),
        (
            {"search_type": "LT/TP"},
            ("case.an2", b"1.001:garbage"),
            "Unreadable ANSI/NIST-ITL record.",
        ),
    )
    for fields, upload, reason in cases:
        files = {"finger_file": upload} if upload else None
        refused = client.post("/workbench/search", data={**form, **fields}, files=files)
        assert refused.status_code == 400 and reason in refused.text, reason
    assert stored_searches(node) == []
    rng = np.random.default_rng(3)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (400, 400), dtype=np.uint8)).save(buffer, "PNG")
    sent = client.post(
        "/workbench/search",
        data={**form, "search_type": "TP/UL"},
        files={"finger_file": ("print.png", buffer.getvalue())},
    )
    assert sent_away(sent)
    [search] = stored_searches(node)
    assert search.category == "finger" and search.probe["format"] == "image"
    probe = client.get(f"/workbench/searches/{search.id}/probe")
    assert probe.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(probe.content)).size == (400, 400)


def test_finger_form_sends_a_transaction_and_shows_its_first_image(
    client: TestClient, node: Node
) -> None:
    from prum.categories.finger.nist import write_transaction
    from prum.categories.finger.types import FingerImage, Transaction

    pixels = np.random.default_rng(4).integers(0, 255, (320, 280), dtype=np.uint8)
    transaction = Transaction(
        tot="CAR",
        originating_agency="DE",
        destination_agency="AT",
        control_number="DE-2026-1",
        date=dt.date(2026, 11, 3),
        images=[FingerImage(position=2, impression="rolled", ppi=500, pixels=pixels)],
    )
    login(client, "olga")
    form = search_form(client, "finger")
    sent = client.post(
        "/workbench/search",
        data={**form, "search_type": "TP/TP"},
        files={"finger_file": ("tenprint.an2", write_transaction(transaction))},
    )
    assert sent_away(sent)  # checked, recorded, then sent in the background
    [search] = stored_searches(node)
    assert search.probe["format"] == "ansi_nist"
    shown = client.get(f"/workbench/searches/{search.id}/probe")
    assert shown.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(shown.content)).size == (280, 320)


def store_search(
    node: Node, category: str, replies: list[CountryReply], probe: dict[str, Any] | None = None
) -> int:
    with node.engine.begin() as conn:
        inserted = conn.execute(
            insert(searches).values(
                message_id=MESSAGE_ID,
                request_number="DE-2",
                user="olga",
                category=category,
                purpose="investigation",
                offence="0800 00",
                max_penalty_months=60,
                case_reference="DE/2026/10",
                targets=["all"],
                probe=probe,
                status="answered",
                reply={"replies": [r.model_dump(mode="json") for r in replies]},
                created_at=dt.datetime.now(dt.UTC),
            )
        ).inserted_primary_key
    assert inserted is not None
    return int(inserted[0])


MESSAGE_ID = "5d7a2b36-1c1e-4c57-9a51-3a1d2b4c5e70"


def reply(party: str, *candidates: Candidate) -> CountryReply:
    return CountryReply(
        in_reply_to=MESSAGE_ID,
        party=party,
        status=ReplyStatus.ANSWERED,
        candidates=list(candidates),
        duration_ms=12.0,
    )


def candidate(reference: str, details: Any, **fields: Any) -> Candidate:
    return Candidate(
        rank=1,
        reference=reference,
        score=fields.pop("score", 0.9),
        distance=fields.pop("distance", 0.0),
        false_match_rate=fields.pop("false_match_rate", None),
        false_match_words=fields.pop("false_match_words", "words"),
        provenance=fields.pop("provenance", "DE national collection"),
        details=details,
        **fields,
    )


def test_dna_candidate_shows_the_profile_aligned_with_the_probe(
    client: TestClient, node: Node
) -> None:
    probe = {
        "identified": False,
        "loci": {
            "D3S1358": ["15", "16"],
            "vWA": ["17", "18"],
            "TH01": ["6", "9.3"],
            "FGA": ["21", "*"],
        },
    }
    hit = DnaHit(
        match="near_match",
        identified=True,
        matching_loci=["D3S1358", "TH01", "FGA"],
        compared_loci=["D3S1358", "vWA", "TH01", "FGA"],
        mismatched_loci=["vWA"],
        random_match_probability=3.2e-10,
        profile={
            "D3S1358": ["15", "16"],
            "vWA": ["17", "19"],
            "TH01": ["6", "9.3"],
            "FGA": ["21", "24"],
            "D21S11": ["29", "30"],
        },
    )
    search_id = store_search(
        node,
        "dna",
        [reply("AT", candidate("AT-D-0001", hit, score=0.75, distance=1.0))],
        {"format": "dna_profile", "data": base64.b64encode(json.dumps(probe).encode()).decode()},
    )
    login(client, "eric")
    results = client.get(f"/workbench/searches/{search_id}").text
    assert "near match" in results and "identified person" in results
    # A near match leads with the differing allele, and states no random match probability.
    assert "one allele differs</strong> at vWA (probe 17, 18, candidate 17, 19)" in results
    assert "1 in 3.1 billion" not in results and "no random match probability" in results
    compare = client.get(f"/workbench/searches/{search_id}/candidates/AT/AT-D-0001").text
    table = compare[compare.index('id="dna-profile"') :]
    rows = re.findall(r'<tr class="locus ([a-z-]+)">\s*<th scope="row">([^<]+)</th>', table)
    # The probe's loci in its order, then the candidate's extra locus.
    assert rows == [
        ("match", "D3S1358"),
        ("mismatch", "vWA"),
        ("match", "TH01"),
        ("match", "FGA"),
        ("not-compared", "D21S11"),
    ]
    assert "<td>17, 18</td>\n  <td>17, 19</td>" in table and "<td>21, *</td>" in table
    assert 'id="verify-form"' in compare  # the same verification form


def test_vehicle_data_show_directive_codes_and_signals_without_step_two(
    client: TestClient, node: Node
) -> None:
    data = VehicleData(
        registration_country="AT",
        plate="W-12345X",
        vin="WVWZZZ1JZ3W386752",
        make="Volkswagen",
        model="Golf",
        vehicle_category="M1",
        first_registration=dt.date(2019, 3, 1),
        holder_surname="Huber",
        holder_first_names="Anna",
        holder_address="Ringstraße 1, 1010 Wien",
        signals=["stolen"],
    )
    search_id = store_search(node, "vehicle", [reply("AT", candidate("AT-V-0001", data))])
    login(client, "olga")
    page = client.get(f"/workbench/searches/{search_id}").text
    cells = re.findall(
        r'<td class="code">([^<]+)</td><th scope="row">([^<]+)</th><td>([^<]+)</td>', page
    )
    codes = {code: value for code, _, value in cells}
    assert codes["A"] == "W-12345X" and codes["E"] == "WVWZZZ1JZ3W386752"
    assert codes["D.1"] == "Volkswagen" and codes["D.3"] == "Golf" and codes["J"] == "M1"
    assert codes["C.1.1"] == "Huber" and codes["C.1.2"] == "Anna" and codes["B"] == "2019-03-01"
    assert codes["C.1.3"] == "Ringstraße 1, 1010 Wien"
    assert '<span class="status signal">reported stolen</span>' in page
    assert "no second step" in page
    assert "Compare" not in page and "not verified" not in page  # no step 2
    compare = client.get(f"/workbench/searches/{search_id}/candidates/AT/AT-V-0001").text
    assert "reported stolen" in compare and 'id="vehicle-note"' in compare
    assert 'id="verify-form"' not in compare and "core-data" not in compare


def test_records_hit_shows_quality_and_fields_never_a_name(client: TestClient, node: Node) -> None:
    hit = RecordsHit(
        quality=0.87,
        quality_words="strong match (quality 0.87); agrees on: names, year of birth",
        matched_on=["names_similar", "year_of_birth", "day_and_month", "gender"],
    )
    search_id = store_search(
        node,
        "records",
        [reply("DE", candidate("DE-R-0042", hit, false_match_words="high; no calibrated rate"))],
    )
    login(client, "eric")
    page = client.get(f"/workbench/searches/{search_id}").text
    assert "quality 87 %: strong match</p>" in page
    assert (
        "agreed on: names similar (spelling or transliteration), year of birth,"
        " day and month of birth, gender" in page
    )
    compare = client.get(f"/workbench/searches/{search_id}/candidates/DE/DE-R-0042").text
    agreed = re.findall(r'<tr class="agreed"><th scope="row">([^<]+)</th>', compare)
    assert agreed == [
        "names similar (spelling or transliteration)",
        "year of birth",
        "day and month of birth",
        "gender",
    ]
    assert compare.count('<tr class="not-agreed">') == 8
    assert "never with a name" in compare and 'id="verify-form"' in compare


def test_finger_hit_shows_type_position_minutiae_and_both_prints(
    client: TestClient, node: Node
) -> None:
    rng = np.random.default_rng(5)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (300, 300), dtype=np.uint8)).save(buffer, "PNG")
    png = buffer.getvalue()
    hit = FingerHit(search_type="LT/TP", finger_position=7, matched_minutiae=14)
    search_id = store_search(
        node,
        "finger",
        [reply("NL", candidate("NL-F-0007", hit, image=base64.b64encode(png)))],
        {"format": "image", "image": base64.b64encode(png).decode(), "box": None},
    )
    login(client, "eric")
    page = client.get(f"/workbench/searches/{search_id}").text
    assert "LT/TP (latent against ten-prints); left index finger; 14 matched minutiae" in page
    compare = client.get(f"/workbench/searches/{search_id}/candidates/NL/NL-F-0007").text
    assert "<dd>left index finger</dd>" in compare and "<dd>14</dd>" in compare
    assert f"/workbench/searches/{search_id}/probe" in compare
    image = client.get(f"/workbench/searches/{search_id}/candidates/NL/NL-F-0007/image")
    assert image.headers["content-type"] == "image/png" and image.content == png


def test_results_say_how_many_weaker_candidates_a_country_did_not_send(
    client: TestClient, node: Node
) -> None:
    sent = reply("AT", candidate("AT-F-0001", None, score=0.8))
    withheld = sent.model_copy(update={"withheld": 3})
    nothing = reply("NL").model_copy(update={"status": ReplyStatus.NO_HIT, "withheld": 1})
    search_id = store_search(node, "face", [withheld, nothing, reply("FR")])
    login(client, "eric")
    page = client.get(f"/workbench/searches/{search_id}").text
    assert "3 weaker candidates were not sent" in page
    assert "1 weaker candidate was not sent" in page
    assert page.count("weaker candidate") == 2  # FR withheld nothing: no note


def test_missing_person_search_form_needs_no_offence(client: TestClient, node: Node) -> None:
    login(client, "olga")
    page = client.get("/workbench/search", params={"category": "dna"})
    assert 'src="/workbench/static/grounds.js"' in page.text
    loci = ["D3S1358", "vWA", "D8S1179", "D21S11", "D18S51", "TH01", "FGA"]
    alleles = ["15,16", "17,18", "13,14", "29,30", "14,17", "6,9.3", "21,22"]
    form = {
        "category": "dna",
        "purpose": "missing_person",
        "case_reference": "DE/2026/11",
        "profile_text": "".join(f"{x},{a}\n" for x, a in zip(loci, alleles, strict=True)),
        "csrf_token": token_in(page.text),
    }
    # Checked and sent (this node's router does not exist), offence and penalty left out.
    sent = client.post("/workbench/search", data=form)
    assert sent_away(sent)
    criminal = client.post("/workbench/search", data={**form, "purpose": "investigation"})
    assert criminal.status_code == 400 and "offence" in criminal.text
    with node.engine.connect() as conn:
        [search] = conn.execute(select(searches)).all()
    assert search.purpose == "missing_person" and search.offence == ""
