"""The workbench without a browser: sessions, CSRF, roles, lockout and the pages that
call step-2 functions (FastAPI's TestClient against a real node database)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from prum.messages import Category, CoreDataRequest
from prum.node import followup
from prum.node.api import create_national_app
from prum.node.config import CategoryPolicy, NodeConfig
from prum.node.core import Node
from prum.node.schema import core_data, outbox, requests_in, searches
from prum.node.users import Role, add_user
from prum.security import pki
from prum.security.signing import Signer
from prum.web import sessions

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
        assert response.status_code == 303 and response.headers["location"] == "/workbench/login"
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
    envelope = Signer(pki_dir, requester).sign(request.model_dump(mode="json")).to_dict()
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
    held = client.post("/workbench/inbox/1/decision", data={"action": "hold", "csrf_token": token})
    assert held.status_code == 303
    assert "clock paused" in client.get("/workbench/inbox").text
    client.post("/workbench/inbox/1/decision", data={"action": "resume", "csrf_token": token})
    client.post("/workbench/inbox/1/decision", data={"action": "release", "csrf_token": token})
    with node.engine.connect() as conn:
        assert conn.execute(select(requests_in.c.status)).scalar_one() == "released"
        [queued] = conn.execute(select(outbox)).all()
    assert queued.destination == "AT" and queued.kind == "core_data_reply"
    [decided] = node.audit.entries(kind="core_data_decided")
    assert decided.event.user == "anna"


def test_verifier_cannot_release_through_the_inbox(
    client: TestClient, node: Node, pki_dir: Path
) -> None:
    incoming(pki_dir, node, requester="DE", verified_by="vera")
    login(client, "vera")
    token = token_in(client.get("/workbench/inbox").text)
    response = client.post(
        "/workbench/inbox/1/decision", data={"action": "release", "csrf_token": token}
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
    assert sent.status_code == 503 and "router cannot be reached" in sent.text
    with node.engine.connect() as conn:
        [search] = conn.execute(select(searches)).all()
    assert search.category == "dna" and search.status == "failed"
    assert search.probe["format"] == "dna_profile"
