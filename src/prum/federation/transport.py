"""HTTP over mutual TLS between the router and the nodes.

uvicorn (0.54) does not hand the client certificate to the application, and a
party's identity must come from its certificate, never from a body field. So the
server uses a small subclass of uvicorn's httptools protocol that reads the verified
peer certificate when the connection is made and puts it into every request's ASGI
scope as ``scope["extensions"]["tls"]["client_cert_der"]`` (the key the ASGI TLS
extension draft uses for the chain). :func:`peer_of` turns it into a PeerIdentity.

Servers run on uvloop with the httptools parser: against asyncio's own loop and
uvicorn's pure-Python h11 parser they cost the router about a third less CPU per
search (docs/benchmarks.md, router).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import ssl
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import uvicorn
import uvloop
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from prum.errors import BadCertificate, BadInput, PrumError
from prum.federation.security.pki import PeerIdentity, identity_from_der

# The largest request body any endpoint accepts: a 30 MB probe, base64-encoded.
MAX_BODY_BYTES = 42 * 1024 * 1024


class PeerCertProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, exposing the TLS peer certificate to the app."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        inner = self.app

        async def with_peer(scope: Scope, receive: Receive, send: Send) -> None:
            extensions = dict(scope.get("extensions") or {})
            extensions["tls"] = {"client_cert_der": der}
            scope["extensions"] = extensions
            await inner(scope, receive, send)

        self.app = with_peer


def peer_of(request: Request) -> PeerIdentity:
    """The verified identity of the party on the other end of this TLS connection."""
    return peer_of_scope(request.scope)


def peer_of_scope(scope: Scope) -> PeerIdentity:
    """:func:`peer_of` for an ASGI scope."""
    der = (scope.get("extensions") or {}).get("tls", {}).get("client_cert_der")
    if not der:
        raise BadCertificate("no client certificate on this connection (mutual TLS required)")
    return identity_from_der(der)


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413 before reading them whole."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(send, self.limit)
            return
        received, exceeded, started = 0, False, False

        async def limited() -> MutableMapping[str, Any]:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def answer(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            # Past the limit, what the app answers to the exception it could not place
            # (FastAPI's 400 "error parsing the body", Starlette's 500) gives way to 413.
            if exceeded and not started:
                return
            started = True
            await send(message)

        with contextlib.suppress(_BodyTooLarge):
            await self.app(scope, limited, answer)
        if exceeded and not started:
            await _too_large(send, self.limit)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "code": "body_too_large",
            "message": f"the request body exceeds {limit // (1024 * 1024)} MB",
            "details": {},
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True)
class Listener:
    """One HTTP server of a process: an app on an address, with or without mTLS.

    ``reuse_port``: several processes may listen on the same address and the kernel
    spreads new connections over them (SO_REUSEPORT): how router replicas on one host
    share one address without a proxy in front."""

    app: ASGIApp
    host: str
    port: int
    ssl_context: ssl.SSLContext | None = None
    reuse_port: bool = False

    def socket(self) -> socket.socket | None:
        """A bound, listening socket when the port is shared; None lets uvicorn bind."""
        if not self.reuse_port:
            return None
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((self.host, self.port))
        sock.listen(2048)
        sock.set_inheritable(True)
        return sock


def _server(listener: Listener, *, lifespan: Literal["on", "off"]) -> uvicorn.Server:
    config = uvicorn.Config(
        BodyLimit(listener.app),
        host=listener.host,
        port=listener.port,
        http=PeerCertProtocol if listener.ssl_context is not None else "httptools",
        log_level="warning",
        access_log=False,  # an access log line is metadata the audit log already has
        lifespan=lifespan,
        timeout_graceful_shutdown=5,
    )
    config.load()
    config.ssl = listener.ssl_context
    return uvicorn.Server(config)


def _timing_log() -> None:
    """With PRUM_TIMING_LOG=1, one line per search on stderr with the milliseconds of each
    stage (logger ``prum.timing``: bench/face_federated.py reads it). Off by default."""
    if os.environ.get("PRUM_TIMING_LOG", "") not in ("", "0"):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
        timing = logging.getLogger("prum.timing")
        timing.addHandler(handler)
        timing.setLevel(logging.INFO)
        timing.propagate = False


def serve_many(*listeners: Listener) -> None:
    """Run every listener in this process until SIGINT/SIGTERM.

    A listener with an SSL context accepts only clients presenting a certificate the
    context trusts (mutual TLS). Each app's lifespan (start-up and shut-down of its
    background work) runs.
    """
    _timing_log()
    servers = [_server(listener, lifespan="on") for listener in listeners]
    sockets = [listener.socket() for listener in listeners]
    for server in servers:
        # One signal handler for all servers (uvicorn's own would stop only one).
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]

    async def run_all() -> None:
        loop = asyncio.get_running_loop()

        def stop() -> None:
            for server in servers:
                server.should_exit = True

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        await asyncio.gather(
            *(
                server.serve(sockets=None if sock is None else [sock])
                for server, sock in zip(servers, sockets, strict=True)
            )
        )

    uvloop.run(run_all())


def serve(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    reuse_port: bool = False,
) -> None:
    """Run one app (see :func:`serve_many`)."""
    serve_many(Listener(app, host, port, ssl_context, reuse_port))


def client(ssl_context: ssl.SSLContext | None, *, timeout: float = 30.0) -> httpx.AsyncClient:
    """An HTTP client presenting this party's certificate (when given a context)."""
    return httpx.AsyncClient(
        verify=ssl_context if ssl_context is not None else True,
        timeout=timeout,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )


def error_body(exc: PrumError) -> dict[str, Any]:
    return exc.to_dict()


HTTP_STATUS: dict[str, int] = {
    "bad_input": 400,
    "no_credentials": 401,
    "security_error": 403,
    "policy_refused": 403,
    "unavailable": 503,
}


def status_for(exc: PrumError) -> int:
    """The HTTP status of an error family (the code itself travels in the body)."""
    for klass in type(exc).__mro__:
        code = getattr(klass, "code", None)
        if code in HTTP_STATUS:
            return HTTP_STATUS[code]
    if isinstance(exc, BadInput):
        return 400
    return 500
