"""The examiner workbench: the browser interface of a national node.

:func:`web_router` gives the national app (prum.node.api) every page under
/workbench: login and logout here, the pages in search_pages, followup_pages and
oversight_pages. What they share (session, CSRF, roles, rendering) is in base.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlalchemy import select

from prum.errors import NotAuthorised
from prum.node.core import Node
from prum.node.schema import requests_in, searches, users
from prum.node.users import Role, authenticate
from prum.node.web import (
    followup_pages,
    i18n,
    oversight_pages,
    report_pages,
    search_pages,
    sessions,
)
from prum.node.web.base import (
    HERE,
    PREFIX,
    Bench,
    Csrf,
    CsrfRefused,
    Current,
    HtmlRoute,
    UnknownPage,
    Workbench,
    back_to,
    page,
    summary,
)
from prum.node.web.sessions import COOKIE, LOGIN_COOKIE

router = APIRouter(route_class=HtmlRoute)


def web_router(node: Node, http: httpx.AsyncClient, wake: asyncio.Event) -> APIRouter:
    """The workbench of ``node``; ``http`` and ``wake`` are the national app's router
    client and the trigger of its outbox."""
    bench = Workbench(node, http, wake)

    def bind(request: Request) -> None:
        request.state.workbench = bench

    outer = APIRouter(prefix=PREFIX, dependencies=[Depends(bind)], include_in_schema=False)
    for pages in (
        router,
        search_pages.router,
        followup_pages.router,
        oversight_pages.router,
        report_pages.router,
    ):
        outer.include_router(pages)
    return outer


def _static_files() -> dict[str, Path]:
    """Served by name only (no paths from the URL): our files and Plotly's bundle from
    the plotly wheel, so the node needs no network for its charts."""
    import plotly

    files = {p.name: p for p in (HERE / "static").iterdir() if p.is_file()}
    files["plotly.min.js"] = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return files


STATIC = _static_files()


@router.get("/static/{name}")
def asset(name: str) -> Response:
    path = STATIC.get(name)
    if path is None:
        raise UnknownPage(f"no file {name!r}")
    response = FileResponse(path)
    response.headers["Cache-Control"] = "max-age=3600"
    return response


@router.get("/language")
def language(request: Request, to: str = "", back: str = "") -> Response:
    """The officer's language for the workbench (a cookie; no session needed)."""
    if to not in i18n.LANGUAGES:
        raise UnknownPage(f"the workbench has no language {to[:8]!r}")
    response = RedirectResponse(back_to(back), status_code=303)
    response.set_cookie(
        i18n.COOKIE,
        to,
        max_age=365 * 24 * 3600,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=PREFIX,
    )
    return response


# --- login and logout ----------------------------------------------------------------------


def login_page(
    request: Request, status: int = 200, error: str | None = None, then: str | None = None
) -> Response:
    """The form, with a double-submit token (cookie + field): no session exists yet."""
    token = sessions.new_token()
    then = back_to(then or request.query_params.get("next"))
    response = page(request, "login.html", status, login_token=token, error=error, then=then)
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=PREFIX,
    )
    return response


@router.get("/login")
def login_form(request: Request) -> Response:
    return login_page(request)


@router.post("/login")
def login(
    request: Request,
    bench: Bench,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    then: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    if not sessions.same_token(request.cookies.get(LOGIN_COOKIE), csrf_token):
        raise CsrfRefused("the login form expired or was not sent by this workbench")
    name = username.strip().lower()
    engine = bench.node.engine
    try:
        user = authenticate(engine, name, password)
    except NotAuthorised as exc:
        with engine.connect() as conn:
            known = conn.execute(select(users.c.name).where(users.c.name == name)).first()
        bench.node.log(
            kind="login",
            user=name if known else None,  # never log what someone typed as a name
            outcome="failed",
            reason_code="locked" if "locked" in exc.message else "wrong_credentials",
        )
        return login_page(request, 401, exc.message, then)
    session_id = sessions.start(engine, user)
    bench.log(user, "login", outcome="ok")
    response = RedirectResponse(back_to(then), status_code=303)
    response.set_cookie(
        COOKIE,
        session_id,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=PREFIX,
        max_age=int(sessions.ABSOLUTE.total_seconds()),
    )
    response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
    return response


@router.post("/logout", dependencies=[Csrf])
def logout(request: Request, bench: Bench, session: Current) -> Response:
    sessions.end(bench.node.engine, request.cookies.get(COOKIE))
    bench.log(session.user, "logout", outcome="ok")
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


@router.get("/")
def home(request: Request, bench: Bench, session: Current) -> Response:
    roles = session.user.roles
    with bench.node.engine.connect() as conn:
        recent = conn.execute(select(searches).order_by(searches.c.id.desc()).limit(8)).all()
        pending = conn.execute(
            select(requests_in.c.id).where(requests_in.c.status.in_(["pending", "on_hold"]))
        ).all()
    return page(
        request,
        "home.html",
        searches=[summary(dict(r._mapping)) for r in recent]
        if {Role.OFFICER, Role.EXAMINER} & roles
        else [],
        pending=len(pending) if Role.APPROVER in roles else None,
    )
