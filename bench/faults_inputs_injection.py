"""Bad-input classes about what text and bytes can smuggle (bench/faults_inputs.py runs
them): SQL and HTML injection into every text field, bodies that are not JSON, ids and
query values out of range, and requests generated from the router's OpenAPI document.
"""

from __future__ import annotations

import json
import time
from functools import partial
from typing import Any

import httpx
import markupsafe

from faults_inputs_kit import (
    HOLDER,
    REQUESTER,
    Answer,
    Campaign,
    Trial,
    judge,
    search_id,
    send,
    token_in,
)
from faultworld import InputClass

SQL = [
    "' OR '1'='1",
    "'; DROP TABLE node_searches; --",
    '" OR 1=1 --',
    "1; DELETE FROM node_users",
    "' UNION SELECT name, password_hash FROM node_users --",
    "Robert'); DROP TABLE node_verifications;--",
    "%' AND 1=0 UNION SELECT NULL--",
    "'; SELECT pg_sleep(10); --",
]
XSS = [
    "<script>alert('prum')</script>",
    '"><img src=x onerror=alert(1)>',
    "<svg onload=alert(2)>",
    "</textarea><script>alert(3)</script>",
    '<a href="javascript:alert(4)">x</a>',
]
FACTS = " -- seen at the scene on 2 January 2026"
Page = tuple[str, str, str, dict[str, Any]]  # party, user, path, query


def _core_data_request(
    c: Campaign, t: Trial, sid: int, reference: str, facts: str
) -> tuple[Answer, dict[str, Any] | None]:
    """The examiner confirms the candidate, the officer asks for its core data with
    ``facts``: the answer, and the request as it arrived in DE's inbox (None if it did
    not). The rows this adds are allowed."""
    verdict = {"party": HOLDER, "reference": reference, "decision": "confirmed"}
    verdict["justification"] = "compared side by side: all loci agree"
    confirmed = c.post(f"/api/searches/{sid}/verifications", verdict, "eric")
    t.allow(REQUESTER, "node_verifications", judge(confirmed).kind == "accepted")
    asked = {"search_id": sid, "party": HOLDER, "reference": reference, "facts": facts}
    answer = c.post("/api/core-data-requests", asked)
    if judge(answer).kind != "accepted":
        return answer, None
    for party, table in (
        (REQUESTER, "node_core_requests_out"),
        (REQUESTER, "node_outbox"),
        (HOLDER, "node_core_requests_in"),
        (HOLDER, "node_inbox"),
    ):
        t.allow(party, table)
    message = c.view(sid).get("message_id")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for entry in c.api("anna", HOLDER).get("/api/inbox").json():
            if entry["request"].get("search_message_id") == message:
                return answer, dict(entry)
        time.sleep(0.3)
    return answer, None


def _kept(c: Campaign, answer: Answer, value: str) -> str | None:
    """None if the search ``answer`` made (if any) keeps ``value`` verbatim as its case
    reference."""
    if search_id(answer) is None:
        return None
    stored = c.view(search_id(answer)).get("case_reference")
    return None if stored == value else f"case reference kept as {stored!r}"


def _only(answer: Answer, value: str) -> str | None:
    """None if the listed searches are those with case reference ``value``, and some."""
    rows = answer.json() if isinstance(answer, httpx.Response) else []
    found = bool(rows) and all(r["case_reference"] == value for r in rows)
    return None if found else f"{len(rows)} rows listed, not just the search with it"


def _none_listed(answer: Answer) -> str | None:
    listed = answer.json() if isinstance(answer, httpx.Response) else None
    return None if listed == [] else "entries listed"


def _not_in(answer: Answer, text: str) -> str | None:
    return "it came back" if isinstance(answer, httpx.Response) and text in answer.text else None


def sql_injection(c: Campaign) -> InputClass:
    t = Trial(
        c,
        "SQL injection",
        "every text field of AT's national API (case reference, offence, targets, search"
        " type, surname, plate, party, reference, justification, facts, filters), DE's"
        " inbox decision, DNA comparison parties, AT's workbench (login, search, cases"
        " filter, new user). 'refused' = 4xx, or neutralised: accepted and read back"
        " verbatim (the searches, verifications and core-data request this needs are"
        " allowed rows); no row that existed before altered",
    )
    sid, reference = c.hits["sql"]
    for payload in SQL:
        answer = c.search(c.dna_body(case_reference=payload))
        t.allow(REQUESTER, "node_searches", search_id(answer) is not None)
        verify = partial(_kept, c, answer, payload)
        t.check(f"case reference {payload[:20]}", answer, inert=True, verify=verify)
    for payload in SQL[:4]:
        listed = send(c.api().get, "/api/searches", params={"case_reference": payload})
        t.check(
            f"filter {payload[:20]}", listed, inert=True, verify=partial(_only, listed, payload)
        )
    for payload in SQL[:3]:
        answer = c.search(c.dna_body(offence=payload))
        t.check(f"offence {payload[:20]}", answer, about="offence")
    for payload in SQL[:2]:
        answer = c.search(c.dna_body(targets=[payload]))
        t.check(f"targets {payload[:20]}", answer, about="targets")
    t.check("search type", c.search(c.dna_body(search_type=SQL[0])), about="search_type")
    for payload in SQL[1:3]:
        person = {**c.world.facts.records_person, "surnames": [payload]}
        answer = c.search(c.world.search_body("records", person=person, targets=[HOLDER]))
        t.allow(REQUESTER, "node_searches", search_id(answer) is not None)
        verify = partial(_not_in, answer, payload)  # only keyed hashes leave AT
        t.check(f"surname {payload[:20]}", answer, inert=True, verify=verify)
    for payload in ("' OR 1=1 --", "'); DROP TABLE x"):
        probe = {"format": "vehicle_query", "vehicle": {"plate": payload}}
        answer = c.search(c.world.search_body("vehicle", probe=probe, targets=[HOLDER]))
        t.allow(REQUESTER, "node_searches", search_id(answer) is not None)
        t.check(f"plate {payload}", answer, inert=True)
    verdict = {"party": HOLDER, "reference": reference, "decision": "rejected"}
    verdict["justification"] = "not the same person, see loci"
    path = f"/api/searches/{sid}/verifications"
    for field in ("party", "reference"):
        answer = c.post(path, {**verdict, field: SQL[0]}, "eric")
        t.check(f"verification {field}", answer, codes={"unknown_reference"})
    justification = SQL[1] + " (checked twice)"
    answer = c.post(path, {**verdict, "justification": justification}, "eric")
    t.allow(REQUESTER, "node_verifications", judge(answer).kind == "accepted")
    kept = [v["justification"] for v in c.view(sid).get("verifications", [])]
    accepted = judge(answer).kind == "accepted"
    problem = "not kept verbatim" if accepted and justification not in kept else None
    t.check("justification", answer, inert=True, verify=lambda: problem)
    facts = SQL[4] + FACTS
    answer, entry = _core_data_request(c, t, sid, reference, facts)
    at_home = facts in [r["facts"] for r in c.api().get("/api/core-data-requests").json()]
    at_de = entry is not None and entry["request"]["facts"] == facts
    problem = None if at_home and at_de else f"kept verbatim at AT: {at_home}, at DE: {at_de}"
    t.check("facts", answer, inert=True, verify=lambda: problem)
    asked = {"search_id": sid, "party": HOLDER, "reference": reference, "facts": facts}
    for field, value, about in (
        ("reference", SQL[0], "no candidate"),
        ("offence", SQL[2], "offence"),
        ("party", SQL[3], "no candidate"),
    ):
        answer = c.post("/api/core-data-requests", {**asked, field: value})
        t.check(f"core-data request {field}", answer, about=about)
    for form in ({"action": "refuse", "reason": SQL[0]}, {"action": SQL[1]}):
        decision = f"/api/inbox/{entry['id'] if entry else 1}/decision"
        t.check(f"DE inbox decision {list(form)[-1]}", c.post(decision, form, "anna", HOLDER))
    t.check("comparison parties", c.post("/api/dna/comparisons", {"parties": [SQL[0]]}, "ada"))
    audit = send(c.api("otto").get, "/api/audit", params={"kind": SQL[0]})
    t.check("audit kind filter", audit, inert=True, verify=partial(_none_listed, audit))
    url = c.world.layout.parties[REQUESTER].api_url
    with httpx.Client(base_url=url, timeout=60) as fresh:
        token = token_in(fresh.get("/workbench/login").text)
        login = {"username": SQL[0], "password": SQL[0], "csrf_token": token}
        t.check("workbench login name", send(fresh.post, "/workbench/login", data=login))
    answer = c.bench().post("/workbench/search", c.form(case_reference=SQL[5]))
    t.allow(REQUESTER, "node_searches", search_id(answer) is not None)
    t.check(
        "workbench case reference", answer, inert=True, verify=partial(_kept, c, answer, SQL[5])
    )
    cases = c.bench("eric").get("/workbench/cases", q=SQL[0])
    t.check("workbench cases filter", cases, inert=True)
    new_user = {"name": SQL[3], "password": "a-long-enough-password", "roles": ["officer"]}
    t.check("workbench new user name", c.bench("ada").post("/workbench/admin/users", new_user))
    return t.finish()


def _escaped(c: Campaign, payload: str, pages: list[Page], answers: list[Answer]) -> str | None:
    """None if ``payload`` is escaped, never raw, on the pages (fetched now) and in the
    answers (already had), and on one of them at least."""
    fetched = [c.bench(user, party).get(path, **query) for party, user, path, query in pages]
    texts = [a.text for a in [*fetched, *answers] if isinstance(a, httpx.Response)]
    raw = sum(payload in text for text in texts)
    if raw:
        return f"shown raw on {raw} of {len(texts)} pages"
    if not any(str(markupsafe.escape(payload)) in text for text in texts):
        return f"on none of {len(texts)} pages, escaped or raw: nothing was checked"
    return None


def html_injection(c: Campaign) -> InputClass:
    t = Trial(
        c,
        "HTML injection",
        "script and markup in the case reference, justification and facts (AT's API), then"
        " the workbench pages showing them (AT home, results, cases, audit, comparison,"
        " requests; DE's inbox); forms shown again after a refusal; error pages quoting the"
        " URL. 'refused' = escaped, never raw, on every page; the searches, verifications"
        " and core-data request this needs are allowed rows",
    )
    sid, reference = c.hits["html"]
    for payload in XSS:
        answer = c.search(c.dna_body(case_reference=payload))
        new = search_id(answer)
        t.allow(REQUESTER, "node_searches", new is not None)
        pages: list[Page] = [
            (REQUESTER, "olga", "/workbench/", {}),
            (REQUESTER, "olga", f"/workbench/searches/{new}", {}),
            (REQUESTER, "eric", "/workbench/cases", {"q": payload}),
            (REQUESTER, "otto", "/workbench/audit", {"case_reference": payload}),
        ]
        verify = partial(_escaped, c, payload, pages, [])
        t.check(f"case reference {payload[:24]}", answer, inert=True, verify=verify)
    compare: list[Page] = [
        (REQUESTER, "eric", f"/workbench/searches/{sid}/candidates/{HOLDER}/{reference}", {})
    ]
    for payload in XSS[:2]:
        text = payload + " (checked twice)"
        verdict = {"party": HOLDER, "reference": reference, "decision": "rejected"}
        answer = c.post(
            f"/api/searches/{sid}/verifications", {**verdict, "justification": text}, "eric"
        )
        t.allow(REQUESTER, "node_verifications", judge(answer).kind == "accepted")
        verify = partial(_escaped, c, text, compare, [])
        t.check(f"justification {payload[:24]}", answer, inert=True, verify=verify)
    facts = XSS[0] + FACTS
    answer, entry = _core_data_request(c, t, sid, reference, facts)
    inboxes: list[Page] = [
        (HOLDER, "anna", "/workbench/inbox", {}),
        (REQUESTER, "olga", "/workbench/requests", {}),
    ]
    problem = _escaped(c, facts, inboxes, []) if entry else "it did not reach DE's inbox"
    t.check("facts", answer, inert=True, verify=lambda: problem)
    for payload in XSS[:2]:
        form = c.form(case_reference=payload, offence="bogus")
        answer = c.bench().post("/workbench/search", form)
        verify = partial(_escaped, c, payload, [], [answer])
        t.check(f"form shown again {payload[:24]}", answer, about="offence", verify=verify)
    answer = c.bench().post("/workbench/search", c.form(profile_text=XSS[3]))
    verify = partial(_escaped, c, XSS[3], [], [answer])
    t.check("profile text shown again", answer, verify=verify)
    for payload in XSS[1:3]:  # no "/": it would be another path
        answer = c.bench().get(f"/workbench/static/{payload}")
        verify = partial(_escaped, c, payload, [], [answer])
        t.check(f"error page {payload[:24]}", answer, verify=verify)
    return t.finish()


def router_fuzz(c: Campaign) -> InputClass:
    t = Trial(
        c,
        "router API fuzz",
        "schemathesis on the router's own OpenAPI document (/openapi.json over AT's mutual"
        " TLS), positive and negative cases, up to 6 per operation and mode. 'refused' ="
        " answered cleanly: a 4xx with code and message, or a 200 to a GET whose parameters"
        " happened to be valid; a 200 to a POST (a random envelope accepted) is a failure",
    )
    import schemathesis

    schema = schemathesis.openapi.from_dict(c.router.get("/openapi.json").json())
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        for mode in schemathesis.GenerationMode:
            try:
                _fuzz(c, t, operation, mode)
            except Exception as exc:  # an operation without inputs has no negative case
                if type(exc).__name__ != "Unsatisfiable":
                    t.fail(f"{operation.method} {operation.path}: {type(exc).__name__}: {exc}")
    return t.finish()


def _fuzz(c: Campaign, t: Trial, operation: Any, mode: Any) -> None:
    """Cases of ``operation`` in ``mode``, each sent to the router and checked."""
    from hypothesis import HealthCheck, given, settings

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=6,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any) -> None:
        answer = send(c.router.request, **_httpx_arguments(case))
        t.check(
            f"{case.method} {case.formatted_path} ({mode.value})",
            answer,
            inert=case.method == "GET",
        )

    fuzz()


def _httpx_arguments(case: Any) -> dict[str, Any]:
    """A schemathesis case as arguments of httpx.Client.request (a relative URL)."""
    given = case.as_transport_kwargs(base_url="")
    headers = {k: v for k, v in (given.get("headers") or {}).items() if k.lower() != "connection"}
    out: dict[str, Any] = {"method": given["method"], "url": given["url"], "headers": headers}
    out["params"] = given.get("params") or None
    if "json" in given:
        out["json"] = given["json"]
    data = given.get("data")
    if isinstance(data, bytes | str):
        out["content"] = data
    elif data is not None:
        out["data"] = data
    return out


def non_json_bodies(c: Campaign) -> InputClass:
    t = Trial(
        c,
        "non-JSON bodies, wrong content types",
        "AT /api/searches, router /v1/search and /v1/deliver: text, XML, a form, empty,"
        " JSON that is an array or null, nested 100,000 deep, with a 5,000-digit number,"
        " NaN, invalid UTF-8, cut short; 400 with code and message; nothing stored",
    )
    json_type = "application/json"
    bodies: list[tuple[str, bytes, str]] = [
        ("plain text", b"hello", "text/plain"),
        ("XML", b"<?xml version='1.0'?><search><kind>dna</kind></search>", "application/xml"),
        ("form", b"category=dna&purpose=investigation", "application/x-www-form-urlencoded"),
        ("empty", b"", json_type),
        ("JSON array", b"[1, 2, 3]", json_type),
        ("JSON null", b"null", json_type),
        ("nested 100,000 deep", b"[" * 100_000 + b"]" * 100_000, json_type),
        ("object nested 50,000 deep", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, json_type),
        ("5,000-digit number", b'{"max_penalty_months": 1' + b"0" * 5000 + b"}", json_type),
        ("NaN", b'{"max_penalty_months": NaN}', json_type),
        ("invalid UTF-8", b'{"case_reference": "\xff\xfe"}', json_type),
        ("cut short", json.dumps(c.dna_body()).encode()[:100], json_type),
    ]
    for name, body, ctype in bodies:
        answer = send(c.api().post, "/api/searches", content=body, headers={"content-type": ctype})
        t.check(f"API {name}", answer)
    for name, body, ctype in bodies[::2] + bodies[7:8]:
        for path in ("/v1/search", "/v1/deliver"):
            answer = send(c.router.post, path, content=body, headers={"content-type": ctype})
            t.check(f"router {path} {name}", answer)
    return t.finish()


def bad_ids(c: Campaign) -> InputClass:
    t = Trial(
        c,
        "bad ids and query values",
        "paths of AT's national API and workbench with ids negative, zero, not numbers, past"
        " 2**62 and 2**64; audit pages with an offset of 20 digits or the day after"
        " 9999-12-31; statistics of the year 10**20; 400 or 404, nothing stored",
    )
    for value in ("-1", "0", "abc", "1.5", str(2**62 + 1), str(2**64), "9" * 20, str(2**62)):
        t.check(f"API search {value}", send(c.api().get, f"/api/searches/{value}"))
    for value in ("-5", str(2**64)):
        answer = c.post(f"/api/inbox/{value}/decision", {"action": "release"}, "anna")
        t.check(f"API inbox decision {value}", answer)
    examiner = c.bench("eric")
    for value in ("-1", "0", "abc", str(2**63), "9" * 20):
        t.check(f"workbench search {value}", examiner.get(f"/workbench/searches/{value}"))
    t.check("workbench probe 2**63", examiner.get(f"/workbench/searches/{2**63}/probe"))
    answer = examiner.get(f"/workbench/searches/{2**63}/candidates/{HOLDER}/x")
    t.check("workbench candidate 2**63", answer)
    answer = c.bench("anna").post(f"/workbench/inbox/{2**64}/decision", {"action": "release"})
    t.check("workbench inbox decision 2**64", answer)
    auditor = c.bench("otto")
    for query in ({"offset": "9" * 20}, {"until": "9999-12-31"}, {"since": "10000-01-01"}):
        t.check(f"workbench audit {query}", auditor.get("/workbench/audit", **query))
    t.check("workbench audit offset 1e5", auditor.get("/workbench/audit", offset="1e5"))
    answer = auditor.get("/workbench/stats", year=str(10**20))
    t.check("workbench statistics of 10**20", answer)
    return t.finish()
