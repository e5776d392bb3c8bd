"""What every workbench page shares: the node it serves, rendering, the session, CSRF
and role checks (FastAPI dependencies), and errors shown as pages.

Routes are thin, like the JSON API's: parse the form, check the session, the CSRF
token and the role, call the same plain function of node/exchange.py or
node/followup.py, and render a page. Errors of the error tree become an HTML page
with the error's message and HTTP status (403 for a missing role).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
from fastapi import Depends, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from prum.errors import BadInput, NotAuthorised, PrumError, RoleRequired
from prum.federation.transport import status_for
from prum.node import exchange, notifications
from prum.node.core import Node
from prum.node.users import Role, User
from prum.node.web import evidence, i18n, labels, sessions, views
from prum.node.web.sessions import COOKIE, Session

PREFIX = "/workbench"
LOG = logging.getLogger(__name__)
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals.update(
    prefix=PREFIX,
    offence_name=views.offence_name,
    rmp_words=views.rmp_words,
    finger_position=views.finger_position,
    dna_rows=views.dna_rows,
    vehicle_rows=views.vehicle_rows,
    records_fields=views.records_fields,
    vehicle_signals=views.VEHICLE_SIGNALS,
    records_words=views.RECORDS_FIELDS,
    finger_search_types=views.FINGER_SEARCH_TYPES,
    label=labels.label,
    when=labels.when,
    strength=evidence.strength,
    split_candidates=evidence.split_candidates,
    dna_probe=evidence.dna_probe,
    dna_differing=evidence.differing,
    strength_scale=evidence.SCALE,
)
templates.env.filters["when"] = labels.when
templates.env.add_extension("jinja2.ext.i18n")
templates.env.install_gettext_callables(  # type: ignore[attr-defined]
    i18n.translate, i18n.translate_plural, newstyle=True
)
MAX_UPLOAD = 30 * 1024 * 1024
# Only this node's own scripts; Plotly inserts its styles at run time.
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'"
)


@dataclass
class Workbench:
    """The node a workbench serves, with the national app's router client and the
    trigger of its outbox."""

    node: Node
    http: httpx.AsyncClient
    wake: asyncio.Event
    face_of: Callable[[int, str, str], views.FaceView] = field(init=False)
    # Searches being sent in the background (a reference keeps each task alive).
    sending: set[asyncio.Task[None]] = field(default_factory=set)
    # One search per submitted form: (user, the form's key) -> the search id, or the
    # refusal shown the first time; the most recent keys only.
    submissions: OrderedDict[tuple[str, str], asyncio.Future[int | PrumError]] = field(
        default_factory=OrderedDict
    )

    def __post_init__(self) -> None:
        # Faces cropped for the comparison: the image and its landmarks are asked for
        # by separate requests; a search's images never change.
        self.face_of = lru_cache(maxsize=32)(self._face_of)

    def _face_of(self, search_id: int, party: str, reference: str) -> views.FaceView:
        """The probe's face (``party`` empty) or a candidate's, cropped."""
        search = exchange.load_search(self.node, search_id)
        if not party:
            probe = search.get("probe") or {}
            return views.face_view(
                self.node.face_pipeline, decode_image(probe.get("image")), probe.get("box")
            )
        candidate = exchange.find_candidate(search, party, reference)
        return views.face_view(self.node.face_pipeline, decode_image(candidate.get("image")))

    def log(self, user: User | None, kind: str, **fields: Any) -> None:
        self.node.log(kind=kind, user=user.name if user else None, **fields)

    def in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` after the page has answered; it records its own outcome."""
        task = asyncio.get_running_loop().create_task(work)
        self.sending.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self.sending.discard(task)
        if not task.cancelled() and not isinstance(task.exception(), (PrumError, type(None))):
            # A bug must not vanish with its task: the node's log keeps the traceback.
            LOG.error("a background search failed", exc_info=task.exception())


class LoginRequired(Exception):
    """No live session: the browser goes to the login page."""


class CsrfRefused(NotAuthorised):
    """A POST without this session's CSRF token."""


class UnknownPage(BadInput):
    """A workbench path that names nothing."""

    code = "unknown_reference"


def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a template with the user, the CSRF token and the node's party."""
    session: Session | None = getattr(request.state, "session", None)
    bench: Workbench | None = getattr(request.state, "workbench", None)
    node: Node | None = bench.node if bench else getattr(request.app.state, "node", None)
    context.setdefault("user", session.user if session else None)
    context.setdefault("csrf", session.csrf_token if session else "")
    context.setdefault("roles", {r.value for r in session.user.roles} if session else set())
    context.setdefault("party", node.party if node else "")
    if session and bench and "unread" not in context:
        context["unread"] = notifications.unread(bench.node.engine, session.user.name)
    language = i18n.chosen(request)
    context.setdefault("language", language)
    context.setdefault("languages", i18n.LANGUAGES)
    chosen = i18n.current.set(language)  # the template is rendered here, in this language
    try:
        return templates.TemplateResponse(request, name, context, status_code=status)
    finally:
        i18n.current.reset(chosen)


class PageNotFound(BadInput):
    """No workbench page at this address."""

    code = "unknown_reference"


class MethodNotAllowed(BadInput):
    """A form's address opened directly (a GET where only a POST is taken), or the
    other way round."""

    code = "method_not_allowed"


class InternalError(PrumError):
    """A fault in the node itself (logged with its traceback)."""

    code = "internal_error"


def framework_error(request: Request, status: int) -> Response | None:
    """The framework's own refusals (unknown address, wrong method) and unexpected
    faults as a workbench page, for workbench addresses; None elsewhere (the JSON API
    keeps its JSON)."""
    if not request.url.path.startswith(PREFIX):
        return None
    error: PrumError
    if status == 404:
        error = PageNotFound("there is no workbench page at this address")
    elif status == 405:
        error = MethodNotAllowed(
            "this address takes a form sent from a workbench page; it cannot be opened directly"
        )
    elif status >= 500:
        error = InternalError(
            "something went wrong on this node; it has been logged. Try again in a"
            " moment; if it happens again, tell the node's administrator the time"
        )
    else:
        error = BadInput("the browser sent a request the workbench cannot read")
    response = page(request, "error.html", status, error=error)
    secure(response)
    return response


def login_address(request: Request) -> str:
    """The login page, asked to come back to this page after (pages, not forms)."""
    if request.method != "GET" or request.url.path in (f"{PREFIX}/", f"{PREFIX}/login"):
        return f"{PREFIX}/login"
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"{PREFIX}/login?{urlencode({'next': target})}"


def back_to(target: str | None) -> str:
    """Where a login returns: a workbench page of this node, never another site."""
    if target and target.startswith(f"{PREFIX}/") and "//" not in target and "\\" not in target:
        return target
    return f"{PREFIX}/"


def secure(response: Response) -> None:
    """The headers every workbench answer carries."""
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")


class HtmlRoute(APIRoute):
    """Every workbench route: security headers, and errors as pages, not JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except LoginRequired:
                response = RedirectResponse(login_address(request), status_code=303)
            except PrumError as exc:
                response = page(request, "error.html", status_for(exc), error=exc)
            except RequestValidationError as exc:
                error = BadInput(f"the form is incomplete or invalid: {problems(exc)}")
                response = page(request, "error.html", 400, error=error, kept=await kept(request))
            secure(response)
            return response

        return route


def problems(exc: RequestValidationError) -> str:
    """What is wrong with a form, in words (a text too long says by how much)."""
    said = []
    for e in exc.errors()[:5]:
        field = ".".join(str(p) for p in e["loc"][1:]).replace("_", " ")
        limit = (e.get("ctx") or {}).get("max_length")
        if e["type"] == "string_too_long" and isinstance(e.get("input"), str) and limit:
            said.append(
                f"the {field} is {len(e['input']):,} characters long; at most {limit:,} are"
                " accepted: shorten it (your text is below) and send it again"
            )
        else:
            said.append(f"{field}: {e['msg']}")
    return "; ".join(said)


async def kept(request: Request) -> list[tuple[str, str]]:
    """The longer texts of a refused form, shown back so that none is lost."""
    if request.method != "POST":
        return []
    form = await request.form()
    return [
        (name.replace("_", " "), value)
        for name, value in form.multi_items()
        if isinstance(value, str) and len(value) > 200 and name != "csrf_token"
    ]


# --- dependencies: the workbench, the session, CSRF and roles ----------------------------


def workbench(request: Request) -> Workbench:
    bench: Workbench = request.state.workbench  # set by the router of web_router()
    return bench


Bench = Annotated[Workbench, Depends(workbench)]


def current(request: Request, bench: Bench) -> Session:
    session = sessions.resume(bench.node.engine, request.cookies.get(COOKIE))
    if session is None:
        raise LoginRequired
    request.state.session = session
    return session


Current = Annotated[Session, Depends(current)]


def need(*roles: Role) -> Callable[[Request, Workbench, Session], User]:
    """A dependency: the user, who must hold one of ``roles`` (else a logged 403)."""

    def check(request: Request, bench: Bench, session: Current) -> User:
        if not session.user.roles & set(roles):
            bench.log(
                session.user,
                "refused",
                reason_code="role_required",
                detail=f"{request.method} {request.url.path}"[:200],
            )
            names = " or ".join(r.value for r in roles)
            raise RoleRequired(f"{session.user.name} lacks the {names} role this page needs")
        return session.user

    return check


async def csrf(request: Request, bench: Bench, session: Current) -> None:
    """Every POST carries the session's token (form field, or header for scripts)."""
    form = await request.form()
    given = form.get("csrf_token") or request.headers.get("x-csrf-token")
    if not sessions.same_token(session.csrf_token, given if isinstance(given, str) else None):
        bench.log(session.user, "refused", reason_code="csrf", detail=request.url.path[:200])
        raise CsrfRefused(
            "this form was not sent by this workbench session (CSRF token missing or"
            " wrong); reload the page and try again"
        )


Csrf = Depends(csrf)
# Row ids in paths: positive and within a 63-bit database integer (as in the JSON API).
RowId = Annotated[int, PathParam(ge=1, le=2**62)]
Officer = Annotated[User, Depends(need(Role.OFFICER))]
Examiner = Annotated[User, Depends(need(Role.EXAMINER))]
Investigator = Annotated[User, Depends(need(Role.OFFICER, Role.EXAMINER))]
Approver = Annotated[User, Depends(need(Role.APPROVER))]
Auditor = Annotated[User, Depends(need(Role.AUDITOR))]
Admin = Annotated[User, Depends(need(Role.ADMIN))]


# --- small parsers ----------------------------------------------------------------------


def read_upload(upload: UploadFile) -> bytes:
    data = upload.file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise BadInput(f"the file is larger than {MAX_UPLOAD // (1024 * 1024)} MB")
    if not data:
        raise BadInput("the file is empty")
    return data


def decode_image(value: str | None) -> bytes:
    if not value:
        raise UnknownPage("no image is stored for this")
    try:
        return base64.b64decode(value)
    except (binascii.Error, ValueError):
        raise BadInput("the stored image is not base64") from None


def summary(row: dict[str, Any]) -> dict[str, Any]:
    """One search for the lists: who, when, which case, each country's status."""
    replies = (row.get("reply") or {}).get("replies", [])
    return {
        "id": row["id"],
        "request_number": row["request_number"],
        "category": row["category"],
        "case_reference": row["case_reference"],
        "offence": row["offence"],
        "user": row["user"],
        "status": row["status"],
        "created_at": row["created_at"],
        "statuses": {r["party"]: r["status"] for r in replies},
        "candidates": sum(len(r["candidates"]) for r in replies),
    }
