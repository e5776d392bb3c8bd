"""The kit's side of the wire: the test PKI, requests signed as requesting parties and
posted with the ROUTER certificate, lenient readers of what comes back, and the
router's delivery endpoint on which the tested node's step-2 replies arrive.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError

from prum.errors import BadInput, PrumError
from prum.federation.messages import CoreDataReply, CountryReply
from prum.federation.security import pki
from prum.federation.security.signing import Signer, Verifier

ROUTER = "ROUTER"
# The parties the kit signs as; the three first that are not the tested party serve as
# the requester, the requester whose daily capacity is exhausted, and an impostor.
KIT_PARTIES = ("AT", "BE", "LU", "MT")
ENVELOPE_FIELDS = frozenset({"alg", "cert", "signature", "signer", "body"})


def kit_parties(tested: str) -> tuple[str, str, str]:
    requester, exhausted, impostor = [p for p in KIT_PARTIES if p != tested][:3]
    return requester, exhausted, impostor


def make_test_pki(directory: Path, party: str, hosts: list[str], router_hosts: list[str]) -> Path:
    """A test CA with the kit's certificates (ROUTER and its requesting parties) and the
    tested party's; returns the tested party's certificate (its key beside it)."""
    pki.validate_party(party)
    pki.init_ca(directory, name="Prüm conformance test CA")
    pki.issue(directory, ROUTER, role="router", hosts=router_hosts)
    for requester in kit_parties(party):
        pki.issue(directory, requester, role="node")
    return pki.issue(
        directory, party, role=pki.expected_role(party), hosts=hosts or pki.DEFAULT_HOSTS
    ).cert_path


@dataclass
class Answer:
    """What one HTTP exchange gave: a status and body, or no answer at all."""

    status: int | None  # None: the connection or TLS handshake failed
    content: bytes = b""
    seconds: float = 0.0
    failure: str = ""

    def json(self) -> Any:
        try:
            return json.loads(self.content)
        except ValueError:
            return None

    def describe(self) -> str:
        if self.status is None:
            return f"no answer ({self.failure})"
        return f"HTTP {self.status} {self.content[:160].decode('utf-8', 'replace')!r}"


def error_shape_problem(answer: Answer) -> str | None:
    """Why an error answer is not ``{"code", "message", "details"}`` (docs/protocol.md,
    Errors), or None."""
    body = answer.json()
    if not isinstance(body, dict):
        return f"the error is not a JSON object: {answer.describe()}"
    problems = [
        name
        for name, kind in (("code", str), ("message", str), ("details", dict))
        if not isinstance(body.get(name), kind)
    ]
    if problems:
        return f"the error lacks {', '.join(problems)} of the right type: {answer.describe()}"
    return None


def body_of(answer: Answer) -> dict[str, Any] | None:
    """The message in an answer: an envelope's body, or a bare message (judged by the
    envelope checks, not here)."""
    data = answer.json()
    if isinstance(data, dict) and data.keys() >= ENVELOPE_FIELDS:
        data = data["body"]
    return data if isinstance(data, dict) else None


def country_reply(answer: Answer) -> CountryReply:
    """The CountryReply in a 200 answer; Failed-worthy problems as BadInput."""
    if answer.status != 200:
        raise BadInput(f"expected a signed CountryReply, got {answer.describe()}")
    body = body_of(answer)
    if body is None:
        raise BadInput(f"the answer is not a JSON object: {answer.describe()}")
    try:
        return CountryReply.model_validate(body)
    except ValidationError as exc:
        raise BadInput(f"the answer is not a valid CountryReply: {_first(exc)}") from None


def _first(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}"


class Wire:
    """Signs as the kit's parties and talks to the tested node as ROUTER."""

    def __init__(self, pki_dir: Path, party: str, url: str, *, timeout: float = 30.0) -> None:
        self.pki_dir = Path(pki_dir)
        self.party = party
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.verifier = Verifier(self.pki_dir)
        self.requester, self.exhausted, self.impostor = kit_parties(party)
        self.signers = {p: Signer(self.pki_dir, p) for p in kit_parties(party)}
        self._clients: dict[str, httpx.Client] = {}

    def client(self, as_party: str | None = ROUTER) -> httpx.Client:
        """An HTTP client presenting ``as_party``'s certificate (None: no certificate)."""
        key = as_party or ""
        if key not in self._clients:
            if as_party is None:
                context = ssl.create_default_context(cafile=self.pki_dir / pki.CA_CERT)
            else:
                context = pki.client_context(self.pki_dir, as_party)
            self._clients[key] = httpx.Client(verify=context, timeout=self.timeout)
        return self._clients[key]

    def sign(self, body: Mapping[str, Any], as_party: str | None = None) -> bytes:
        return self.signers[as_party or self.requester].sign(body).to_json()

    def post(
        self, path: str, content: bytes, *, client: httpx.Client | None = None, **kw: Any
    ) -> Answer:
        return self.exchange("POST", path, content=content, client=client, **kw)

    def exchange(
        self, method: str, path: str, *, client: httpx.Client | None = None, **kw: Any
    ) -> Answer:
        headers = {"content-type": "application/json"}
        started = time.perf_counter()
        try:
            response = (client or self.client()).request(
                method, self.url + path, headers=headers, **kw
            )
        except httpx.HTTPError as exc:
            return Answer(None, seconds=time.perf_counter() - started, failure=_text(exc))
        return Answer(response.status_code, response.content, time.perf_counter() - started)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


@contextmanager
def foreign_party(party: str) -> Iterator[tuple[Path, Signer]]:
    """A certificate and signer for ``party`` from a CA the tested node does not trust."""
    with tempfile.TemporaryDirectory(prefix="prum-foreign-ca-") as folder:
        directory = Path(folder)
        pki.init_ca(directory, name="Not the federation CA")
        pki.issue(directory, party, role="node")
        yield directory, Signer(directory, party)


# --- the router's delivery endpoint ----------------------------------------------------


@dataclass
class Delivery:
    """One POST /v1/deliver the tested node made to the kit."""

    peer: str  # the CN of the TLS client certificate
    raw: bytes
    at: float
    signer_problem: str | None  # None: signed by the tested party, verified
    reply: CoreDataReply | None
    problem: str | None  # why it is not a valid CoreDataReply
    answered: int  # the HTTP status the kit gave


@dataclass
class RouterListener:
    """The kit's ``POST /v1/deliver``: where the tested node's outbox sends its replies
    (the node's router URL points here). The first delivery of each message is answered
    503, as a router whose destination is down would, so the node's retry is seen."""

    host: str
    port: int
    pki_dir: Path
    party: str
    deliveries: list[Delivery] = field(default_factory=list)
    _server: http.server.ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        verifier = Verifier(self.pki_dir)
        context = pki.server_context(self.pki_dir, ROUTER)
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return  # the report says what arrived

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                conn = self.connection
                assert isinstance(conn, ssl.SSLSocket)
                peer = pki.peer_identity(conn).party
                if self.path != "/v1/deliver":
                    self._send(404, {"code": "unknown_reference", "message": "", "details": {}})
                    return
                self._send(*listener.receive(verifier, peer, raw))

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                if status == 503:
                    self.send_header("Retry-After", "1")
                self.end_headers()
                self.wfile.write(data)

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET

        class Server(http.server.ThreadingHTTPServer):
            address_family = family
            daemon_threads = True

            def get_request(self) -> tuple[socket.socket, Any]:
                sock, address = super().get_request()
                return context.wrap_socket(sock, server_side=True), address

        try:
            self._server = Server((self.host, self.port), Handler)
        except OSError as exc:
            raise BadInput(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from None
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def receive(self, verifier: Verifier, peer: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        signer_problem: str | None = None
        try:
            message = verifier.verify_json(raw, expected_signer=self.party)
            body: Any = message.body
        except PrumError as exc:
            signer_problem = exc.message
            body = body_of(Answer(200, raw))
        reply, problem = None, None
        try:
            reply = CoreDataReply.model_validate(body)
        except ValidationError as exc:
            problem = _first(exc)
        with self._lock:
            seen = reply is not None and any(
                d.reply is not None and d.reply.message_id == reply.message_id
                for d in self.deliveries
            )
            status = 200 if seen or reply is None else 503
            if reply is None and isinstance(body, dict) and body.get("kind") != "core_data_reply":
                status = 200  # another step-2 message (a withdrawal notice): not judged here
            self.deliveries.append(
                Delivery(peer, raw, time.monotonic(), signer_problem, reply, problem, status)
            )
        if status == 503:
            return 503, {"code": "destination_unavailable", "message": "retry", "details": {}}
        accepted = reply.message_id if reply else (body or {}).get("message_id")
        return 200, {"accepted": accepted, "duplicate": seen}

    def bodies(self) -> list[tuple[Delivery, dict[str, Any]]]:
        """Every delivery with the message it carried (any kind), in arrival order."""
        with self._lock:
            deliveries = list(self.deliveries)
        out = []
        for delivery in deliveries:
            with contextlib.suppress(ValueError):
                body = body_of(Answer(200, delivery.raw))
                if body is not None:
                    out.append((delivery, body))
        return out

    def replies_to(self, message_id: str) -> list[Delivery]:
        with self._lock:
            return [
                d
                for d in self.deliveries
                if d.reply is not None and d.reply.in_reply_to == message_id
            ]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def listen_address(text: str) -> tuple[str, int]:
    """``host:port`` of the kit's delivery endpoint."""
    parts = urlsplit(f"//{text}")
    if parts.hostname is None or parts.port is None:
        raise BadInput(f"--listen takes host:port, not {text!r}")
    return parts.hostname, parts.port
