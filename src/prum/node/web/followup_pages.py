"""Follow-up of core-data requests sent, the approver's inbox, and cases: the rest of
step 2 on both sides."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from prum.errors import BadInput, PrumError, UnknownReference
from prum.federation.messages import HoldReason, RefusalReason
from prum.node import followup, notifications, verdicts
from prum.node.categories import ANSWERED_AT_ONCE
from prum.node.core import utcnow
from prum.node.schema import (
    national_records,
    references_sent,
    requests_in,
    requests_out,
    searches,
    verifications,
)
from prum.node.web import views
from prum.node.web.base import (
    PREFIX,
    Approver,
    Bench,
    Csrf,
    Current,
    Examiner,
    HtmlRoute,
    Investigator,
    RowId,
    page,
    summary,
)

ANSWERED_AT_ONCE_NAMES = {c.value for c in ANSWERED_AT_ONCE}
# What the approver reads for each refusal reason.
REASON_WORDS = {
    RefusalReason.DISPROPORTIONATE: "disproportionate to the facts and the offence",
    RefusalReason.NATIONAL_LAW_BAR: "barred by national law",
    RefusalReason.JUDICIAL_AUTHORISATION_PENDING: "judicial authorisation pending (older holders)",
    RefusalReason.JUDICIAL_AUTHORISATION_REFUSED: "judicial authorisation refused",
    RefusalReason.FUNDAMENTAL_RIGHTS: "a fundamental-rights concern",
}

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
    shown = _sent_with_deadline(bench, rows, utcnow())
    return page(request, "requests.html", requests=shown, hold_words=followup.HOLD_WORDS)


@router.get("/inbox")
def inbox(request: Request, bench: Bench, user: Approver) -> Response:
    with bench.node.engine.connect() as conn:
        rows = conn.execute(select(requests_in).order_by(requests_in.c.id.desc()).limit(200)).all()
    now = utcnow()
    shown = [_with_time_left(row, followup.deadline_of(bench.node, row, now), now) for row in rows]
    bench.log(user, "log_viewed", detail="core-data inbox")
    return page(
        request,
        "inbox.html",
        requests=shown,
        hold_words=followup.HOLD_WORDS,
        reason_words=REASON_WORDS,
    )


@router.post("/inbox/{request_id}/decision", dependencies=[Csrf])
def decide(
    bench: Bench,
    request_id: RowId,
    user: Approver,
    action: Annotated[str, Form(pattern="^(release|refuse|hold|resume)$")],
    reason: Annotated[RefusalReason | None, Form()] = None,
    explanation: Annotated[str, Form(max_length=2000)] = "",
    hold_reason: Annotated[HoldReason | None, Form()] = None,
    previewed: Annotated[str, Form(max_length=64)] = "",
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Release only after the review: the preview's digest and the confirmation box."""
    if action == "release" and (not previewed or confirm != "yes"):
        raise BadInput(
            "a release needs your confirmation that you checked the core data shown in the"
            " review; open the request, check them and tick the box"
        )
    followup.decide(
        bench.node,
        user,
        request_id,
        action=action,
        reason=reason,
        explanation=explanation,
        hold_reason=hold_reason,
        previewed=previewed or None,
    )
    bench.wake.set()
    return RedirectResponse(f"{PREFIX}/inbox/{request_id}", status_code=303)


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
    per_candidate: dict[int, dict[tuple[str, str], list[Any]]] = {}
    for v in decided:
        per_candidate.setdefault(v.search_id, {}).setdefault((v.party, v.reference), []).append(v)
    latest: dict[int, dict[tuple[str, str], str]] = {}
    for search_id, by_key in per_candidate.items():
        for key, shown in verdicts.visible(bench.node, user, by_key).items():
            if shown:
                latest.setdefault(search_id, {})[key] = shown[-1].decision
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


# --- decisions that hold: countersigning, the approver's review, notices, the queue ------


@router.post("/verifications/{verification_id}/countersign", dependencies=[Csrf])
def countersign(
    bench: Bench,
    verification_id: RowId,
    user: Examiner,
    agree: Annotated[str, Form(pattern="^(yes|no)$")],
) -> Response:
    with bench.node.engine.connect() as conn:
        row = conn.execute(
            select(verifications).where(verifications.c.id == verification_id)
        ).first()
    verdicts.countersign(bench.node, user, verification_id, agree=agree == "yes")
    bench.wake.set()
    if row is None:  # pragma: no cover - countersign raised already
        return RedirectResponse(f"{PREFIX}/queue", status_code=303)
    return RedirectResponse(
        f"{PREFIX}/searches/{row.search_id}/candidates/{row.party}/{row.reference}#decisions",
        status_code=303,
    )


@router.get("/inbox/{request_id}")
def review(request: Request, bench: Bench, request_id: RowId, user: Approver) -> Response:
    """One incoming request with what the approver decides on: the requester's facts and
    offence, the match as the requester states it, this node's record, and exactly the
    core data a release sends (built by the function that builds the message)."""
    with bench.node.engine.connect() as conn:
        row = conn.execute(select(requests_in).where(requests_in.c.id == request_id)).first()
        if row is None:
            raise UnknownReference(f"no incoming core-data request {request_id}")
        sent = conn.execute(
            select(references_sent.c.first_sent_at).where(
                references_sent.c.reference == row.reference,
                references_sent.c.party == row.requesting_party,
            )
        ).scalar_one_or_none()
        record = conn.execute(
            select(national_records.c.category, national_records.c.updated_at).where(
                national_records.c.reference == row.reference
            )
        ).first()
    asked = row.request
    # The search this node answered, as its own log recorded it (metadata only).
    answered = next(
        (
            e.event
            for e in bench.node.audit.entries(
                kind="search_received",
                party=row.requesting_party,
                case_reference=asked.get("case_reference"),
                limit=50,
            )
            if e.event.message_id == asked.get("search_message_id")
        ),
        None,
    )
    rank = (
        answered.reference.index(row.reference) + 1
        if answered is not None and answered.reference and row.reference in answered.reference
        else None
    )
    now = utcnow()
    item = _with_time_left(row, followup.deadline_of(bench.node, row, now), now)
    preview, problem = None, None
    if row.status in ("pending", "on_hold"):
        try:
            preview = followup.preview_release(bench.node, user, request_id)
        except PrumError as exc:
            problem = exc.message
    bench.log(
        user,
        "log_viewed",
        requesting_party=row.requesting_party,
        reference=[row.reference],
        detail="core-data request reviewed, with the core data a release would send",
    )
    return page(
        request,
        "inbox_review.html",
        r=item,
        preview=preview,
        problem=problem,
        sent_at=sent,
        record=record,
        answered=answered,
        rank=rank,
        reasons=[r for r in RefusalReason if r is not RefusalReason.JUDICIAL_AUTHORISATION_PENDING],
        hold_reasons=list(HoldReason),
        hold_words=followup.HOLD_WORDS,
        reason_words=REASON_WORDS,
    )


@router.get("/notifications")
def notices(request: Request, bench: Bench, session: Current) -> Response:
    items = notifications.for_user(bench.node.engine, session.user.name)
    return page(request, "notifications.html", items=items, unread=0)


@router.get("/queue")
def queue(request: Request, bench: Bench, user: Examiner) -> Response:
    """An examiner's work: candidates awaiting a verdict (or a blind second one), changes
    awaiting a countersignature, and requests awaiting the holder's decision."""
    with bench.node.engine.connect() as conn:
        rows = conn.execute(
            select(searches)
            .where(searches.c.status == "answered")
            .order_by(searches.c.id.desc())
            .limit(200)
        ).all()
        ids = [r.id for r in rows]
        decided = conn.execute(
            select(verifications)
            .where(verifications.c.search_id.in_(ids))
            .order_by(verifications.c.id)
        ).all()
        waiting = conn.execute(
            select(requests_out, searches.c.case_reference)
            .join(searches, searches.c.id == requests_out.c.search_id)
            .where(requests_out.c.status.in_(["sent", "on_hold"]))
            .order_by(requests_out.c.created_at)
        ).all()
    by_candidate: dict[tuple[int, str, str], list[Any]] = {}
    for v in decided:
        by_candidate.setdefault((v.search_id, v.party, v.reference), []).append(v)
    now = utcnow()
    four_eyes = bench.node.config.four_eyes
    to_verify: list[dict[str, Any]] = []
    to_second: list[dict[str, Any]] = []
    to_countersign: list[dict[str, Any]] = []
    for row in rows:
        for answer in (row.reply or {}).get("replies", []):
            for c in answer.get("candidates", []):
                if c.get("withdrawn") or c.get("below_threshold"):
                    continue
                key = (row.id, answer["party"], c["reference"])
                state = verdicts.standing_of(by_candidate.get(key, []), four_eyes)
                item = {
                    "search_id": row.id,
                    "party": answer["party"],
                    "reference": c["reference"],
                    "case_reference": row.case_reference,
                    "category": row.category,
                    "waiting": _age(now, row.answered_at or row.created_at),
                }
                if state.proposal is not None:
                    if state.proposal.user != user.name:
                        to_countersign.append(dict(item, proposal=state.proposal))
                elif state.awaiting_second:
                    if user.name not in state.confirmers:
                        to_second.append(item)
                elif state.latest is None and row.category not in ANSWERED_AT_ONCE_NAMES:
                    to_verify.append(item)
    return page(
        request,
        "queue.html",
        to_verify=to_verify,
        to_second=to_second,
        to_countersign=to_countersign,
        requests=_sent_with_deadline(bench, waiting, now),
    )


def _age(now: dt.datetime, since: dt.datetime) -> str:
    minutes = int(max(0.0, (now - (views.aware(since) or now)).total_seconds()) // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def _with_time_left(row: Any, due: dt.datetime, now: dt.datetime) -> dict[str, Any]:
    """A core-data request as the pages show it: its columns, when the answer is due,
    and the time left in words."""
    item = dict(row._mapping)
    item["due"] = due
    item["left"] = views.duration_words((due - now).total_seconds())
    return item


def _sent_with_deadline(
    bench: Bench, rows: Sequence[Any], now: dt.datetime
) -> list[dict[str, Any]]:
    """Requests this node sent, each due the core-data deadline (48 hours) after it was
    sent."""
    hours = dt.timedelta(hours=bench.node.config.core_data_deadline_hours)
    return [_with_time_left(r, (views.aware(r.created_at) or now) + hours, now) for r in rows]
