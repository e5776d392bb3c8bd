"""The central router end to end: a real router process, stand-in national nodes in
another process, mutual TLS and HTTP on 127.0.0.1, no mocks.

The stand-in nodes (``node_app``) answer as a node would, each in one behaviour:
a candidate list, no hit, a policy refusal, silence past any deadline, garbage, or a
reply signed by another party; one party's port is left closed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from prum.audit.events import EventKind
from prum.audit.log import AuditLog
from prum.demo.processes import free_port
from prum.errors import AuditUnavailable, StorageError
from prum.federation.messages import (
    CancelReason,
    Candidate,
    CoreData,
    CoreDataCancelled,
    CoreDataHold,
    CoreDataReply,
    CoreDataRequest,
    CountryReply,
    ErrorInfo,
    HoldReason,
    Probe,
    ReplyStatus,
    SearchRequest,
)
from prum.federation.router import journal
from prum.federation.router.journal import AuditTrail, audit_event
from prum.federation.security.pki import client_context, init_ca, issue, server_context
from prum.federation.security.signing import AuditVerifier, Signer, Verifier

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
NODES = ("AT", "DE", "SE", "PL", "HU", "FR", "NL", "EUROPOL")
REQUESTERS = ("AT", "DE", "EUROPOL")
BEHAVIOUR = {
    "AT": "answer",
    "DE": "answer",
    "SE": "no_hit",
    "PL": "refuse",
    "HU": "silent",
    "FR": "garbage",
    "NL": "impostor",
    "EUROPOL": "no_hit",
}
OFFENCE = "1500 00"  # theft offences


# --- stand-in nodes -------------------------------------------------------------------


def node_app(party: str, behaviour: str, pki_dir: Path, secrets: dict[str, str]) -> FastAPI:
    """A national node as the router sees it: /v1/search and /v1/inbox, plus /test/*
    for the test to see what arrived."""
    app = FastAPI()
    signer = Signer(pki_dir, party)
    impostor = Signer(pki_dir, "DE")
    verifier = Verifier(pki_dir)
    seen: list[dict[str, Any]] = []
    inbox: dict[str, str] = {}

    def caller(request: Request) -> str:
        from prum.federation.transport import peer_of

        return peer_of(request).party

    @app.post("/v1/search")
    async def search(request: Request) -> Response:
        envelope = await request.json()
        message = verifier.verify(envelope)  # the requester's own signature, forwarded
        seen.append({"peer": caller(request), "signer": message.signer, "id": message.message_id})
        body = message.body
        if behaviour == "silent":  # accepts the connection, never answers
            for _ in range(300):
                if await request.is_disconnected():
                    break
                await asyncio.sleep(0.1)
            return Response(status_code=204)
        if behaviour == "garbage":
            return Response(b"<html>upstream proxy error</html>", media_type="text/html")
        reply = CountryReply(
            in_reply_to=body["message_id"],
            party=party,
            status=ReplyStatus.NO_HIT,
            answer_number=f"{party}-1",
            answered_at=dt.datetime.now(dt.UTC),
            duration_ms=3.0,
            gallery_size=1000,
        )
        if behaviour in ("answer", "impostor"):
            candidate = Candidate(
                rank=1,
                reference=f"{party}-REF-0001",
                score=0.91,
                distance=0.35,
                false_match_rate=1e-4,
                false_match_words="about 1 in 10,000 unrelated people score this high",
                provenance=f"custody photo of {secrets['name']}",
                image=secrets["image"].encode(),
            )
            reply = reply.model_copy(
                update={"status": ReplyStatus.ANSWERED, "candidates": [candidate]}
            )
        if behaviour == "refuse":
            reply = reply.model_copy(
                update={
                    "status": ReplyStatus.REFUSED,
                    "error": ErrorInfo(code="capacity_exhausted", message="daily capacity used"),
                }
            )
        sign = impostor if behaviour == "impostor" else signer
        return Response(sign.sign(reply.model_dump(mode="json")).to_json())

    @app.post("/v1/inbox")
    async def deliver(request: Request) -> JSONResponse:
        message = verifier.verify(await request.json())
        if behaviour == "garbage":  # FR's inbox turns core-data requests down for good
            refusal = {"code": "not_verified", "message": "no confirmed match", "details": {}}
            return JSONResponse(refusal, status_code=403)
        duplicate = message.message_id in inbox
        inbox[message.message_id] = f"{caller(request)}:{message.signer}:{message.body['kind']}"
        return JSONResponse({"accepted": message.message_id, "duplicate": duplicate})

    @app.get("/test/seen")
    async def test_seen() -> dict[str, Any]:
        return {"searches": seen, "inbox": inbox}

    return app


def run_nodes(spec_file: str) -> None:
    """Entry point of the stand-in process: every node of the spec, one event loop."""
    from prum.federation.transport import Listener, serve_many

    spec = json.loads(Path(spec_file).read_text())
    pki_dir = Path(spec["pki_dir"])
    serve_many(
        *(
            Listener(
                node_app(party, BEHAVIOUR[party], pki_dir, spec["secrets"]),
                "127.0.0.1",
                port,
                server_context(pki_dir, party),
            )
            for party, port in spec["ports"].items()
        )
    )


# --- the federation -------------------------------------------------------------------


def python(
    code: str, *args: str, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{SRC}{os.pathsep}{TESTS}",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", code, *args], stdout=out, stderr=out, env=env
        )


def wait_until_up(url: str, tls: ssl.SSLContext, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        try:
            httpx.get(url, verify=tls, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Federation:
    pki: Path
    tmp: Path
    secrets: dict[str, str]
    node_ports: dict[str, int]
    directory_file: Path

    def tls(self, party: str) -> ssl.SSLContext:
        return client_context(self.pki, party)

    def seen(self, party: str) -> dict[str, Any]:
        url = f"https://127.0.0.1:{self.node_ports[party]}/test/seen"
        return dict(httpx.get(url, verify=self.tls("AT")).json())


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    tmp = tmp_path_factory.mktemp("federation")
    pki = tmp / "pki"
    init_ca(pki)
    issue(pki, "ROUTER", role="router")
    for party in (*NODES, "CZ"):
        issue(pki, party, role="node")
    token = uuid.uuid4().hex
    secrets = {
        "name": f"Zebulon Quattrocchi-{token[:8]}",
        "image": base64.b64encode(b"\xff\xd8\xff\xe0CANDIDATE-IMAGE-" + token.encode()).decode(),
    }
    ports = {party: free_port() for party in NODES}
    down = free_port()  # CZ: in the directory, nothing listens
    spec = tmp / "nodes.json"
    spec.write_text(json.dumps({"pki_dir": str(pki), "ports": ports, "secrets": secrets}))
    offers = {
        "AT": ["face", "dna"],
        "DE": ["face", "dna", "vehicle"],
        "SE": ["face", "dna"],
        "PL": ["face"],
        "HU": ["face"],
        "FR": ["face"],
        "NL": ["face"],
        "EUROPOL": ["face"],
        "CZ": ["face"],
    }
    parties: dict[str, Any] = {
        party: {"url": f"https://127.0.0.1:{ports.get(party, down)}", "offers": offers[party]}
        for party in offers
    }
    parties["SE"]["accepts"] = ["investigation"]
    parties["EUROPOL"]["may_search"] = {"face": ["investigation"], "dna": ["investigation"]}
    directory_file = tmp / "directory.json"
    directory_file.write_text(json.dumps({"parties": parties}, indent=2))
    nodes = python(
        "import sys, test_router; test_router.run_nodes(sys.argv[1])",
        str(spec),
        log=tmp / "nodes.log",
    )
    try:
        for port in ports.values():
            wait_until_up(f"https://127.0.0.1:{port}/test/seen", client_context(pki, "AT"), nodes)
        yield Federation(pki, tmp, secrets, ports, directory_file)
    finally:
        nodes.kill()  # stand-ins keep nothing; a silent handler need not be waited for
        nodes.wait()


@dataclass
class RouterProcess:
    url: str
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes]


def start_router(
    federation: Federation, name: str, *options: str, env: dict[str, str] | None = None
) -> RouterProcess:
    data_dir = federation.tmp / name
    port = free_port()
    log = federation.tmp / f"{name}.log"
    process = python(
        "from prum.federation.router.cli import router_app; router_app()",
        "serve",
        "--pki-dir",
        str(federation.pki),
        "--directory",
        str(federation.directory_file),
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        *options,
        log=log,
        env=env,
    )
    url = f"https://127.0.0.1:{port}"
    wait_until_up(f"{url}/v1/health", federation.tls("AT"), process)
    return RouterProcess(url, data_dir, log, process)


@pytest.fixture(scope="module")
def router(federation: Federation) -> Iterator[RouterProcess]:
    process = start_router(federation, "router")
    yield process
    stop(process.process)


# --- helpers --------------------------------------------------------------------------


PROBE = b"\xff\xd8\xff\xe0probe"


def search_request(requester: str = "AT", **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "request_number": f"{requester}-2026-{uuid.uuid4().hex[:6]}",
        "requesting_party": requester,
        "requesting_user": "officer.7",
        "category": "face",
        "purpose": "investigation",
        "offence": OFFENCE,
        "max_penalty_months": 36,
        "case_reference": f"{requester}/2026/123",
        "targets": ["DE"],
        "probe": Probe(data=base64.b64encode(PROBE)),
        "deadline_ms": 5000,
        **fields,
    }
    return SearchRequest(**values).model_dump(mode="json")


def signed(federation: Federation, party: str, body: dict[str, Any]) -> dict[str, Any]:
    return Signer(federation.pki, party).sign(body).to_dict()


def post(
    federation: Federation,
    router: RouterProcess,
    path: str,
    envelope: Any,
    *,
    via: str = "AT",
) -> httpx.Response:
    with httpx.Client(verify=federation.tls(via), timeout=30) as client:
        return client.post(f"{router.url}{path}", json=envelope)


def search(
    federation: Federation, router: RouterProcess, requester: str = "AT", **fields: Any
) -> dict[str, Any]:
    """Search through the router; the router's signature is checked, the body returned."""
    body = search_request(requester, **fields)
    envelope = signed(federation, requester, body)
    response = post(federation, router, "/v1/search", envelope, via=requester)
    assert response.status_code == 200, response.text
    reply = Verifier(federation.pki).verify(response.json(), expected_signer="ROUTER")
    assert reply.body["kind"] == "search_reply"
    assert reply.body["in_reply_to"] == body["message_id"]
    assert reply.body["request_number"] == body["request_number"]
    return reply.body


def statuses(reply: dict[str, Any]) -> list[tuple[str, str]]:
    return [(r["party"], r["status"]) for r in reply["replies"]]


def error_of(reply: dict[str, Any], party: str) -> dict[str, Any]:
    (entry,) = [r for r in reply["replies"] if r["party"] == party]
    return dict(entry["error"])


# --- search -------------------------------------------------------------------------------


def test_search_fans_out_and_returns_one_reply_per_target(
    federation: Federation, router: RouterProcess
) -> None:
    reply = search(federation, router, targets=["DE", "SE", "PL"])
    assert statuses(reply) == [("DE", "answered"), ("SE", "no_hit"), ("PL", "refused")]
    de = reply["replies"][0]
    assert [c["reference"] for c in de["candidates"]] == ["DE-REF-0001"]
    assert de["candidates"][0]["image"] == federation.secrets["image"]
    assert error_of(reply, "PL")["code"] == "capacity_exhausted"


def test_the_node_gets_the_requesters_envelope_unchanged(
    federation: Federation, router: RouterProcess
) -> None:
    reply = search(federation, router, targets=["SE"])
    seen = federation.seen("SE")["searches"][-1]
    assert seen == {"peer": "ROUTER", "signer": "AT", "id": reply["in_reply_to"]}


def test_all_is_every_other_party_offering_the_category(
    federation: Federation, router: RouterProcess
) -> None:
    reply = search(federation, router, "DE", category="dna", targets="all")
    assert statuses(reply) == [("AT", "answered"), ("SE", "no_hit")]


def test_a_party_not_accepting_the_purpose_is_refused_by_the_router_unasked(
    federation: Federation, router: RouterProcess
) -> None:
    before = len(federation.seen("SE")["searches"])
    reply = search(federation, router, category="dna", purpose="missing_person", targets="all")
    assert statuses(reply) == [("DE", "answered"), ("SE", "refused")]
    assert error_of(reply, "SE")["code"] == "purpose_not_allowed"
    assert len(federation.seen("SE")["searches"]) == before


def test_a_missing_person_search_passes_the_router_without_an_offence(
    federation: Federation, router: RouterProcess
) -> None:
    reply = search(
        federation,
        router,
        category="dna",
        purpose="missing_person",
        offence=None,
        max_penalty_months=None,
        targets=["DE"],
    )
    assert statuses(reply) == [("DE", "answered")]


def test_a_criminal_search_without_its_offence_is_refused_by_the_router(
    federation: Federation, router: RouterProcess
) -> None:
    body = search_request()
    del body["offence"]
    response = post(federation, router, "/v1/search", signed(federation, "AT", body))
    assert response.status_code == 400 and "offence" in response.json()["message"]


def test_a_named_target_not_offering_the_category_is_refused_unasked(
    federation: Federation, router: RouterProcess
) -> None:
    before = len(federation.seen("PL")["searches"])
    reply = search(federation, router, category="dna", targets=["PL", "DE"])
    assert statuses(reply) == [("PL", "refused"), ("DE", "answered")]
    assert error_of(reply, "PL")["code"] == "category_not_offered"
    assert len(federation.seen("PL")["searches"]) == before


def test_a_silent_node_times_out_and_the_call_keeps_the_deadline(
    federation: Federation, router: RouterProcess
) -> None:
    started = time.monotonic()
    reply = search(federation, router, targets=["DE", "HU"], deadline_ms=1500)
    elapsed = time.monotonic() - started
    assert statuses(reply) == [("DE", "answered"), ("HU", "timeout")]
    assert error_of(reply, "HU")["code"] == "no_answer"
    assert 1.5 <= elapsed < 2.5


def test_overload_is_shed_at_once_with_503_and_the_running_search_keeps_its_deadline(
    federation: Federation,
) -> None:
    busy = start_router(federation, "busy-router", env={"PRUM_ROUTER_MAX_IN_FLIGHT": "1"})
    try:
        results: dict[str, Any] = {}

        def slow_search() -> None:  # HU never answers: this one holds the only slot
            started = time.monotonic()
            results["reply"] = search(federation, busy, targets=["DE", "HU"], deadline_ms=2000)
            results["elapsed"] = time.monotonic() - started

        first = threading.Thread(target=slow_search)
        first.start()
        time.sleep(0.5)
        started = time.monotonic()
        envelope = signed(federation, "AT", search_request(targets=["DE"]))
        shed = post(federation, busy, "/v1/search", envelope)
        shed_after = time.monotonic() - started
        first.join(10)
        assert shed.status_code == 503
        assert shed.json()["code"] == "router_busy"
        assert shed.headers["retry-after"] == "1"
        assert shed_after < 0.5  # refused at once, not queued
        assert statuses(results["reply"]) == [("DE", "answered"), ("HU", "timeout")]
        assert 2.0 <= results["elapsed"] < 3.0
        with httpx.Client(verify=federation.tls("AT")) as client:
            live = client.get(f"{busy.url}/v1/stats").json()["router"]
        assert live["searches_shed"] == 1 and live["searches_in_flight"] == 0
        again = search(federation, busy, targets=["DE"])  # the slot is free again
        assert statuses(again) == [("DE", "answered")]
    finally:
        stop(busy.process)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (a supervisor's replicas)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.postgres
def test_replicas_share_one_address_and_each_writes_a_chain_that_verifies(
    federation: Federation, postgres_url: str
) -> None:
    from prum.audit.log import chains

    audit_url = postgres_url.replace("postgresql://", "postgresql+psycopg://")
    fleet = start_router(federation, "replicas", "--replicas", "2", "--audit-url", audit_url)
    try:
        deadline = time.monotonic() + 30
        while len(_children(fleet.process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        first, second = _children(fleet.process.pid)
        # Ready when both answer: a replica still importing leaves the kernel one
        # listener, and every connection goes to the other.
        warm = 0
        while chains(audit_url) != ["r1", "r2"] and time.monotonic() < deadline + 30:
            with contextlib.suppress(httpx.TransportError):
                search(federation, fleet, targets=["DE"])
                warm += 1
        assert chains(audit_url) == ["r1", "r2"], "one replica never answered"
        answered = 0
        for n in range(24):  # a new connection each: the kernel spreads them over both
            if n == 12:
                os.kill(first, signal.SIGKILL)  # a replica dies; the other answers on
            for _ in range(20):  # until a replica is listening again (a few ms)
                try:
                    reply = search(federation, fleet, targets=["DE", "SE"])
                    break
                except (httpx.TransportError, AssertionError):
                    time.sleep(0.1)
            assert statuses(reply) == [("DE", "answered"), ("SE", "no_hit")]
            answered += 1
        while len(_children(fleet.process.pid)) < 2 and time.monotonic() < deadline + 30:
            time.sleep(0.1)
        assert second in _children(fleet.process.pid)  # the supervisor restarted only r1
        assert len(_children(fleet.process.pid)) == 2
    finally:
        stop(fleet.process)
    assert answered == 24
    names = chains(audit_url)
    assert names == ["r1", "r2"]
    received = 0
    for name in names:
        log = AuditLog(audit_url, party="ROUTER", chain=name)
        report = log.verify(AuditVerifier(federation.pki))
        assert report.ok, report.problem
        assert report.signatures_checked
        received += sum(1 for e in log.entries(kind="search_received", limit=1000))
        log.close()
    assert received == warm + answered  # every search logged once, by the replica that took it


def test_a_down_node_is_unavailable(federation: Federation, router: RouterProcess) -> None:
    reply = search(federation, router, targets=["CZ"])
    assert statuses(reply) == [("CZ", "unavailable")]
    assert error_of(reply, "CZ")["code"] == "unreachable"


def test_a_non_json_answer_is_an_error_saying_so(
    federation: Federation, router: RouterProcess
) -> None:
    reply = search(federation, router, targets=["FR"])
    assert statuses(reply) == [("FR", "error")]
    error = error_of(reply, "FR")
    assert error["code"] == "invalid_reply"
    assert error["message"] == "the answer of FR is not JSON"


def test_an_answer_signed_by_another_party_is_an_error(
    federation: Federation, router: RouterProcess
) -> None:
    reply = search(federation, router, targets=["NL"])
    assert statuses(reply) == [("NL", "error")]
    error = error_of(reply, "NL")
    assert error["code"] == "not_authorised"
    assert "signed by DE" in error["message"]


# --- refusals -----------------------------------------------------------------------------


def test_an_altered_body_is_refused_as_a_bad_signature(
    federation: Federation, router: RouterProcess
) -> None:
    envelope = signed(federation, "AT", search_request())
    envelope["body"]["targets"] = ["DE", "SE"]
    response = post(federation, router, "/v1/search", envelope)
    assert response.status_code == 403
    assert response.json()["code"] == "bad_signature"


def test_an_envelope_signed_by_another_party_than_the_tls_peer_is_refused(
    federation: Federation, router: RouterProcess
) -> None:
    envelope = signed(federation, "AT", search_request())
    response = post(federation, router, "/v1/search", envelope, via="DE")
    assert response.status_code == 403
    assert response.json()["code"] == "not_authorised"


def test_the_requesting_party_must_be_the_signer(
    federation: Federation, router: RouterProcess
) -> None:
    body = search_request("DE")
    response = post(federation, router, "/v1/search", signed(federation, "AT", body))
    assert response.status_code == 403
    assert response.json()["code"] == "not_authorised"


def test_a_replayed_search_is_refused(federation: Federation, router: RouterProcess) -> None:
    envelope = signed(federation, "AT", search_request(targets=["SE"]))
    assert post(federation, router, "/v1/search", envelope).status_code == 200
    response = post(federation, router, "/v1/search", envelope)
    assert response.status_code == 403
    assert response.json()["code"] == "replay"


def exchange(url: str, tls: ssl.SSLContext) -> bytes:
    """Send a raw HTTP request over TLS; what the server answers (b"" if it hangs up).

    In TLS 1.3 the server checks the client certificate after the client has finished
    its side of the handshake, so a refused client learns it on its first read.
    """
    host, port = url.removeprefix("https://").split(":")
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        tls.wrap_socket(raw, server_hostname=host) as conn,
    ):
        conn.sendall(b"GET /v1/health HTTP/1.1\r\nhost: router\r\n\r\n")
        return conn.recv(1024)


def test_a_client_with_a_federation_certificate_connects(
    federation: Federation, router: RouterProcess
) -> None:
    assert exchange(router.url, federation.tls("AT")).startswith(b"HTTP/1.1 200 OK")


def test_a_client_certificate_from_another_ca_cannot_connect(
    federation: Federation, router: RouterProcess, tmp_path: Path
) -> None:
    rogue = tmp_path / "rogue"
    init_ca(rogue, name="Rogue CA")
    issue(rogue, "AT", role="node")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls.load_verify_locations(federation.pki / "ca.pem")  # it trusts the real router
    tls.load_cert_chain(rogue / "AT.pem", rogue / "AT.key")
    assert exchange(router.url, tls) == b""


def test_a_client_without_certificate_cannot_connect(
    federation: Federation, router: RouterProcess
) -> None:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls.load_verify_locations(federation.pki / "ca.pem")
    assert exchange(router.url, tls) == b""


def test_an_unknown_target_is_bad_input(federation: Federation, router: RouterProcess) -> None:
    envelope = signed(federation, "AT", search_request(targets=["DE", "XX"]))
    response = post(federation, router, "/v1/search", envelope)
    assert response.status_code == 400
    assert response.json()["code"] == "unknown_party"


def test_europol_may_search_within_its_scope(federation: Federation, router: RouterProcess) -> None:
    reply = search(federation, router, "EUROPOL", targets=["SE"])
    assert statuses(reply) == [("SE", "no_hit")]


@pytest.mark.parametrize(
    ("category", "purpose"), [("dna", "missing_person"), ("finger", "investigation")]
)
def test_europol_is_refused_outside_its_scope(
    federation: Federation, router: RouterProcess, category: str, purpose: str
) -> None:
    body = search_request("EUROPOL", category=category, purpose=purpose)
    response = post(
        federation, router, "/v1/search", signed(federation, "EUROPOL", body), via="EUROPOL"
    )
    assert response.status_code == 403
    assert response.json()["code"] == "out_of_scope"


def test_malformed_json_is_bad_input(federation: Federation, router: RouterProcess) -> None:
    with httpx.Client(verify=federation.tls("AT")) as client:
        response = client.post(
            f"{router.url}/v1/search",
            content=b'{"body": {"kind": ',
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_request"


def test_an_envelope_with_wrong_types_is_bad_input(
    federation: Federation, router: RouterProcess
) -> None:
    envelope = {"body": "search", "signer": 7, "cert": "", "alg": "ES256", "signature": ""}
    response = post(federation, router, "/v1/search", envelope)
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_request"


def test_an_oversized_body_is_refused_with_413(
    federation: Federation, router: RouterProcess
) -> None:
    with httpx.Client(verify=federation.tls("AT")) as client:
        response = client.post(
            f"{router.url}/v1/search",
            content=b" " * (43 * 1024 * 1024),
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"


# --- deliver ------------------------------------------------------------------------------


def core_data_request(holder: str, requester: str = "AT") -> dict[str, Any]:
    return CoreDataRequest(
        requesting_party=requester,
        holder_party=holder,
        reference=f"{holder}-REF-0001",
        category="face",
        search_message_id=str(uuid.uuid4()),
        requesting_user="officer.7",
        verified_by="examiner.3",
        facts="Burglary of a pharmacy in Graz on 3 March; the probe is a CCTV still.",
        offence=OFFENCE,
        max_penalty_months=36,
        case_reference="AT/2026/123",
    ).model_dump(mode="json")


def test_a_core_data_request_reaches_the_holders_inbox_and_the_ack_comes_back(
    federation: Federation, router: RouterProcess
) -> None:
    envelope = signed(federation, "AT", core_data_request("DE"))
    message_id = envelope["body"]["message_id"]
    response = post(federation, router, "/v1/deliver", envelope)
    assert response.status_code == 200
    assert response.json() == {"accepted": message_id, "duplicate": False}
    assert federation.seen("DE")["inbox"][message_id] == "ROUTER:AT:core_data_request"
    assert message_id not in federation.seen("AT")["inbox"]
    again = post(federation, router, "/v1/deliver", envelope)  # the outbox resends
    assert again.json() == {"accepted": message_id, "duplicate": True}


def test_a_core_data_reply_goes_back_to_the_requester(
    federation: Federation, router: RouterProcess
) -> None:
    body = CoreDataReply(
        in_reply_to=str(uuid.uuid4()),
        requesting_party="AT",
        holder_party="DE",
        reference="DE-REF-0001",
        decision="refused",
        reason="disproportionate",
    ).model_dump(mode="json")
    response = post(federation, router, "/v1/deliver", signed(federation, "DE", body), via="DE")
    assert response.status_code == 200
    assert federation.seen("AT")["inbox"][body["message_id"]] == "ROUTER:DE:core_data_reply"


def test_a_hold_goes_to_the_requester_and_a_cancellation_to_the_holder(
    federation: Federation, router: RouterProcess
) -> None:
    now = dt.datetime.now(dt.UTC)
    common = {"in_reply_to": str(uuid.uuid4()), "reference": "DE-REF-0001", "at": now}
    hold = CoreDataHold(
        requesting_party="AT",
        holder_party="DE",
        on_hold=True,
        reason=HoldReason.JUDICIAL_AUTHORISATION,
        **common,
    ).model_dump(mode="json")
    held = post(federation, router, "/v1/deliver", signed(federation, "DE", hold), via="DE")
    assert held.status_code == 200
    assert federation.seen("AT")["inbox"][hold["message_id"]] == "ROUTER:DE:core_data_hold"
    cancel = CoreDataCancelled(
        requesting_party="AT",
        holder_party="DE",
        reason=CancelReason.VERDICT_REVISED,
        erased=True,
        **common,
    ).model_dump(mode="json")
    # Only the requester may withdraw its request.
    forged = post(federation, router, "/v1/deliver", signed(federation, "DE", cancel), via="DE")
    assert forged.status_code == 403 and forged.json()["code"] == "not_authorised"
    sent = post(federation, router, "/v1/deliver", signed(federation, "AT", cancel))
    assert sent.status_code == 200
    assert federation.seen("DE")["inbox"][cancel["message_id"]] == "ROUTER:AT:core_data_cancelled"


def test_delivery_to_a_down_destination_is_503_so_the_sender_retries(
    federation: Federation, router: RouterProcess
) -> None:
    envelope = signed(federation, "AT", core_data_request("CZ"))
    response = post(federation, router, "/v1/deliver", envelope)
    assert response.status_code == 503
    assert response.json()["code"] == "destination_unavailable"


def test_a_destination_refusing_for_good_is_relayed_as_delivery_rejected(
    federation: Federation, router: RouterProcess
) -> None:
    envelope = signed(federation, "AT", core_data_request("FR"))
    response = post(federation, router, "/v1/deliver", envelope)
    assert response.status_code == 403
    error = response.json()
    assert error["code"] == "delivery_rejected"
    assert error["details"] == {
        "destination": "FR",
        "destination_status": 403,
        "destination_code": "not_verified",
    }


def test_a_stale_core_data_message_is_refused_as_a_replay(
    federation: Federation, router: RouterProcess
) -> None:
    body = core_data_request("DE")
    body["issued_at"] = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6)).isoformat()
    response = post(federation, router, "/v1/deliver", signed(federation, "AT", body))
    assert response.status_code == 403
    assert response.json()["code"] == "replay"
    assert body["message_id"] not in federation.seen("DE")["inbox"]


def test_only_the_requesting_party_may_send_its_core_data_request(
    federation: Federation, router: RouterProcess
) -> None:
    envelope = signed(federation, "DE", core_data_request("SE", requester="AT"))
    response = post(federation, router, "/v1/deliver", envelope, via="DE")
    assert response.status_code == 403
    assert response.json()["code"] == "not_authorised"


# --- directory, statistics, OpenAPI -------------------------------------------------------


def test_the_directory_shows_parties_and_categories_but_no_urls(
    federation: Federation, router: RouterProcess
) -> None:
    response = httpx.get(f"{router.url}/v1/directory", verify=federation.tls("SE"))
    parties = {p["party"]: p for p in response.json()["parties"]}
    assert parties["SE"] == {"party": "SE", "offers": ["face", "dna"], "accepts": ["investigation"]}
    assert "127.0.0.1" not in response.text


def test_statistics_count_searches_per_party(federation: Federation, router: RouterProcess) -> None:
    search(federation, router, targets=["SE"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the audit trail writes shortly after the reply
        stats = httpx.get(f"{router.url}/v1/stats", verify=federation.tls("SE")).json()
        if stats["router"]["audit_pending"] == 0:
            break
        time.sleep(0.1)
    totals = stats["statistics"]["totals"]
    assert totals["SE"]["face"]["answers"] >= 2
    assert totals["AT"]["face"]["no_hits"] >= 1
    assert federation.secrets["name"] not in json.dumps(stats)


def test_the_openapi_document_describes_the_envelope(
    federation: Federation, router: RouterProcess
) -> None:
    document = httpx.get(f"{router.url}/openapi.json", verify=federation.tls("AT")).json()
    assert {"/v1/search", "/v1/deliver", "/v1/directory", "/v1/stats", "/v1/health"} <= set(
        document["paths"]
    )
    assert set(document["components"]["schemas"]["Envelope"]["properties"]) == {
        "body",
        "signer",
        "cert",
        "alg",
        "signature",
    }


# --- no payload at rest -------------------------------------------------------------------


def test_the_router_keeps_no_payload(federation: Federation) -> None:
    """After searches and a core-data release through a fresh router, nothing of the
    probe, the candidate or the released data is anywhere in its data directory (the
    audit database included) or in its output; the metadata is in its audit log."""
    marker = f"PROBE-MARKER-{uuid.uuid4().hex}".encode()
    probe = b"\xff\xd8\xff\xe0" + marker + os.urandom(64)
    surname = f"Wolkenstein-{uuid.uuid4().hex[:10]}"
    process = start_router(federation, "private-router")
    try:
        body = search_request(targets=["DE", "SE", "FR"])
        body["probe"]["data"] = base64.b64encode(probe).decode()
        response = post(federation, process, "/v1/search", signed(federation, "AT", body))
        assert response.status_code == 200
        assert federation.secrets["name"] in response.text  # it did pass through
        release = CoreDataReply(
            in_reply_to=str(uuid.uuid4()),
            requesting_party="AT",
            holder_party="DE",
            reference="DE-REF-0001",
            decision="released",
            core_data=CoreData(surnames=[surname], first_names=["Ottilie"]),
        ).model_dump(mode="json")
        reply = post(
            federation, process, "/v1/deliver", signed(federation, "DE", release), via="DE"
        )
        assert reply.status_code == 200
    finally:
        stop(process.process)
    secrets = {
        "probe marker": marker,
        "probe (base64)": base64.b64encode(probe)[:40],
        "candidate name": federation.secrets["name"].encode(),
        "candidate image (base64)": federation.secrets["image"].encode(),
        "core data surname": surname.encode(),
    }
    files = [p for p in process.data_dir.rglob("*") if p.is_file()] + [process.log]
    assert any(p.name.startswith("audit.sqlite") for p in files)
    for path in files:
        content = path.read_bytes()
        for what, needle in secrets.items():
            assert needle not in content, f"{what} found in {path}"

    log = AuditLog(f"sqlite:///{process.data_dir / 'audit.sqlite'}", party="ROUTER")
    try:
        assert log.verify(AuditVerifier(federation.pki)).ok
        entries = {(e.event.kind, e.event.requested_party): e.event for e in log.entries()}
    finally:
        log.close()
    received = entries[("search_received", None)]
    assert (received.requesting_party, received.category, received.offence) == (
        "AT",
        "face",
        OFFENCE,
    )
    assert received.case_reference == "AT/2026/123"
    assert received.message_id == body["message_id"]
    answered = entries[("search_answered", "DE")]
    assert (answered.outcome, answered.candidate_count) == ("answered", 1)
    assert answered.signature is not None
    assert entries[("search_answered", "FR")].outcome == "error"
    assert entries[("core_data_decided", "DE")].outcome == "released"


# --- the audit trail: nothing is done that cannot be logged ------------------------------


class StubLog:
    """An audit log whose database fails, or stalls, on command."""

    statistics = None

    def __init__(self) -> None:
        self.failing = False
        self.open = threading.Event()
        self.open.set()
        self.written: list[Any] = []
        self.batches: list[int] = []  # events per transaction

    def append_many(self, events: list[Any]) -> list[int]:
        self.open.wait()
        if self.failing:
            raise StorageError("database is locked")
        self.written += events
        self.batches.append(len(events))
        return list(range(len(self.written) - len(events) + 1, len(self.written) + 1))

    def close(self) -> None:
        pass


def wait_for(condition: Any) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_the_router_refuses_work_while_its_audit_log_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(journal, "RETRY_SECONDS", 0.05)
    log = StubLog()
    log.failing = True
    trail = AuditTrail(log, backlog=10)  # type: ignore[arg-type]
    trail.record(audit_event(EventKind.SEARCH_RECEIVED, requesting_party="AT"))
    wait_for(lambda: trail.failure == "storage_error")
    with pytest.raises(AuditUnavailable, match="failing"):
        trail.ready()
    log.failing = False  # the database recovers: the entry is written after all
    trail.join()
    trail.ready()
    assert [e.requesting_party for e in log.written] == ["AT"]
    trail.close()


def test_the_router_refuses_work_while_its_audit_log_is_behind() -> None:
    log = StubLog()
    log.open.clear()
    trail = AuditTrail(log, backlog=10)  # type: ignore[arg-type]
    for n in range(11):
        trail.record(audit_event(EventKind.REFUSED, detail=f"refusal {n}"))
    with pytest.raises(AuditUnavailable, match="behind"):
        trail.ready()
    log.open.set()
    trail.join()
    trail.ready()
    assert [e.detail for e in log.written] == [f"refusal {n}" for n in range(11)]  # in order
    trail.close()


def test_the_audit_trail_writes_everything_queued_in_one_transaction() -> None:
    log = StubLog()
    log.open.clear()
    trail = AuditTrail(log, backlog=100)  # type: ignore[arg-type]
    trail.record(audit_event(EventKind.SEARCH_RECEIVED, requesting_party="AT", detail="0"))
    for n in range(1, 29):
        trail.record(audit_event(EventKind.SEARCH_ANSWERED, requested_party="DE", detail=f"{n}"))
    assert trail.pending == 29  # written means committed: the one in hand counts
    log.open.set()
    trail.join()
    assert trail.pending == 0
    assert log.batches in ([1, 28], [29])  # the writer may have taken the first alone
    assert [e.detail for e in log.written] == [str(n) for n in range(29)]
    trail.close()


def test_an_unloggable_event_is_dropped_alone_and_the_others_are_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = AuditLog(f"sqlite:///{tmp_path / 'audit.sqlite'}", party="ROUTER")
    gate = threading.Event()
    append_many = log.append_many

    def gated(events: list[Any]) -> list[int]:
        gate.wait()
        return append_many(events)

    monkeypatch.setattr(log, "append_many", gated)
    trail = AuditTrail(log, backlog=100)
    sneaky = audit_event(EventKind.REFUSED, detail="ok").model_copy(update={"detail": "x" * 999})
    one, two = (audit_event(EventKind.REFUSED, detail=d) for d in ("one", "two"))
    for event in (one, sneaky, two):
        trail.record(event)
    gate.set()
    trail.join()
    assert [e.event.detail for e in reversed(log.entries())] == ["one", "two"]
    assert trail.failure is None
    trail.close()


def test_a_field_the_log_cannot_hold_is_left_out_and_named() -> None:
    event = audit_event(EventKind.SEARCH_RECEIVED, requesting_party="AT", request_number="AT-1\n2")
    assert event.requesting_party == "AT"
    assert event.request_number is None
    assert event.detail == "not loggable: request_number"
