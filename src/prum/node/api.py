"""HTTP faces of a node: the router-facing API (mutual TLS) and the national API.

Handlers only translate between HTTP and one plain call of node/exchange.py or
node/followup.py.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from prum.errors import BadInput, NotAuthorised, PrumError, StorageError
from prum.federation.messages import (
    Category,
    Decision,
    HoldReason,
    Probe,
    Purpose,
    RefusalReason,
)
from prum.federation.security.pki import client_context
from prum.federation.security.signing import keep_crl_current
from prum.federation.transport import HTTP_STATUS, client, peer_of, status_for
from prum.node import comparisons, exchange, followup, verdicts
from prum.node.core import Node, utcnow
from prum.node.schema import requests_in, requests_out, searches, verifications
from prum.node.users import Role, User, authenticate
from prum.node.web.base import PREFIX, framework_error, page

log = logging.getLogger(__name__)
HTTP_STATUS.setdefault("unknown_reference", 404)


def install_errors(app: FastAPI) -> None:
    @app.exception_handler(PrumError)
    async def prum_error(_: Request, exc: PrumError) -> JSONResponse:
        status = status_for(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(exc.to_dict(), status_code=status, headers=headers)

    # The database itself failing (a full disk, PostgreSQL restarting): the node does
    # nothing it cannot store and log, and says so with a 503 the caller may retry.
    @app.exception_handler(OperationalError)
    async def database_failed(request: Request, exc: OperationalError) -> Response:
        reason = str(exc.orig).splitlines()[0][:120] if exc.orig else type(exc).__name__
        error = StorageError(f"the node's database cannot be used now ({reason}); try again later")
        if request.url.path.startswith(PREFIX):
            return page(request, "error.html", 503, error=error)
        return JSONResponse(error.to_dict(), status_code=503, headers={"Retry-After": "30"})

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        body = BadInput(f"invalid request: {problems}").to_dict()
        return JSONResponse(body, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # The framework's own refusals (a body it cannot parse, an unknown path or
        # method) in the shape of ours, not as {"detail": ...}; a page in the workbench.
        shown = framework_error(request, exc.status_code)
        if shown is not None:
            return shown
        code = {404: "unknown_reference"}.get(exc.status_code, "bad_input")
        body = {"code": code, "message": str(exc.detail), "details": {}}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def fault(request: Request, exc: Exception) -> Response:
        # A bug: the server logs the traceback; the browser gets a page, never the trace.
        shown = framework_error(request, 500)
        return shown or PlainTextResponse("Internal Server Error", status_code=500)


# --- router-facing -----------------------------------------------------------------------

ENVELOPE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "a signed envelope (prum.federation.security.signing)",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


def create_federation_app(node: Node) -> FastAPI:
    app = FastAPI(title=f"Prüm node {node.party}: federation API", version="1")
    install_errors(app)

    # Bodies are read as bytes: the signature is checked over them as they came.
    @app.post("/v1/search", openapi_extra=ENVELOPE_BODY)
    async def search(request: Request) -> Response:
        raw, peer = await request.body(), peer_of(request)
        reply = await run_in_threadpool(exchange.answer_search, node, raw, peer)
        return Response(reply.to_json(), media_type="application/json")

    @app.post("/v1/inbox", openapi_extra=ENVELOPE_BODY)
    async def deliver(request: Request) -> dict[str, Any]:
        raw, peer = await request.body(), peer_of(request)
        return await run_in_threadpool(followup.receive, node, raw, peer)

    @app.get("/v1/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "party": node.party}

    return app


# --- national ------------------------------------------------------------------------------


_basic = HTTPBasic(auto_error=False)


def current_user(
    request: Request,
    credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
) -> User:
    """The national user behind this request (HTTP Basic; sessions come with the UI)."""
    if credentials is None:
        raise NotAuthorised("log in (HTTP Basic) with a national user account")
    node: Node = request.app.state.node
    return authenticate(node.engine, credentials.username, credentials.password)


Current = Annotated[User, Depends(current_user)]
# Row ids: positive and within a 63-bit database integer.
RowId = Annotated[int, Path(ge=1, le=2**62)]


class SearchIn(BaseModel):
    category: Category = Category.FACE
    purpose: Purpose = Purpose.INVESTIGATION
    # Criminal-offence searches (purpose "investigation") only: missing-person and
    # human-remains searches name no offence.
    offence: str | None = None
    max_penalty_months: Annotated[int, Field(ge=0, le=1200)] | None = None
    case_reference: Annotated[str, Field(min_length=1, max_length=200)]
    image: Annotated[
        str | None,
        Field(description="A face probe, base64: a photo or an ANSI/NIST-ITL Type-10 transaction"),
    ] = None
    face_box: Annotated[list[int], Field(min_length=4, max_length=4)] | None = None
    # Any other category: the probe as it travels (DNA profile, ANSI/NIST-ITL, vehicle
    # query); police records: clear biographical data the node pseudonymises.
    probe: Probe | None = None
    person: dict[str, Any] | None = None
    search_type: Annotated[str, Field(pattern=r"^[A-Z]{2}/[A-Z]{2}$")] | None = None
    # Omitted: every party offering the category; an empty list is a mistake, not "all".
    targets: Annotated[list[str], Field(min_length=1, max_length=40)] | None = None
    max_candidates: Annotated[int, Field(ge=1, le=100)] = 10
    deadline_ms: Annotated[int, Field(ge=100, le=900_000)] = 10_000


class VerificationIn(BaseModel):
    party: str
    reference: str
    decision: Decision
    justification: Annotated[str, Field(min_length=10, max_length=4000)]


class CoreDataRequestIn(BaseModel):
    search_id: Annotated[int, Field(ge=1, le=2**62)]
    party: str
    reference: str
    facts: Annotated[str, Field(min_length=20, max_length=8000)]
    offence: str | None = None


class ComparisonIn(BaseModel):
    parties: Annotated[
        list[Annotated[str, Field(pattern=r"^([A-Z]{2}|EUROPOL)$")]],
        Field(min_length=1, max_length=40),
    ]


class DecisionIn(BaseModel):
    action: Annotated[str, Field(pattern="^(release|refuse|hold|resume)$")]
    reason: RefusalReason | None = None
    # The approver's words: mandatory with a refusal, optional with a hold.
    explanation: Annotated[str, Field(max_length=2000)] | None = None
    hold_reason: HoldReason | None = None


class CountersignIn(BaseModel):
    agree: bool


async def run_retention(node: Node) -> None:
    """Purge what is due (prum.node.retention) at start and then every check period."""
    from prum.node import retention

    while True:
        try:
            await run_in_threadpool(retention.purge, node)
        except PrumError as exc:  # the database is away, or the log does not verify
            log.warning("retention: %s", exc.message)
        await asyncio.sleep(node.config.retention.check_seconds)


def create_national_app(node: Node) -> FastAPI:
    wake = asyncio.Event()
    tls = client_context(node.config.pki_dir, node.party)
    node.verifier.follow(tls)
    http = client(tls)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(followup.run_outbox(node, http, wake)),
            asyncio.create_task(keep_crl_current(node.verifier)),
            asyncio.create_task(run_retention(node)),
        ]
        if Category.DNA in node.config.categories:
            tasks.append(asyncio.create_task(comparisons.run_comparisons(node, http)))
        if any(p.abis is not None for p in node.config.categories.values()):
            from prum.node.abis.delivery import run_delivery

            tasks.append(asyncio.create_task(run_delivery(node)))
        yield
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await http.aclose()

    app = FastAPI(title=f"Prüm node {node.party}: national API", version="1", lifespan=lifespan)
    app.state.node = node
    install_errors(app)
    # The examiner workbench (browser pages) calls the same functions as this API.
    from fastapi.responses import RedirectResponse

    from prum.node.web import web_router

    app.include_router(web_router(node, http, wake))

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/workbench/")

    @app.post("/api/searches")
    async def new_search(form: SearchIn, user: Current) -> dict[str, Any]:
        if sum(x is not None for x in (form.image, form.probe, form.person)) != 1:
            raise BadInput("give exactly one of image (faces), probe, person (police records)")
        image = b""
        if form.image is not None:
            try:
                image = base64.b64decode(form.image, validate=True)
            except (binascii.Error, ValueError):
                raise BadInput("image must be base64") from None
        probe = form.probe
        if form.person is not None:
            probe = node.records_query(form.person)
        search_id = await exchange.send_search(
            node,
            http,
            user,
            exchange.SearchForm(
                category=form.category,
                purpose=form.purpose,
                offence=form.offence,
                max_penalty_months=form.max_penalty_months,
                case_reference=form.case_reference,
                image=image,
                targets=form.targets,
                face_box=form.face_box,
                max_candidates=form.max_candidates,
                deadline_ms=form.deadline_ms,
                probe=probe,
                search_type=form.search_type,
            ),
        )
        return _search_view(node, search_id)

    @app.get("/api/searches")
    def list_searches(user: Current, case_reference: str | None = None) -> list[dict[str, Any]]:
        query = select(searches).order_by(searches.c.id.desc()).limit(200)
        if case_reference:
            query = query.where(searches.c.case_reference == case_reference)
        with node.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [_summary(dict(r._mapping)) for r in rows]

    @app.get("/api/searches/{search_id}")
    def get_search(search_id: RowId, user: Current) -> dict[str, Any]:
        return _search_view(node, search_id)

    @app.post("/api/searches/{search_id}/verifications")
    def verify(search_id: RowId, form: VerificationIn, user: Current) -> dict[str, Any]:
        vid = followup.verify_candidate(
            node,
            user,
            search_id,
            party=form.party,
            reference=form.reference,
            decision=form.decision,
            justification=form.justification,
        )
        return {"verification_id": vid}

    @app.post("/api/verifications/{verification_id}/countersign")
    def countersign(verification_id: RowId, form: CountersignIn, user: Current) -> dict[str, Any]:
        """A second examiner's answer to a verdict change proposed after a request."""
        result = verdicts.countersign(node, user, verification_id, agree=form.agree)
        wake.set()
        return result

    @app.post("/api/core-data-requests")
    def request_core(form: CoreDataRequestIn, user: Current) -> dict[str, Any]:
        rid = followup.request_core_data(
            node,
            user,
            form.search_id,
            party=form.party,
            reference=form.reference,
            facts=form.facts,
            offence=form.offence,
        )
        wake.set()
        return {"request_id": rid}

    @app.get("/api/core-data-requests")
    def outgoing(user: Current) -> list[dict[str, Any]]:
        with node.engine.connect() as conn:
            rows = conn.execute(select(requests_out).order_by(requests_out.c.id.desc())).all()
        return [dict(r._mapping) for r in rows]

    @app.get("/api/inbox")
    def incoming(user: Current) -> list[dict[str, Any]]:
        user.require(Role.APPROVER)
        with node.engine.connect() as conn:
            rows = conn.execute(select(requests_in).order_by(requests_in.c.id.desc())).all()
        return [_inbox_view(node, r) for r in rows]

    @app.post("/api/inbox/{request_id}/decision")
    def decide(request_id: RowId, form: DecisionIn, user: Current) -> dict[str, Any]:
        result = followup.decide(
            node,
            user,
            request_id,
            action=form.action,
            reason=form.reason,
            explanation=form.explanation,
            hold_reason=form.hold_reason,
        )
        wake.set()
        return result

    @app.get("/api/audit")
    def audit(
        user: Current,
        kind: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> list[dict[str, Any]]:
        user.require(Role.AUDITOR)
        node.log(kind="log_viewed", user=user.name)
        return [e.__dict__ for e in node.audit.entries(kind=kind, limit=limit)]

    @app.get("/api/audit/verify")
    def audit_verify(user: Current) -> dict[str, Any]:
        user.require(Role.AUDITOR)
        from prum.federation.security.signing import AuditVerifier

        return node.audit.verify(AuditVerifier(node.config.pki_dir)).to_dict()

    @app.get("/api/stats")
    def stats(
        user: Current, year: Annotated[int | None, Query(ge=2000, le=2100)] = None
    ) -> dict[str, Any]:
        user.require(Role.AUDITOR)
        return node.statistics.summary(year=year)

    @app.post("/api/dna/comparisons")
    def start_comparisons(form: ComparisonIn, user: Current) -> list[dict[str, Any]]:
        return comparisons.start(node, user, form.parties)

    @app.get("/api/dna/comparisons")
    def list_comparisons(user: Current) -> list[dict[str, Any]]:
        if not ({Role.ADMIN, Role.AUDITOR} & user.roles):
            user.require(Role.ADMIN)
        return comparisons.jobs(node)

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "party": node.party}

    @app.get("/api/abis")
    def abis_backlog(user: Current) -> dict[str, dict[str, Any]]:
        """What the outbox still owes each category's external ABIS (docs/abis.md)."""
        from prum.node.abis.delivery import backlog

        return backlog(node)

    return app


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    replies = (row.get("reply") or {}).get("replies", [])
    return {
        "id": row["id"],
        "message_id": row["message_id"],
        "request_number": row["request_number"],
        "category": row["category"],
        "case_reference": row["case_reference"],
        "status": row["status"],
        "created_at": row["created_at"],
        "statuses": {r["party"]: r["status"] for r in replies},
        "candidates": sum(len(r["candidates"]) for r in replies),
    }


def _search_view(node: Node, search_id: int) -> dict[str, Any]:
    search = exchange.load_search(node, search_id)
    with node.engine.connect() as conn:
        decisions = conn.execute(
            select(verifications)
            .where(verifications.c.search_id == search_id)
            .order_by(verifications.c.id)
        ).all()
        requests = conn.execute(
            select(requests_out).where(requests_out.c.search_id == search_id)
        ).all()
    view = _summary(search)
    view["purpose"] = search["purpose"]
    criminal = search["purpose"] == Purpose.INVESTIGATION.value
    view["offence"] = search["offence"] or None
    view["max_penalty_months"] = search["max_penalty_months"] if criminal else None
    view["replies"] = (search.get("reply") or {}).get("replies", [])
    view["verifications"] = [dict(d._mapping) for d in decisions]
    view["core_data_requests"] = [dict(r._mapping) for r in requests]
    return view


def _inbox_view(node: Node, row: Any) -> dict[str, Any]:
    view = dict(row._mapping)
    deadline = followup.deadline_of(node, row)
    view["deadline_at"] = deadline
    view["seconds_left"] = (deadline - utcnow()).total_seconds()
    return view
