"""The router's HTTP API (docs/protocol.md): thin handlers over :class:`Router`.

Each handler reads the TLS peer, calls one router method and writes its answer; an
error is ``{"code", "message", "details"}`` with the status of its family. Request
bodies are never logged (uvicorn's access log is off and no middleware reads them).
"""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import Receive, Scope, Send

from prum.errors import MalformedRequest, PrumError
from prum.federation.router.service import Progress, Router
from prum.federation.router.settings import RouterSettings
from prum.federation.security.pki import PeerIdentity
from prum.federation.security.signing import keep_crl_current
from prum.federation.transport import peer_of, peer_of_scope, status_for

T = TypeVar("T")
# What a 503 asks the client to wait before trying again (seconds).
RETRY_AFTER_S = 1


class Envelope(BaseModel):
    """A signed message (``prum.federation.security.signing``): a body of
    ``prum.federation.messages`` and who signed it. The signature covers the canonical
    JSON of ``body``."""

    model_config = ConfigDict(extra="forbid")

    body: dict[str, Any] = Field(description="the message; its `kind` says which")
    signer: str = Field(description="party code of the signer: the CN of `cert`")
    cert: str = Field(description="the signer's PEM certificate, issued by the federation CA")
    alg: str = Field(description="ES256")
    signature: str = Field(description="base64 of r || s over the canonical JSON of body")

    def as_dict(self) -> dict[str, Any]:
        return {
            "body": self.body,
            "signer": self.signer,
            "cert": self.cert,
            "alg": self.alg,
            "signature": self.signature,
        }


class Ack(BaseModel):
    """The destination's acknowledgement of a delivered message, relayed."""

    accepted: str
    duplicate: bool


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "malformed JSON, an invalid message or an unknown party"),
        (403, "a security check failed, a replay, or the request is outside policy"),
        (413, "the body is larger than the router accepts"),
        (503, "the destination or the audit log is unavailable: try again later"),
    )
}


def create_app(settings: RouterSettings, router: Router | None = None) -> HotPath:
    """The router's ASGI app; builds the :class:`Router` from ``settings`` unless given."""
    service = router if router is not None else Router.from_settings(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        revocations = asyncio.create_task(keep_crl_current(service.verifier))
        yield
        revocations.cancel()
        await service.aclose()

    app = FastAPI(
        title="Prüm II router",
        version="1",
        summary="Fans signed searches out to the national nodes and Europol; stores no payload.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.router = service

    @app.exception_handler(PrumError)
    async def prum_error(_: Request, exc: PrumError) -> JSONResponse:
        status = status_for(exc)
        # 503s are for now, not for good: say when to come back.
        headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
        return JSONResponse(exc.to_dict(), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
            for error in exc.errors()[:10]
        )
        error = MalformedRequest(f"the request is malformed: {problems}")
        service.refused(request.url.path, error, {"requesting_party": _party(request)})
        return JSONResponse(error.to_dict(), status_code=status_for(error))

    # The bodies are read as bytes, not through the Envelope model: the router checks
    # the signature over the bytes as they came and forwards them unchanged
    # (docs/architecture.md, "The router's hot path"); the model documents them.
    envelope_body = {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}},
        }
    }

    @app.post("/v1/search", response_model=Envelope, responses=ERRORS, openapi_extra=envelope_body)
    async def search(request: Request) -> Response:
        """Search the targets of a signed SearchRequest; the answer is a SearchReply
        signed by the router, with one CountryReply per target."""
        status, headers, body = await _search(service, await request.body(), request.scope)
        return Response(
            body, status_code=status, headers={k.decode(): v.decode() for k, v in headers}
        )

    @app.post("/v1/deliver", response_model=Ack, responses=ERRORS, openapi_extra=envelope_body)
    async def deliver(request: Request) -> Ack:
        """Forward a signed CoreDataRequest (to its holder), CoreDataReply or
        RecordWithdrawn notice (to its requester) to the destination's inbox; relay its
        acknowledgement."""
        peer = _peer(service, request)
        ack = await _guarded(service.deliver(await request.body(), peer))
        return Ack.model_validate(ack)

    @app.get("/v1/directory")
    async def directory(request: Request) -> dict[str, Any]:
        """The parties of the federation, what they offer and the purposes they accept."""
        _peer(service, request)
        return service.directory.public()

    @app.get("/v1/stats")
    async def stats(
        request: Request, year: int | None = Query(default=None, ge=1970, le=9999)
    ) -> dict[str, Any]:
        """Router statistics: counts per party, category, purpose and month; no personal
        data."""
        _peer(service, request)
        return await _guarded(service.stats(year))

    @app.get("/v1/health")
    async def health() -> JSONResponse:
        """``{"status": "ok"}``; 503 while the audit log is failing."""
        state = service.health()
        return JSONResponse(state, status_code=200 if state["status"] == "ok" else 503)

    return HotPath(app, service)


class HotPath:
    """``POST /v1/search`` straight to the router, without the framework's layers (an
    eighth of the router's CPU per search went through them); everything else, and
    the OpenAPI document of this endpoint too, is the FastAPI app's."""

    def __init__(self, app: FastAPI, service: Router) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (
            scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/v1/search"
        ):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        if NDJSON in dict(scope["headers"]).get(b"accept", b""):
            await _search_streamed(self.service, b"".join(chunks), scope, send)
            return
        status, headers, body = await _search(self.service, b"".join(chunks), scope)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


Headers = list[tuple[bytes, bytes]]
JSON_TYPE = (b"content-type", b"application/json")
NDJSON = b"application/x-ndjson"


async def _search(
    service: Router, raw: bytes, scope: Scope, progress: Progress | None = None
) -> tuple[int, Headers, bytes]:
    """One search, as HTTP: (status, headers, body)."""
    try:
        try:
            peer = peer_of_scope(scope)
        except PrumError as exc:
            service.refused("/v1/search", exc, {})
            raise
        return 200, [JSON_TYPE], await _guarded(service.search(raw, peer, progress))
    except PrumError as exc:
        status = status_for(exc)
        headers = [JSON_TYPE]
        if status == 503:  # for now, not for good: say when to come back
            headers.append((b"retry-after", str(RETRY_AFTER_S).encode()))
        return status, headers, json.dumps(exc.to_dict()).encode()


async def _search_streamed(service: Router, raw: bytes, scope: Scope, send: Send) -> None:
    """One search whose requester asked (``Accept: application/x-ndjson``) to hear each
    target as it settles: one JSON line ``{"progress": {...}}`` per event, then the
    signed SearchReply as the last line, or ``{"error": {...}, "status": n}`` if the
    search failed after the first event. A search refused before fan-out is an
    ordinary JSON error with its status."""
    lines: asyncio.Queue[bytes] = asyncio.Queue()
    search = asyncio.create_task(
        _search(
            service,
            raw,
            scope,
            lambda event: lines.put_nowait(json.dumps({"progress": event}).encode() + b"\n"),
        )
    )
    started = False

    async def emit(line: bytes, *, more: bool = True) -> None:
        nonlocal started
        if not started:
            headers = [(b"content-type", NDJSON), (b"cache-control", b"no-store")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            started = True
        await send({"type": "http.response.body", "body": line, "more_body": more})

    while not search.done():
        line = asyncio.ensure_future(lines.get())
        await asyncio.wait({search, line}, return_when=asyncio.FIRST_COMPLETED)
        if line.done():
            await emit(line.result())
        else:
            line.cancel()
    while not lines.empty():
        await emit(lines.get_nowait())
    status, headers, body = search.result()
    if not started:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif status == 200:
        await emit(body + b"\n", more=False)
    else:
        error = json.dumps({"error": json.loads(body), "status": status}).encode()
        await emit(error + b"\n", more=False)


def _peer(service: Router, request: Request) -> PeerIdentity:
    try:
        return peer_of(request)
    except PrumError as exc:
        service.refused(request.url.path, exc, {})
        raise


def _party(request: Request) -> str | None:
    try:
        return peer_of(request).party
    except PrumError:
        return None


async def _guarded(call: Awaitable[T]) -> T:
    """Await ``call``; a bug becomes a 500 whose trace shows places, never values.

    An exception's text may quote what it choked on (a name, a piece of a probe), so
    only its type and the code locations reach the process's error output.
    """
    try:
        return await call
    except PrumError:
        raise
    except Exception as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        where = " <- ".join(f"{f.filename}:{f.lineno} {f.name}" for f in reversed(frames[-5:]))
        print(f"router: internal error {type(exc).__name__} at {where}", file=sys.stderr)
        raise PrumError("internal error in the router; the operators have been told") from None
