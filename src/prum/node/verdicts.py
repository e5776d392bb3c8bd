"""Examiners' verdicts that hold (requesting side of step 2).

A verdict on a candidate is *effective* when recorded, except in two cases:

* **After a core-data request.** Once core data of a confirmed candidate were
  requested, a different verdict is only *proposed*: it takes effect when a second
  examiner (another user with the examiner role) countersigns it. Then the request is
  withdrawn: the holder gets a signed :class:`CoreDataCancelled` through the outbox,
  released core data are erased here, and the statistics move the candidate from
  "confirmed" to its new verdict (``previous_outcome`` of the audit entry).
* **Four-eyes verification** (national option ``NodeConfig.four_eyes``). A match counts
  as confirmed only when two different examiners confirmed it, the second without
  seeing the first's verdict (the workbench hides it until they recorded their own);
  only then can core data be requested, so no examiner can search, confirm and
  request alone.

Every write and its audit entries commit in one transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, insert, select, update

from prum.audit.events import AuditEvent, EventKind, Outcome
from prum.errors import BadInput, SeparationOfDuties, UnknownReference, WrongState
from prum.federation.messages import CancelReason, Category, CoreDataCancelled, Decision
from prum.node.categories import ANSWERED_AT_ONCE
from prum.node.core import Node, utcnow
from prum.node.exchange import find_candidate, load_search
from prum.node.notifications import notify, users_with
from prum.node.outbox import enqueue
from prum.node.schema import requests_out, verifications
from prum.node.users import Role, User

MIN_JUSTIFICATION = 10
PREFIX = "/workbench"  # where notifications link to (prum.node.web.base.PREFIX)


@dataclass
class Standing:
    """Where a candidate stands, from its verdicts (oldest first)."""

    history: list[Any] = field(default_factory=list)
    latest: Any = None  # the latest effective verdict
    proposal: Any = None  # a change awaiting a second examiner
    confirmers: set[str] = field(default_factory=set)  # the latest run of confirmations
    four_eyes: bool = False

    @property
    def confirmed(self) -> bool:
        """Core data may be requested: confirmed, by two examiners under four-eyes."""
        needed = 2 if self.four_eyes else 1
        return self._confirmed and len(self.confirmers) >= needed

    @property
    def awaiting_second(self) -> bool:
        """Confirmed once under four-eyes: a second examiner must confirm, blind."""
        return self.four_eyes and self._confirmed and len(self.confirmers) < 2

    @property
    def _confirmed(self) -> bool:
        return self.latest is not None and self.latest.decision == Decision.CONFIRMED.value

    def blind_for(self, user: User) -> bool:
        """Whether ``user`` must not see the verdicts yet (the blind second examiner)."""
        return (
            self.awaiting_second
            and Role.EXAMINER in user.roles
            and user.name not in {v.user for v in self.history}
        )


def standing_in(
    conn: Connection, node: Node, search_id: int, party: str, reference: str
) -> Standing:
    rows = conn.execute(
        select(verifications)
        .where(
            verifications.c.search_id == search_id,
            verifications.c.party == party,
            verifications.c.reference == reference,
        )
        .order_by(verifications.c.id)
    ).all()
    return standing_of(list(rows), node.config.four_eyes)


def standing_of(rows: list[Any], four_eyes: bool) -> Standing:
    state = Standing(history=rows, four_eyes=four_eyes)
    effective = [r for r in rows if r.status == "effective"]
    state.latest = effective[-1] if effective else None
    state.proposal = next((r for r in reversed(rows) if r.status == "proposed"), None)
    for row in reversed(effective):
        if row.decision != Decision.CONFIRMED.value:
            break
        state.confirmers.add(row.user)
    return state


def standing(node: Node, search_id: int, party: str, reference: str) -> Standing:
    with node.engine.connect() as conn:
        return standing_in(conn, node, search_id, party, reference)


def live_request(conn: Connection, search_id: int, party: str, reference: str) -> Any:
    """The core-data request of this candidate, unless it was withdrawn."""
    return conn.execute(
        select(requests_out).where(
            requests_out.c.search_id == search_id,
            requests_out.c.holder_party == party,
            requests_out.c.reference == reference,
            requests_out.c.status != "cancelled",
        )
    ).first()


def two_steps(search: dict[str, Any]) -> None:
    if Category(search["category"]) in ANSWERED_AT_ONCE:
        raise WrongState(
            f"{search['category']} answers carry the data at once: there is nothing to"
            " verify and no core data to request"
        )


def _compare_link(search_id: int, party: str, reference: str) -> str:
    return f"{PREFIX}/searches/{search_id}/candidates/{party}/{reference}#decisions"


def record(
    node: Node,
    user: User,
    search_id: int,
    *,
    party: str,
    reference: str,
    decision: Decision,
    justification: str,
) -> int:
    """Record an examiner's verdict; after a core-data request, propose it instead."""
    user.require(Role.EXAMINER)
    search = load_search(node, search_id)
    find_candidate(search, party, reference)
    two_steps(search)
    text = justification.strip()
    if len(text) < MIN_JUSTIFICATION:
        raise BadInput(f"a justification of at least {MIN_JUSTIFICATION} characters is required")
    now = utcnow()
    link = _compare_link(search_id, party, reference)
    with node.audit.transaction() as conn:
        state = standing_in(conn, node, search_id, party, reference)
        previous = state.latest.decision if state.latest is not None else None
        asked = live_request(conn, search_id, party, reference)
        if asked is not None:
            if state.proposal is not None:
                raise WrongState(
                    f"{state.proposal.user} already proposed a change of this verdict; a"
                    " second examiner must countersign or decline it first"
                )
            if decision.value == previous:
                raise WrongState(f"the candidate is {previous} already: there is nothing to change")
        elif state.four_eyes and decision is Decision.CONFIRMED and user.name in state.confirmers:
            raise SeparationOfDuties(
                f"{user.name} confirmed this candidate already; under four-eyes verification"
                " a second examiner must confirm it"
            )
        status = "proposed" if asked is not None else "effective"
        pk = conn.execute(
            insert(verifications).values(
                search_id=search_id,
                party=party,
                reference=reference,
                decision=decision.value,
                justification=text,
                user=user.name,
                decided_at=now,
                status=status,
            )
        ).inserted_primary_key
        assert pk is not None
        event = AuditEvent(
            at=now,
            kind=(
                EventKind.VERDICT_CHANGE_PROPOSED
                if asked is not None
                else EventKind.CANDIDATE_VERIFIED
            ),
            requesting_party=node.party,
            requested_party=party,
            category=search["category"],
            case_reference=search["case_reference"],
            user=user.name,
            message_id=search["message_id"],
            reference=[reference],
            outcome=Outcome(decision.value),
            previous_outcome=Outcome(previous) if previous and status == "effective" else None,
            detail="core data were requested: awaiting a second examiner" if asked else None,
        )
        node.audit.append_in(conn, [event])
        others = users_with(conn, Role.EXAMINER.value, besides=user.name)
        if asked is not None:
            notify(
                conn,
                others,
                "countersign",
                f"{user.name} proposes to change candidate {reference} ({party}, case"
                f" {search['case_reference']}) to {decision.value}: a second examiner must"
                " countersign",
                link,
            )
        elif state.four_eyes and decision is Decision.CONFIRMED and not state.confirmers:
            notify(
                conn,
                others,
                "second_verification",
                f"Candidate {reference} ({party}, case {search['case_reference']}) awaits a"
                " blind second verification",
                link,
            )
    return int(pk[0])


def countersign(node: Node, user: User, verification_id: int, *, agree: bool) -> dict[str, Any]:
    """A second examiner's answer to a proposed change: agreed, it takes effect and
    withdraws the core-data request (erasing released core data); declined, it lapses."""
    user.require(Role.EXAMINER)
    with node.engine.connect() as conn:
        row = conn.execute(
            select(verifications).where(verifications.c.id == verification_id)
        ).first()
    if row is None:
        raise UnknownReference(f"no verdict {verification_id}")
    search = load_search(node, row.search_id)
    now = utcnow()
    link = _compare_link(row.search_id, row.party, row.reference)
    with node.audit.transaction() as conn:
        row = conn.execute(select(verifications).where(verifications.c.id == verification_id)).one()
        if row.status != "proposed":
            raise WrongState("this verdict is not a change awaiting a second examiner")
        if row.user == user.name:
            raise SeparationOfDuties(
                f"{user.name} proposed this change; a second examiner must countersign it"
            )
        state = standing_in(conn, node, row.search_id, row.party, row.reference)
        previous = state.latest.decision if state.latest is not None else None
        conn.execute(
            update(verifications)
            .where(verifications.c.id == verification_id)
            .values(
                status="effective" if agree else "declined",
                countersigned_by=user.name,
                countersigned_at=now,
            )
        )
        common: dict[str, Any] = {
            "at": now,
            "requesting_party": node.party,
            "requested_party": row.party,
            "category": search["category"],
            "case_reference": search["case_reference"],
            "user": user.name,
            "reference": [row.reference],
        }
        if not agree:
            node.audit.append_in(
                conn,
                [
                    AuditEvent(
                        kind=EventKind.VERDICT_CHANGE_PROPOSED,
                        message_id=search["message_id"],
                        outcome=Outcome(row.decision),
                        reason_code="declined",
                        detail=f"the change proposed by {row.user} was declined",
                        **common,
                    )
                ],
            )
            notify(
                conn,
                [row.user],
                "declined",
                f"{user.name} declined your change of candidate {row.reference} to"
                f" {row.decision}: the verdict stays {previous}",
                link,
            )
            return {"status": "declined"}
        events = [
            AuditEvent(
                kind=EventKind.VERDICT_CHANGED,
                message_id=search["message_id"],
                outcome=Outcome(row.decision),
                previous_outcome=Outcome(previous) if previous else None,
                detail=f"proposed by {row.user}, countersigned",
                **common,
            )
        ]
        asked = live_request(conn, row.search_id, row.party, row.reference)
        erased = False
        if asked is not None:
            cancelled, erased = _cancel(node, conn, asked, user.name, now)
            events.append(
                AuditEvent(
                    kind=EventKind.CORE_DATA_CANCELLED,
                    message_id=cancelled.message_id if cancelled else asked.message_id,
                    reason_code=CancelReason.VERDICT_REVISED.value,
                    signature=cancelled.signature if cancelled else None,
                    detail=(
                        "request withdrawn; the released core data were erased"
                        if erased
                        else "request withdrawn"
                    ),
                    **common,
                )
            )
            notify(
                conn,
                [asked.user],
                "cancelled",
                f"Your core-data request for {row.reference} ({row.party}) was withdrawn: the"
                f" verdict changed to {row.decision}"
                + ("; the core data received were erased" if erased else ""),
                f"{PREFIX}/requests#request-{asked.id}",
            )
        node.audit.append_in(conn, events)
        notify(
            conn,
            [row.user],
            "countersigned",
            f"{user.name} countersigned your change of candidate {row.reference} to {row.decision}",
            link,
        )
    return {"status": "effective", "erased": erased, "withdrawn": asked is not None}


@dataclass(frozen=True)
class _Sent:
    message_id: str
    signature: str


def _cancel(
    node: Node, conn: Connection, asked: Any, by: str, now: dt.datetime
) -> tuple[_Sent | None, bool]:
    """Withdraw a core-data request in the caller's transaction: erase what it brought,
    and tell the holder (unless it refused already: then nothing is held there)."""
    reply = dict(asked.reply or {})
    erased = reply.pop("core_data", None) is not None
    if erased:
        reply["erased"] = {"at": now.isoformat(), "why": "verdict revised by two examiners"}
    conn.execute(
        update(requests_out)
        .where(requests_out.c.id == asked.id)
        .values(status="cancelled", cancelled_at=now, cancelled_by=by, reply=reply or None)
    )
    if asked.status == "refused":
        return None, erased
    notice = CoreDataCancelled(
        in_reply_to=asked.message_id,
        requesting_party=node.party,
        holder_party=asked.holder_party,
        reference=asked.reference,
        reason=CancelReason.VERDICT_REVISED,
        erased=erased,
        at=now,
    )
    envelope = node.signer.sign(notice.model_dump(mode="json"))
    enqueue(conn, notice.message_id, notice.kind, asked.holder_party, envelope.to_dict())
    return _Sent(notice.message_id, envelope.signature), erased


def visible(
    node: Node, user: User, decided: dict[tuple[str, str], list[Any]]
) -> dict[tuple[str, str], list[Any]]:
    """The effective verdicts per candidate that ``user`` may see in lists: a proposed
    change is not a verdict, and a blind second examiner sees none of a candidate that
    awaits them (four-eyes)."""
    shown = {}
    for key, rows in decided.items():
        state = standing_of(list(rows), node.config.four_eyes)
        shown[key] = [] if state.blind_for(user) else [r for r in rows if r.status == "effective"]
    return shown
