"""``prum abis serve``: our matchers behind the ABIS contract, on HTTP (docs/abis.md).

Routes only parse, authenticate and call one method of prum.node.abis.service; the
matcher's work runs in a thread so the health check answers during a long search.
"""

from __future__ import annotations

import hmac
import ssl
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from prum.errors import BadInput, NoCredentials, NotAuthorised, PrumError
from prum.federation.transport import status_for
from prum.node.abis.contract import (
    PREFIX,
    DeleteRequest,
    DeleteResponse,
    Health,
    IdentifyRequest,
    IdentifyResponse,
    InsertRequest,
    InsertResponse,
)
from prum.node.abis.service import AbisService

_bearer = HTTPBearer(auto_error=False)


def create_abis_app(service: AbisService, *, token: str | None) -> FastAPI:
    app = FastAPI(
        title=f"Prüm ABIS ({service.category.value})",
        version="abis-v1",
        description="Our matcher behind the ABIS contract: insert, identify, delete, health."
        " It holds reference data only, keyed by the node's references.",
    )

    def authorised(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if token is None:
            return
        if credentials is None:
            raise NoCredentials("this ABIS needs 'Authorization: Bearer <token>'")
        if not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
            raise NotAuthorised("the bearer token is not this ABIS's")

    auth = [Depends(authorised)]

    @app.exception_handler(PrumError)
    async def prum_error(_: Request, exc: PrumError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=status_for(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        return JSONResponse(BadInput(f"invalid request: {problems}").to_dict(), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = {"code": "bad_input", "message": str(exc.detail), "details": {}}
        return JSONResponse(body, status_code=exc.status_code)

    @app.post(f"{PREFIX}/insert", dependencies=auth)
    async def insert(request: InsertRequest) -> InsertResponse:
        """Hold records (idempotent per reference)."""
        return await run_in_threadpool(service.insert, request)

    @app.post(f"{PREFIX}/delete", dependencies=auth)
    async def delete(request: DeleteRequest) -> DeleteResponse:
        """Forget records (idempotent per reference)."""
        return await run_in_threadpool(service.delete, request)

    @app.post(f"{PREFIX}/identify", dependencies=auth)
    async def identify(request: IdentifyRequest) -> IdentifyResponse:
        """A 1:N search with the exposure filter."""
        return await run_in_threadpool(service.identify, request)

    @app.get(f"{PREFIX}/health", dependencies=auth)
    async def health() -> Health:
        return await run_in_threadpool(service.health)

    return app


def server_tls(cert: Path, key: Path, client_ca: Path | None) -> ssl.SSLContext:
    """TLS for the ABIS listener; with ``client_ca``, clients must present a
    certificate it signed (mutual TLS)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
        if client_ca is not None:
            context.load_verify_locations(cafile=str(client_ca))
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise BadInput(f"the ABIS's TLS files cannot be used ({exc})") from None
    return context
