"""The auditor's log viewer, chain verification and statistics; the admin's users and
national configuration."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from prum.audit.events import EventKind
from prum.errors import BadInput
from prum.federation.security.signing import AuditVerifier
from prum.node.core import utcnow
from prum.node.schema import users
from prum.node.users import Role, User, add_user
from prum.node.web import views
from prum.node.web.base import Admin, Auditor, Bench, Csrf, HtmlRoute, Workbench, page

router = APIRouter(route_class=HtmlRoute)
PAGE = 100
FILTERS = ("kind", "party", "category", "outcome", "case_reference")
# Within a 63-bit database integer.
MAX_OFFSET = 2**62


def audit_page(request: Request, bench: Workbench, user: User, report: Any = None) -> Response:
    params = request.query_params
    filters = {k: (params.get(k) or "").strip()[:200] or None for k in FILTERS}
    try:
        since = _date(params.get("since"))
        until = _date(params.get("until"))
        before = until + dt.timedelta(days=1) if until else None
        offset = max(0, int(params.get("offset") or 0))
        if offset > MAX_OFFSET:
            raise ValueError
    except (ValueError, OverflowError):  # 9999-12-31 has no next day
        raise BadInput("dates are YYYY-MM-DD and the offset a number") from None
    entries = bench.node.audit.entries(
        **filters,
        since=since,
        until=before,
        limit=PAGE,
        offset=offset,
    )
    bench.log(user, "log_viewed", detail="audit log viewer")
    kept = {k: v for k, v in params.items() if k != "offset" and v}
    return page(
        request,
        "audit.html",
        entries=entries,
        filters=filters,
        since=params.get("since", ""),
        until=params.get("until", ""),
        report=report,
        newer=urlencode({**kept, "offset": max(0, offset - PAGE)}) if offset else None,
        older=urlencode({**kept, "offset": offset + PAGE}) if len(entries) == PAGE else None,
        kinds=[k.value for k in EventKind],
    )


@router.get("/audit")
def audit(request: Request, bench: Bench, user: Auditor) -> Response:
    return audit_page(request, bench, user)


@router.post("/audit/verify", dependencies=[Csrf])
def audit_verify(request: Request, bench: Bench, user: Auditor) -> Response:
    """Recompute the hash chain and check every signed checkpoint (prum audit verify)."""
    report = bench.node.audit.verify(AuditVerifier(bench.node.config.pki_dir))
    outcome = "ok" if report.ok else "failed"
    bench.log(user, "log_viewed", outcome=outcome, detail="hash chain verified")
    return audit_page(request, bench, user, report)


@router.get("/stats")
def stats(
    request: Request,
    bench: Bench,
    user: Auditor,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
) -> Response:
    summary = bench.node.statistics.summary(year=year)
    bench.log(user, "log_viewed", detail="statistics")
    return page(
        request,
        "stats.html",
        data=views.chart_data(summary, bench.node.party),
        year=year,
        statuses=views.ANSWER_STATUSES,
    )


def admin_page(request: Request, bench: Workbench, status: int = 200, **context: Any) -> Response:
    with bench.node.engine.connect() as conn:
        rows = conn.execute(select(users).order_by(users.c.name)).all()
    listed = [
        {
            "name": r.name,
            "roles": r.roles,
            "created_at": r.created_at,
            "locked_until": views.aware(r.locked_until),
            "failed_logins": r.failed_logins,
        }
        for r in rows
    ]
    return page(
        request,
        "admin.html",
        status,
        users=listed,
        all_roles=[r.value for r in Role],
        config=bench.node.config.model_dump_json(indent=2),
        now=utcnow(),
        **context,
    )


@router.get("/admin")
def admin(request: Request, bench: Bench, user: Admin) -> Response:
    return admin_page(request, bench)


@router.post("/admin/users", dependencies=[Csrf])
def admin_add_user(
    request: Request,
    bench: Bench,
    user: Admin,
    name: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    roles: Annotated[list[Role] | None, Form()] = None,
) -> Response:
    try:
        added = add_user(bench.node.engine, name.strip(), password, set(roles or []))
    except BadInput as exc:
        return admin_page(request, bench, 400, error=exc)
    bench.log(user, "config_changed", detail=f"user {added.name} added")
    return admin_page(request, bench, message=f"user {added.name} added")


def _date(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.UTC)
