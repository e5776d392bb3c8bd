"""Bad-input classes about who may ask what (bench/faults_inputs.py runs them): unknown
countries, purposes and categories; forged signatures and replays at the router; workbench
posts without their CSRF token; a user calling another role's endpoint.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
from typing import Any

import httpx

from faults_inputs_kit import HOLDER, REQUESTER, Campaign, Trial, Workbench, judge, send, token_in
from faultworld import InputClass, password

SECURITY_CODES = {
    "bad_signature",
    "bad_certificate",
    "not_authorised",
    "malformed_request",
    "invalid_message",
}
FACTS = "seen at the scene on 2 January 2026"


def unknown_countries(c: Campaign) -> InputClass:
    t = Trial(
        c,
        "unknown countries",
        "AT /api/searches, AT's workbench and the router: targets no party here has (XX, ZZ,"
        " EU, GB, EUROPOL), AT itself, lowercase, names, too many. A malformed code is"
        " refused by AT; a well-formed unknown one by the router (unknown_party) after AT"
        " recorded the search as failed: 1 node_searches row at AT each",
    )
    malformed: list[Any] = [
        *(["de"], ["Deutschland"], ["D"], ["DEU"], [" DE"], [""], ["DE", "de"]),
        *([HOLDER] * 41, [None], [276], "DE", ["D\u0415"]),  # the last with a Cyrillic E
    ]
    for targets in malformed:
        answer = c.search(c.dna_body(targets=targets))
        t.check(f"targets {str(targets)[:30]}", answer, about="targets")
    for targets in (["XX"], ["ZZ"], [HOLDER, "XX"], ["EU"], ["GB"], ["EUROPOL"], ["QQ", "HU"]):
        t.check(f"targets {targets}", c.search(c.dna_body(targets=targets)), about="unknown_party")
        t.allow(REQUESTER, "node_searches")
    t.check("targets AT itself", c.search(c.dna_body(targets=["AT"])), about="invalid_targets")
    t.allow(REQUESTER, "node_searches")
    for targets in (["XX"], ["ZZ"], ["eu"], ["AT"]):
        answer = c.to_router(c.envelope(targets=targets))
        codes = {"unknown_party", "invalid_targets", "invalid_message"}
        t.check(f"router: targets {targets}", answer, codes=codes)
    answer = c.bench().post("/workbench/search", c.form(targets=["XX"]))
    t.check("workbench: target XX", answer, about="unknown_party")
    t.allow(REQUESTER, "node_searches")
    return t.finish()


def bad_purposes(c: Campaign) -> InputClass:
    t = Trial(
        c,
        "missing or bad purpose",
        "router /v1/search: signed envelopes without a purpose or with one outside the"
        " Regulation's three (400), or one DE does not accept (200, DE 'refused' by the"
        " router without asking it); AT's national API and workbench: 'curiosity' and"
        " other non-purposes (400); nothing stored",
    )
    cases: list[tuple[str, dict[str, Any]]] = [
        ("no purpose", c.envelope(drop=("purpose",))),
        ("purpose null", c.envelope(purpose=None)),
        ("purpose ''", c.envelope(purpose="")),
        ("purpose 'curiosity'", c.envelope(purpose="curiosity")),
        ("purpose 'INVESTIGATION'", c.envelope(purpose="INVESTIGATION")),
        ("purpose a list", c.envelope(purpose=["investigation"])),
        ("purpose missing_person", c.envelope(purpose="missing_person")),
        ("purpose unidentified_remains", c.envelope(purpose="unidentified_remains")),
    ]
    codes = {"invalid_message", "purpose_not_allowed"}
    for name, envelope in cases:
        t.check(f"router: {name}", c.to_router(envelope), about="purpose", codes=codes)
    for purpose in ("curiosity", "", None, "Investigation", 1, ["investigation"], "investigation;"):
        answer = c.search(c.dna_body(purpose=purpose))
        t.check(f"API: purpose {purpose!r}", answer, about="purpose")
    for purpose in ("curiosity", "", "missing person"):
        answer = c.bench().post("/workbench/search", c.form(purpose=purpose))
        t.check(f"workbench: purpose {purpose!r}", answer, about="purpose")
    return t.finish()


def unknown_categories(c: Campaign) -> InputClass:
    t = Trial(
        c,
        "unknown categories",
        "AT /api/searches, AT's workbench and the router: categories that do not exist"
        " ('iris', 'FACE', '', null, 7); 400, nothing stored",
    )
    for category in ("iris", "FACE", "", None, 7, "dna "):
        answer = c.search(c.dna_body(category=category))
        t.check(f"API {category!r}", answer, about="category")
    for category in ("iris", "palm"):
        answer = c.to_router(c.envelope(category=category))
        t.check(f"router {category}", answer, codes={"invalid_message"}, about="category")
    answer = c.bench().get("/workbench/search", category="iris")
    t.check("workbench form iris", answer, about="category")
    answer = c.bench().post("/workbench/search", c.form(category="iris"))
    t.check("workbench search iris", answer, about="category")
    return t.finish()


def forged_signatures(c: Campaign) -> InputClass:
    t = Trial(
        c,
        "forged signatures",
        "router /v1/search over AT's TLS: envelopes altered after signing, with damaged"
        " signatures, signed by another party (DE, the router), with another party's"
        " certificate, or one from a rogue CA naming AT; 400/403, nothing forwarded or stored",
    )
    from prum.federation.security import pki

    good = c.envelope()
    de_cert = (c.pki / "DE.pem").read_text()
    rogue = c.world.root / "rogue-pki"
    if not (rogue / "AT.pem").exists():
        pki.init_ca(rogue)
        pki.issue(rogue, "AT", role="node")
    signature = base64.b64decode(good["signature"])
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"

    def edited(**changes: Any) -> dict[str, Any]:
        return {**copy.deepcopy(good), **changes}

    def body(**fields: Any) -> dict[str, Any]:
        return edited(body={**good["body"], **fields})

    cases: list[tuple[str, dict[str, Any]]] = [
        ("body altered: case reference", body(case_reference="AT-FORGED")),
        ("body altered: targets", body(targets=[HOLDER, "HU"])),
        ("body altered: requesting user", body(requesting_user="mallory")),
        ("signature: one bit flipped", edited(signature=base64.b64encode(flipped).decode())),
        ("signature: zeros", edited(signature=base64.b64encode(bytes(64)).decode())),
        ("signature: half", edited(signature=base64.b64encode(signature[:32]).decode())),
        ("signature: not base64", edited(signature="!!not base64!!")),
        ("signature: empty", edited(signature="")),
        ("signature of another message", edited(signature=c.envelope()["signature"])),
        ("signed by DE, sent by AT", c.envelope(sign_as="DE")),
        ("signed by DE as requester DE", c.envelope(sign_as="DE", requesting_party="DE")),
        ("signed by the router", c.envelope(sign_as="ROUTER")),
        ("signer field says DE", edited(signer="DE")),
        ("DE's certificate on AT's signature", edited(cert=de_cert)),
        ("DE's certificate and name on AT's signature", edited(cert=de_cert, signer="DE")),
        ("certificate garbage", edited(cert=garbage)),
        ("certificate of a rogue CA", dict(c.signer("AT", rogue).sign(good["body"]).to_dict())),
        ("alg none", edited(alg="none")),
        ("requesting party DE, signed by AT", c.envelope(requesting_party="DE")),
        ("an extra envelope field", edited(extra="x")),
    ]
    for name, envelope in cases:
        t.check(name, c.to_router(envelope), codes=SECURITY_CODES)
    return t.finish()


def replays(c: Campaign) -> InputClass:
    t = Trial(
        c,
        "replayed messages",
        "router /v1/search: an envelope sent again after it was answered (the first send is"
        " the control, not counted), and envelopes issued 10 minutes or a day ago, 10"
        " minutes ahead or in the year 9999; 403 replay; nothing stored (DE keeps no"
        " searches it answers)",
    )
    for n in range(5):
        envelope = json.dumps(c.envelope()).encode()
        first = judge(c.to_router(envelope))
        if first.kind != "accepted":
            t.fail(f"control {n}: a fresh envelope was not answered: {first.text}")
        for again in (1, 2):
            t.check(f"envelope {n}, again ({again})", c.to_router(envelope), codes={"replay"})
    now = dt.datetime.now(dt.UTC)
    for name, issued in (
        ("issued 10 minutes ago", now - dt.timedelta(minutes=10)),
        ("issued a day ago", now - dt.timedelta(days=1)),
        ("issued 10 minutes ahead", now + dt.timedelta(minutes=10)),
        ("issued in 9999", dt.datetime(9999, 1, 1, tzinfo=dt.UTC)),
    ):
        t.check(name, c.to_router(c.envelope(issued_at=issued.isoformat())), codes={"replay"})
    return t.finish()


def csrf_missing(c: Campaign) -> InputClass:
    t = Trial(
        c,
        "CSRF without token",
        "workbench POSTs of AT and DE with a valid session cookie and no, a wrong, an empty"
        " or another session's CSRF token (search, preview, verification, core-data request,"
        " inbox decision, new user, audit check, logout, login); 403, nothing changed,"
        " the session still works",
    )
    sid, reference = c.hits["base"]
    officer, examiner, admin = c.bench(), c.bench("eric"), c.bench("ada")
    candidate = f"/workbench/searches/{sid}"
    verdict = {"party": HOLDER, "reference": reference, "decision": "confirmed"}
    user = {"name": "mallory", "password": "a-long-enough-password", "roles": ["admin"]}
    cases: list[tuple[str, Workbench, str, dict[str, Any], Any]] = [
        ("search, no token", officer, "/workbench/search", c.form(), None),
        ("search, wrong token", officer, "/workbench/search", c.form(csrf_token="x" * 43), None),
        ("search, empty token", officer, "/workbench/search", c.form(csrf_token=""), None),
        (
            "search, another's token",
            officer,
            "/workbench/search",
            c.form(csrf_token=examiner.csrf),
            None,
        ),
        (
            "preview, no token",
            officer,
            "/workbench/search/preview",
            {},
            {"image": ("p.jpg", c.face)},
        ),
        (
            "verification, no token",
            examiner,
            f"{candidate}/verifications",
            {**verdict, "justification": "all loci agree"},
            None,
        ),
        (
            "core-data request, no token",
            officer,
            f"{candidate}/core-data",
            {"party": HOLDER, "reference": reference, "facts": FACTS},
            None,
        ),
        (
            "DE inbox decision, no token",
            c.bench("anna", HOLDER),
            "/workbench/inbox/1/decision",
            {"action": "release"},
            None,
        ),
        ("new user, no token", admin, "/workbench/admin/users", user, None),
        (
            "new user, another's token",
            admin,
            "/workbench/admin/users",
            {**user, "csrf_token": officer.csrf},
            None,
        ),
        ("audit check, no token", c.bench("otto"), "/workbench/audit/verify", {}, None),
        ("logout, no token", officer, "/workbench/logout", {}, None),
    ]
    for name, bench, path, form, upload in cases:
        answer = bench.post(path, form, upload, csrf=False)
        t.check(name, answer, codes={"not_authorised"}, about="workbench")
    wrong = {"x-csrf-token": "x" * 43}
    answer = send(officer.client.post, "/workbench/search", data=c.form(), headers=wrong)
    t.check("search, wrong token in the header", answer, codes={"not_authorised"}, about="CSRF")
    url = c.world.layout.parties[REQUESTER].api_url
    for name, own_cookie in (("login without its cookie", False), ("login, another's token", True)):
        token = token_in(httpx.get(f"{url}/workbench/login").text)
        with httpx.Client(base_url=url, timeout=60) as stranger:
            if own_cookie:
                stranger.get("/workbench/login")
            login = {"username": "olga", "password": password(REQUESTER), "csrf_token": token}
            answer = send(stranger.post, "/workbench/login", data=login)
            t.check(name, answer, codes={"not_authorised"}, about="login form")
    still = officer.get("/workbench/")
    if not (isinstance(still, httpx.Response) and still.status_code == 200):
        t.fail("the officer's session ended after a logout without token")
    return t.finish()


def wrong_roles(c: Campaign) -> InputClass:
    t = Trial(
        c,
        "another role's endpoint",
        "national API (Basic) and workbench (session with a valid CSRF token) of AT and DE:"
        " officer to verifications, audit, inbox, admin; examiner to searches; auditor to"
        " inbox decisions; officer and approver to DNA comparisons; admin to searches and"
        " results; 403 role_required, nothing stored",
    )
    sid, reference = c.hits["base"]
    verdict = {"party": HOLDER, "reference": reference, "decision": "confirmed"}
    verdict["justification"] = "all loci agree"
    asked = {"search_id": sid, "party": HOLDER, "reference": reference, "facts": FACTS}
    release = {"action": "release"}
    api: list[tuple[str, str, str, str, Any]] = [
        ("officer -> verification", "AT", "olga", f"/api/searches/{sid}/verifications", verdict),
        ("examiner -> search", "AT", "eric", "/api/searches", c.dna_body()),
        ("auditor -> search", "AT", "otto", "/api/searches", c.dna_body()),
        ("admin -> search", "AT", "ada", "/api/searches", c.dna_body()),
        ("approver -> core-data request", "AT", "anna", "/api/core-data-requests", asked),
        ("auditor -> DE inbox decision", "DE", "otto", "/api/inbox/1/decision", release),
        ("officer -> DE inbox decision", "DE", "olga", "/api/inbox/1/decision", release),
        ("officer -> DNA comparisons", "AT", "olga", "/api/dna/comparisons", {"parties": ["DE"]}),
        ("approver -> DNA comparisons", "AT", "anna", "/api/dna/comparisons", {"parties": ["DE"]}),
        ("officer -> audit", "AT", "olga", "/api/audit", None),
        ("officer -> audit check", "AT", "olga", "/api/audit/verify", None),
        ("officer -> statistics", "AT", "olga", "/api/stats", None),
        ("officer -> DE inbox", "DE", "olga", "/api/inbox", None),
        ("examiner -> comparison jobs", "AT", "eric", "/api/dna/comparisons", None),
    ]
    for name, party, user, path, body in api:
        client = c.api(user, party)
        answer = send(client.post, path, json=body) if body else send(client.get, path)
        t.check(f"API {name}", answer, codes={"role_required"})
    new_user = {"name": "mallory", "password": "a-long-enough-password", "roles": ["admin"]}
    bench: list[tuple[str, str, str, str, dict[str, Any] | None]] = [
        (
            "officer -> verification",
            "AT",
            "olga",
            f"/workbench/searches/{sid}/verifications",
            verdict,
        ),
        ("examiner -> search", "AT", "eric", "/workbench/search", c.form()),
        ("auditor -> inbox decision", "AT", "otto", "/workbench/inbox/1/decision", release),
        ("officer -> new user", "AT", "olga", "/workbench/admin/users", new_user),
        ("officer -> admin", "AT", "olga", "/workbench/admin", None),
        ("officer -> audit", "AT", "olga", "/workbench/audit", None),
        ("approver -> new search", "DE", "anna", "/workbench/search", None),
        ("examiner -> inbox", "AT", "eric", "/workbench/inbox", None),
        ("admin -> results", "AT", "ada", f"/workbench/searches/{sid}", None),
        ("auditor -> cases", "AT", "otto", "/workbench/cases", None),
        ("officer -> DE inbox", "DE", "olga", "/workbench/inbox", None),
    ]
    for name, party, user, path, form in bench:
        session = c.bench(user, party)
        answer = session.get(path) if form is None else session.post(path, form)
        t.check(f"workbench {name}", answer, codes={"role_required"})
    return t.finish()
