"""The router's HTTP API (docs/protocol.md): thin handlers over :class:`Router`.

Each handler reads the TLS peer, calls one router method and writes its answer; an
error is ``{"code", "message", "details"}`` with the status of its family. Request
bodies are never logged (uvicorn's access log is off and no middleware reads them).
"""

from __future__ import annotations

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

from prum.errors import MalformedRequest, PrumError
from prum.router.service import Router
from prum.router.settings import RouterSettings
from prum.security.pki import PeerIdentity
from prum.transport import peer_of, status_for

T = TypeVar("T")


class Envelope(BaseModel):
    """A signed message (``prum.security.signing``): a body of ``prum.messages`` and
    who signed it. The signature covers the canonical JSON of ``body``."""

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


def create_app(settings: RouterSettings, router: Router | None = None) -> FastAPI:
    """The router's ASGI app; builds the :class:`Router` from ``settings`` unless given."""
    service = router if router is not None else Router.from_settings(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
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
        return JSONResponse(exc.to_dict(), status_code=status_for(exc))

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
            for error in exc.errors()[:10]
        )
        error = MalformedRequest(f"the request is malformed: {problems}")
        service.refused(request.url.path, error, {"requesting_party": _party(request)})
        return JSONResponse(error.to_dict(), status_code=status_for(error))

    @app.post("/v1/search", response_model=Envelope, responses=ERRORS)
    async def search(envelope: Envelope, request: Request) -> Response:
        """Search the targets of a signed SearchRequest; the answer is a SearchReply
        signed by the router, with one CountryReply per target."""
        reply = await _guarded(service.search(envelope.as_dict(), _peer(service, request)))
        # Not reply.to_json(): dataclasses.asdict deep-copies the whole candidate list.
        fields = {name: getattr(reply, name) for name in Envelope.model_fields}
        return Response(json.dumps(fields, ensure_ascii=False), media_type="application/json")

    @app.post("/v1/deliver", responses=ERRORS)
    async def deliver(envelope: Envelope, request: Request) -> Ack:
        """Forward a signed CoreDataRequest (to its holder) or CoreDataReply (to its
        requester) to the destination's inbox; relay its acknowledgement."""
        ack = await _guarded(service.deliver(envelope.as_dict(), _peer(service, request)))
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

    return app


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
