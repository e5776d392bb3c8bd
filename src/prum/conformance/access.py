"""Checks of the connection and of error answers: mutual TLS 1.3 with certificates of
the federation CA, only the router may post, and every error in the one shape with
the HTTP status of its family."""

from __future__ import annotations

import select
import socket
import ssl
from urllib.parse import urlsplit

import httpx

from prum.conformance.checks import Context, Failed, check, expect
from prum.conformance.wire import ROUTER, Answer, error_shape_problem, foreign_party
from prum.federation.messages import Category, CoreDataRequest
from prum.federation.security import pki
from prum.federation.transport import MAX_BODY_BYTES

PROTOCOL = "docs/protocol.md"


def _refused(answer: Answer, statuses: set[int], what: str) -> str:
    """Pass detail when ``answer`` is an error of one of ``statuses`` in the error shape."""
    expect(
        answer.status in statuses,
        f"{what}: expected HTTP {sorted(statuses)}, got {answer.describe()}",
    )
    problem = error_shape_problem(answer)
    expect(problem is None, f"{what}: {problem}")
    return f"HTTP {answer.status} {answer.json()['code']}"


def _no_connection(answer: Answer, what: str) -> str:
    """Pass detail when the node refused the connection (or, at most, answered 401/403)."""
    if answer.status is None:
        return f"connection refused ({answer.failure[:80]})"
    expect(answer.status in (401, 403), f"{what} was served: {answer.describe()}")
    return f"HTTP {answer.status}"


@check(
    "tls.health",
    f"{PROTOCOL}, Router (GET /v1/health)",
    "a router sees whether a node is up before it forwards to it",
)
def health(ctx: Context) -> str:
    answer = ctx.wire.exchange("GET", "/v1/health")
    expect(answer.status == 200, f"expected HTTP 200, got {answer.describe()}")
    body = answer.json()
    expect(
        isinstance(body, dict) and body.get("status") == "ok",
        f"not {{'status': 'ok'}}: {answer.describe()}",
    )
    return "HTTP 200 {'status': 'ok'}"


def _handshake(ctx: Context, *, maximum: ssl.TLSVersion | None = None) -> str:
    url = urlsplit(ctx.wire.url)
    context = ssl.create_default_context(cafile=ctx.wire.pki_dir / pki.CA_CERT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if maximum is not None:
        context.maximum_version = maximum
    context.load_cert_chain(
        pki.cert_path(ctx.wire.pki_dir, ROUTER), pki.key_path(ctx.wire.pki_dir, ROUTER)
    )
    host, port = url.hostname or "localhost", url.port or 443
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        return tls.version() or "unknown"


@check("tls.version_1_3", f"{PROTOCOL} (every hop is TLS 1.3)", "no downgrade to older TLS")
def tls_version(ctx: Context) -> str:
    version = _handshake(ctx)
    expect(version == "TLSv1.3", f"the node negotiated {version} when offered TLS 1.2 and 1.3")
    return version


@check(
    "tls.older_refused",
    f"{PROTOCOL} (every hop is TLS 1.3)",
    "a client limited to TLS 1.2 gets no session",
)
def tls_older(ctx: Context) -> str:
    try:
        version = _handshake(ctx, maximum=ssl.TLSVersion.TLSv1_2)
    except (ssl.SSLError, OSError) as exc:
        return f"handshake refused ({type(exc).__name__})"
    raise Failed(f"the node accepted {version}")


@check(
    "tls.client_certificate_required",
    f"{PROTOCOL} (client certificates from the federation CA)",
    "a party's identity comes from its certificate, so a client without one is not served",
)
def no_client_cert(ctx: Context) -> str:
    return _no_connection(
        ctx.wire.exchange("GET", "/v1/health", client=ctx.wire.client(None)),
        "a client without a certificate",
    )


@check(
    "tls.foreign_ca_refused",
    f"{PROTOCOL} (client certificates from the federation CA)",
    "a certificate from another CA proves nothing about who connects",
)
def foreign_ca(ctx: Context) -> str:
    with foreign_party(ctx.wire.requester) as (directory, _):
        context = pki.client_context(directory, ctx.wire.requester)
        context.load_verify_locations(cafile=ctx.wire.pki_dir / pki.CA_CERT)  # trust the node
        with httpx.Client(verify=context, timeout=ctx.wire.timeout) as client:
            answer = ctx.wire.exchange("GET", "/v1/health", client=client)
    return _no_connection(answer, "a client with a certificate of another CA")


@check(
    "access.search_only_from_router",
    f"{PROTOCOL}, Node (only the ROUTER certificate is accepted)",
    "searches reach a node through the router, which checks purpose and scope first",
)
def search_from_party(ctx: Context) -> str:
    category = ctx.first_category()
    body = ctx.search_body(category)
    answer = ctx.wire.post(
        "/v1/search", ctx.wire.sign(body), client=ctx.wire.client(ctx.wire.requester)
    )
    return _refused(answer, {403}, "a search posted by a party, not the router")


@check(
    "access.inbox_only_from_router",
    f"{PROTOCOL}, Node (only the ROUTER certificate is accepted)",
    "step-2 messages reach a node through the router, which logs them",
)
def inbox_from_party(ctx: Context) -> str:
    body = _core_data_request(ctx, "CONFORMANCE-ACCESS")
    answer = ctx.wire.post(
        "/v1/inbox", ctx.wire.sign(body), client=ctx.wire.client(ctx.wire.requester)
    )
    return _refused(answer, {403}, "a delivery posted by a party, not the router")


def _core_data_request(ctx: Context, reference: str) -> dict[str, object]:
    request = CoreDataRequest(
        requesting_party=ctx.wire.requester,
        holder_party=ctx.party,
        reference=reference,
        category=ctx.offered()[0] if ctx.offered() else Category.DNA,
        search_message_id="00000000-0000-4000-8000-000000000000",
        requesting_user="conformance-kit",
        verified_by="conformance-examiner",
        facts="Conformance kit: a request that must not be accepted from this sender.",
        offence="1500 00",
        max_penalty_months=240,
        case_reference="CONFORMANCE-1",
    )
    return request.model_dump(mode="json")


@check(
    "errors.not_json",
    f"{PROTOCOL}, Errors (400 bad input)",
    "a malformed body is the sender's fault, said in the error shape",
)
def not_json(ctx: Context) -> str:
    return _refused(
        ctx.wire.post("/v1/search", b"this is not JSON {"), {400}, "a body that is not JSON"
    )


@check(
    "errors.invalid_message",
    f"{PROTOCOL}, Errors (400 bad input); messages.py SearchRequest",
    "a signed message that breaks the schema (max_candidates 0) is refused, not guessed at",
)
def invalid_message(ctx: Context) -> str:
    body = ctx.search_body(ctx.first_category(), max_candidates=0)
    return _refused(ctx.search(body), {400}, "a SearchRequest with max_candidates 0")


@check(
    "errors.wrong_kind",
    f"{PROTOCOL}, Node (/v1/search takes a SearchRequest)",
    "a message of another kind on the search endpoint is refused as bad input",
)
def wrong_kind(ctx: Context) -> str:
    body = _core_data_request(ctx, "CONFORMANCE-KIND")
    return _refused(
        ctx.wire.post("/v1/search", ctx.wire.sign(body)),
        {400},
        "a CoreDataRequest posted to /v1/search",
    )


@check(
    "errors.unknown_path",
    f"{PROTOCOL}, Errors (404 unknown)",
    "even a wrong URL is answered in the error shape",
)
def unknown_path(ctx: Context) -> str:
    return _refused(
        ctx.wire.exchange("GET", "/v1/no-such-endpoint"), {404}, "GET /v1/no-such-endpoint"
    )


@check(
    "errors.body_too_large",
    f"{PROTOCOL}, Errors (413 body too large); transport.MAX_BODY_BYTES",
    "a node refuses an oversized body before reading it whole",
)
def too_large(ctx: Context) -> str:
    size = MAX_BODY_BYTES + 1
    return _refused(_post_large(ctx, size), {413}, f"a body of {size} bytes")


def _post_large(ctx: Context, size: int) -> Answer:
    """POST ``size`` bytes of spaces, stopping as soon as the node answers (a node may
    refuse on the declared length and close before the body is sent)."""
    url = urlsplit(ctx.wire.url)
    host, port = url.hostname or "localhost", url.port or 443
    context = pki.client_context(ctx.wire.pki_dir, ROUTER)
    head = (
        f"POST /v1/search HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {size}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    chunk, sent, received = b" " * 65536, 0, b""
    with (
        socket.create_connection((host, port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(head)
        try:
            while sent < size:
                readable, _, _ = select.select([tls], [], [], 0)
                if readable or tls.pending():
                    break
                part = chunk[: size - sent]
                tls.sendall(part)
                sent += len(part)
        except OSError:
            pass  # the node closed while the body was going: its answer is read below
        try:
            while data := tls.recv(65536):
                received += data
        except OSError:
            pass
    return _parse_http(received)


def _parse_http(data: bytes) -> Answer:
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return Answer(None, failure=f"no HTTP answer ({len(data)} bytes)")
    if b"transfer-encoding: chunked" in head.lower():
        body = _unchunk(body)
    return Answer(status, body)


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, data = out + rest[:size], rest[size + 2 :]
    return out
