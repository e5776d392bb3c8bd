"""Follow-up of core-data requests sent, the approver's inbox, and cases: the rest of
step 2 on both sides."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from prum.federation.messages import RefusalReason
from prum.node import followup
from prum.node.core import utcnow
from prum.node.schema import requests_in, requests_out, searches, verifications
from prum.node.web import views
from prum.node.web.base import (
    PREFIX,
    Approver,
    Bench,
    Csrf,
    HtmlRoute,
    Investigator,
    RowId,
    page,
    summary,
)

router = APIRouter(route_class=HtmlRoute)


@router.get("/requests")
def outgoing(request: Request, bench: Bench, user: Investigator) -> Response:
    """Requests sent, with the 48-hour deadline counted from sending (the holder's hold
    for judicial authorisation may extend it: only the holder knows)."""
    with bench.node.engine.connect() as conn:
        rows = conn.execute(
            select(requests_out, searches.c.case_reference)
            .join(searches, searches.c.id == requests_out.c.search_id)
            .order_by(requests_out.c.id.desc())
            .limit(200)
        ).all()
    hours = dt.timedelta(hours=bench.node.config.core_data_deadline_hours)
    now = utcnow()
    shown = []
    for row in rows:
        item = dict(row._mapping)
        item["due"] = (views.aware(row.created_at) or now) + hours
        item["left"] = views.duration_words((item["due"] - now).total_seconds())
        shown.append(item)
    return page(request, "requests.html", requests=shown)


@router.get("/inbox")
def inbox(request: Request, bench: Bench, user: Approver) -> Response:
    with bench.node.engine.connect() as conn:
        rows = conn.execute(select(requests_in).order_by(requests_in.c.id.desc()).limit(200)).all()
    now = utcnow()
    shown = []
    for row in rows:
        item = dict(row._mapping)
        item["due"] = followup.deadline_of(bench.node, row, now)
        item["left"] = views.duration_words((item["due"] - now).total_seconds())
        shown.append(item)
    bench.log(user, "log_viewed", detail="core-data inbox")
    return page(request, "inbox.html", requests=shown, reasons=[r.value for r in RefusalReason])


@router.post("/inbox/{request_id}/decision", dependencies=[Csrf])
def decide(
    bench: Bench,
    request_id: RowId,
    user: Approver,
    action: Annotated[str, Form(pattern="^(release|refuse|hold|resume)$")],
    reason: Annotated[RefusalReason | None, Form()] = None,
) -> Response:
    followup.decide(bench.node, user, request_id, action=action, reason=reason)
    bench.wake.set()
    return RedirectResponse(f"{PREFIX}/inbox#request-{request_id}", status_code=303)


@router.get("/cases")
def cases(request: Request, bench: Bench, user: Investigator, q: str = "") -> Response:
    """Searches grouped by case reference, with each candidate's latest decision and
    the core-data requests."""
    query = select(searches).order_by(searches.c.id.desc()).limit(500)
    if q.strip():
        query = query.where(searches.c.case_reference.contains(q.strip()[:200]))
    with bench.node.engine.connect() as conn:
        rows = conn.execute(query).all()
        ids = [r.id for r in rows]
        decided = conn.execute(
            select(verifications)
            .where(verifications.c.search_id.in_(ids))
            .order_by(verifications.c.id)
        ).all()
        asked = conn.execute(select(requests_out).where(requests_out.c.search_id.in_(ids))).all()
    latest: dict[int, dict[tuple[str, str], str]] = {}
    for v in decided:
        latest.setdefault(v.search_id, {})[(v.party, v.reference)] = v.decision
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        item = summary(dict(row._mapping))
        item["outcomes"] = latest.get(row.id, {})
        item["requests"] = [
            {"party": r.holder_party, "reference": r.reference, "status": r.status}
            for r in asked
            if r.search_id == row.id
        ]
        grouped.setdefault(row.case_reference, []).append(item)
    return page(request, "cases.html", cases=grouped, q=q)
