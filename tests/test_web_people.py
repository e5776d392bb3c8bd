"""The workbench for people, without a browser (FastAPI's TestClient against a real node
database whose router does not exist): errors are pages, never JSON; a search runs in
the background and its failure shows on its live page; login returns to the asked
page; a text too long is refused with the text kept."""

from __future__ import annotations

import re
import time

import pytest
from fastapi.testclient import TestClient

import test_web_sessions as sessions_tests
from prum.node.api import create_national_app
from prum.node.core import Node
from prum.node.web import app as web_app
from test_web_sessions import PASSWORD, login, token_in

# The node fixtures of the session tests (a migrated database with one user per role).
pki_dir = sessions_tests.pki_dir
template = sessions_tests.template
node = sessions_tests.node
client = sessions_tests.client

CSV = "".join(
    f"{locus},{pair}\n"
    for locus, pair in zip(
        ["D3S1358", "vWA", "D8S1179", "D21S11", "D18S51", "TH01", "FGA"],
        ["15,16", "17,18", "13,14", "29,30", "14,17", "6,9.3", "21,22"],
        strict=True,
    )
)


def is_page(response: object) -> bool:
    text = getattr(response, "text", "")
    headers = getattr(response, "headers", {})
    return headers["content-type"].startswith("text/html") and text.startswith("<!doctype html>")


def test_unknown_addresses_and_methods_are_pages_not_json(client: TestClient) -> None:
    login(client, "olga")
    missing = client.get("/workbench/no-such-page")
    assert missing.status_code == 404 and is_page(missing)
    assert "Not found" in missing.text and "unknown_reference" not in missing.text
    direct = client.get("/workbench/logout")  # a form's address, opened directly
    assert direct.status_code == 405 and is_page(direct)
    assert "cannot be opened directly" in direct.text and "Method Not Allowed" not in direct.text
    assert "content-security-policy" in direct.headers
    # The JSON API keeps its JSON.
    api = client.get("/api/no-such-thing")
    assert api.status_code == 404 and api.json()["code"] == "unknown_reference"


def test_a_fault_in_the_node_is_a_page_without_the_trace(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    unsafe = TestClient(
        create_national_app(node), follow_redirects=False, raise_server_exceptions=False
    )
    login(unsafe, "olga")
    monkeypatch.setattr(web_app, "page", broken)  # the home page's renderer fails
    failed = unsafe.get("/workbench/")
    assert failed.status_code == 500 and is_page(failed)
    assert "something went wrong on this node" in failed.text
    assert "secret internals" not in failed.text and "Traceback" not in failed.text


def test_login_returns_to_the_asked_page_and_nowhere_else(client: TestClient) -> None:
    asked = client.get("/workbench/cases?case=AT-1")
    assert asked.status_code == 303
    assert asked.headers["location"] == "/workbench/login?next=%2Fworkbench%2Fcases%3Fcase%3DAT-1"
    form = client.get(asked.headers["location"])
    assert 'name="then" value="/workbench/cases?case=AT-1"' in form.text
    back = client.post(
        "/workbench/login",
        data={
            "username": "olga",
            "password": PASSWORD,
            "csrf_token": token_in(form.text),
            "then": "/workbench/cases?case=AT-1",
        },
    )
    assert back.status_code == 303 and back.headers["location"] == "/workbench/cases?case=AT-1"
    for elsewhere in ("https://evil.example/", "//evil.example/workbench/", "/api/searches"):
        form = client.get("/workbench/login?next=" + elsewhere)
        assert 'name="then" value="/workbench/"' in form.text


def test_a_too_long_justification_is_refused_with_the_text_kept(client: TestClient) -> None:
    login(client, "eric")
    token = token_in(client.get("/workbench/").text)
    words = "The ridge flow and the scar agree; " * 130  # 4,550 characters
    refused = client.post(
        "/workbench/searches/1/verifications",
        data={
            "party": "AT",
            "reference": "AT-1",
            "decision": "confirmed",
            "justification": words,
            "csrf_token": token,
        },
    )
    assert refused.status_code == 400 and is_page(refused)
    assert "is 4,550 characters long; at most 4,000 are accepted" in refused.text
    assert re.search(r"<textarea[^>]*readonly>The ridge flow", refused.text)
    assert words.strip() in refused.text


def test_a_search_whose_router_is_down_fails_on_its_live_page(node: Node) -> None:
    with TestClient(create_national_app(node), follow_redirects=False) as client:
        login(client, "olga")
        page = client.get("/workbench/search?category=dna")
        form = {
            "category": "dna",
            "purpose": "investigation",
            "offence": "0800 00",
            "max_penalty_months": "60",
            "case_reference": "DE/2026/21",
            "profile_text": CSV,
            "csrf_token": token_in(page.text),
            "submission": re.search(r'name="submission" value="([^"]+)"', page.text)[1],  # type: ignore[index]
        }
        started = time.monotonic()
        sent = client.post("/workbench/search", data=form)
        assert sent.status_code == 303 and time.monotonic() - started < 5
        live = client.get(sent.headers["location"])
        assert "Waiting for answers" in live.text or "The search failed" in live.text
        deadline = time.monotonic() + 20
        while client.get(sent.headers["location"] + "/progress").json()["status"] == "sent":
            assert time.monotonic() < deadline, "the search never failed"
            time.sleep(0.1)
        shown = client.get(sent.headers["location"])
        assert 'id="search-failed"' in shown.text and "router cannot be reached" in shown.text
        assert "<noscript>" not in shown.text  # no more refreshing once it is over
        again = client.post("/workbench/search", data=form)  # the same form, sent again
        assert again.headers["location"] == sent.headers["location"]


def test_the_officer_chooses_the_language_and_it_stays(client: TestClient) -> None:
    english = client.get("/workbench/login")
    assert '<html lang="en">' in english.text and ">Log in</button>" in english.text
    chosen = client.get("/workbench/language", params={"to": "de", "back": "/workbench/login"})
    assert chosen.status_code == 303 and chosen.headers["location"] == "/workbench/login"
    german = client.get("/workbench/login")
    assert '<html lang="de">' in german.text and ">Anmelden</button>" in german.text
    assert "Benutzername" in german.text and "Log in" not in german.text
    login(client, "olga")
    home = client.get("/workbench/").text
    assert ">Neue Suche<" in home and "Sachbearbeiter(in)" in home
    french = client.get("/workbench/language", params={"to": "fr", "back": "/workbench/search"})
    assert french.headers["location"] == "/workbench/search"
    form = client.get(french.headers["location"]).text
    assert ">Nouvelle recherche<" in form and "Pays destinataires" in form
    refused = client.get("/workbench/language", params={"to": "xx"})
    assert refused.status_code == 404 and refused.text.startswith("<!doctype html>")
    elsewhere = client.get("/workbench/language", params={"to": "en", "back": "//evil.example"})
    assert elsewhere.headers["location"] == "/workbench/"


def test_the_browser_language_decides_until_the_officer_chooses(node: Node) -> None:
    french = TestClient(create_national_app(node), headers={"accept-language": "fr-BE,fr;q=0.9"})
    assert '<html lang="fr">' in french.get("/workbench/login").text
    other = TestClient(create_national_app(node), headers={"accept-language": "pl,pt;q=0.8"})
    assert '<html lang="en">' in other.get("/workbench/login").text
