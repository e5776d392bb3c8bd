"""The national-systems interface over HTTP: the node's third listener, for machines
(a country's AFIS, face and DNA databases, records index, vehicle register), apart
from the router-facing API and from the people's national API and workbench.

Handlers parse, authenticate the system and call one method of
:class:`prum.node.systems.service.NationalSystems` (docs/national-systems.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from prum.errors import BadInput, NoCredentials, PrumError
from prum.federation.messages import Category
from prum.node.api import install_errors
from prum.node.core import Node
from prum.node.systems.accounts import SystemAccount, authenticate_system
from prum.node.systems.batch import parse_lines
from prum.node.systems.contract import (
    BatchResult,
    ChangesPage,
    DeletionIn,
    DeletionReason,
    ListingPage,
    NationalId,
    RecordIn,
    RecordResult,
)
from prum.node.systems.service import Line, NationalSystems

log = logging.getLogger(__name__)
_bearer = HTTPBearer(auto_error=False)
NDJSON = "application/x-ndjson"
BATCH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "one record or deletion a line (RecordIn or DeletionIn as JSON);"
        " or multipart/form-data with the lines in a part named 'records' and each file a"
        " sample names ({'format': 'image', 'file': 'photo-1.jpg'}) in a part of that name",
        "content": {
            NDJSON: {"schema": {"type": "string"}},
            "multipart/form-data": {"schema": {"type": "object"}},
        },
    }
}


def create_systems_app(node: Node, systems: NationalSystems) -> FastAPI:
    app = FastAPI(
        title=f"Prüm node {node.party}: national-systems interface",
        version="1",
        description="For a country's systems of record, not for people: records with"
        " their core data in, deletions, and what the node holds for reconciliation.",
    )
    install_errors(app)
    app.router.lifespan_context = _lifespan(node, systems)
    app.state.node = node

    @app.post("/v1/records", status_code=200)
    async def upsert(record: RecordIn, account: System) -> RecordResult:
        """Create or replace one record (idempotent: the same record again is unchanged)."""
        return await run_in_threadpool(systems.upsert, record, account)

    @app.delete("/v1/records/{category}/{national_id}")
    async def delete(
        category: Category,
        national_id: Annotated[NationalId, Path()],
        reason: DeletionReason,
        account: System,
    ) -> RecordResult:
        """Delete one record (erasure, rectification ...), with the reason."""
        deletion = DeletionIn(category=category, national_id=national_id, reason=reason)
        return await run_in_threadpool(systems.delete, deletion, account)

    @app.post("/v1/batches", openapi_extra=BATCH_BODY)
    async def batch(request: Request, account: System) -> BatchResult:
        """Records and deletions, one a line; each line applied or refused on its own."""
        lines = await _read_batch(request)
        return await run_in_threadpool(systems.apply_batch, lines, account)

    @app.get("/v1/changes")
    async def changes(
        account: System,
        after: Annotated[int, Query(ge=0, le=2**62)] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> ChangesPage:
        """The node's change sequence after ``after``: what was created, replaced,
        updated or deleted, in order, in the categories this system may write."""
        return await run_in_threadpool(
            lambda: systems.changes(after=after, limit=limit, categories=account.categories)
        )

    @app.get("/v1/records/{category}")
    async def listing(
        category: Category,
        account: System,
        after: Annotated[str, Query(max_length=128)] = "",
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> ListingPage:
        """Every national id of a category held here, in order, with its content hash."""
        account.require(category)
        return await run_in_threadpool(lambda: systems.listing(category, after=after, limit=limit))

    @app.get("/v1/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "party": node.party}

    return app


def _system(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> SystemAccount:
    if credentials is None:
        raise NoCredentials(
            "this interface is for national systems: send their token as"
            " 'Authorization: Bearer prum-sys-...' (made with `prum node system-add`)"
        )
    node: Node = request.app.state.node
    return authenticate_system(node.engine, credentials.credentials)


# At module level: with postponed annotations FastAPI resolves a handler's annotations
# in the module's namespace, where an alias local to create_systems_app is not found
# (it then took ``account`` for a query parameter and authenticated nothing).
System = Annotated[SystemAccount, Depends(_system)]


def _lifespan(node: Node, systems: NationalSystems) -> Any:
    """Records whose retention date has passed are erased by the node itself."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async def expire() -> None:
            while True:
                try:
                    await run_in_threadpool(systems.expire)
                except PrumError as exc:  # the database is away: try again next time
                    log.warning("retention: %s", exc.message)
                await asyncio.sleep(node.config.retention_check_seconds)

        task = asyncio.create_task(expire())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        systems.close()

    return lifespan


async def _read_batch(request: Request) -> list[Line]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    files: dict[str, bytes] = {}
    if kind == "multipart/form-data":
        form = await request.form()
        text = b""
        for name, value in form.multi_items():
            if isinstance(value, str):
                if name == "records":
                    text = value.encode()
                continue
            content = await value.read()
            if name == "records":
                text = content
            else:
                files[value.filename or name] = content
                files[name] = content
        if not text:
            raise BadInput("a multipart batch needs its lines in a part named 'records'")
    elif kind in (NDJSON, "application/json", "text/plain", ""):
        text = await request.body()
    else:
        raise BadInput(f"a batch is {NDJSON} or multipart/form-data, not {kind!r}")
    return parse_lines(text, files.__getitem__)
