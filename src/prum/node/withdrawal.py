"""Erasure that reaches every copy: a holder's withdrawal notices, and what a receiver
does with them (issue 28).

Holding side: every reference this node sends as a candidate is recorded per party
(``node_references_sent``, written before the answer leaves). When a national system
deletes a record, or replaces it by a new version under a new reference, the same
transaction that erases it queues one signed :class:`RecordWithdrawn` per party that
received the reference, in the durable outbox (prum.node.followup), so the notice
leaves exactly once whatever crashes, and is retried while the party is down.

A search answered at the moment its candidate is erased cannot slip between the two:
the answering node writes its sent references first, then locks the candidates'
national records (PostgreSQL; SQLite writes one transaction at a time), and a
reference whose record is already gone is withdrawn at once.

Receiving side: the candidate's image and details are removed from every stored
answer of the holder that named the reference, and released core data of it from the
core-data requests; each keeps a marker (``withdrawn``: reason and time) so the
examiner sees what happened and why. The effect, the inbox entry and the audit entry
commit together, so a redelivery is acknowledged and changes nothing.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Text, cast, delete, or_, select, text, update

from prum.audit.events import AuditEvent, EventKind
from prum.audit.store import write_transaction
from prum.errors import NotAuthorised
from prum.federation.messages import (
    MAX_WITHDRAWN,
    Candidate,
    Category,
    RecordWithdrawn,
    Withdrawal,
    WithdrawalReason,
)
from prum.federation.security.signing import VerifiedMessage
from prum.node.core import Node, utcnow, validated
from prum.node.inbox import accept_once
from prum.node.notifications import notify
from prum.node.outbox import enqueue
from prum.node.schema import (
    national_records,
    record_changes,
    references_sent,
    requests_out,
    searches,
)

# What an examiner reads for each reason (the workbench shows words, not codes).
REASON_WORDS = {
    WithdrawalReason.ERASURE: "erased by the holder as the law requires",
    WithdrawalReason.RECTIFICATION: "rectified by the holder: the record was wrong and replaced",
    WithdrawalReason.RETENTION_EXPIRED: "deleted by the holder: its retention period ended",
    WithdrawalReason.ACQUITTAL: "deleted by the holder after an acquittal",
    WithdrawalReason.COURT_ORDER: "deleted by the holder on a court order",
    WithdrawalReason.DUPLICATE: "deleted by the holder as a duplicate",
    WithdrawalReason.UNLAWFUL: "deleted by the holder: it had been processed unlawfully",
}

# References per statement: well under SQLite's bound-parameter limit.
_PART = 500

Erased = tuple[str, Category, str]  # (reference, category, reason)


def _parts(values: Sequence[str], size: int = _PART) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


# --- holding side ------------------------------------------------------------------------

# Add a sent reference once: valid on SQLite (3.24+) and PostgreSQL.
_RECORD_SENT = text(
    "INSERT INTO node_references_sent (reference, party, first_sent_at)"
    " VALUES (:reference, :party, :at) ON CONFLICT (reference, party) DO NOTHING"
)


def record_sent(node: Node, party: str, candidates: Sequence[Candidate]) -> None:
    """Remember which references go to ``party`` (before the answer leaves), and withdraw
    at once any whose record was erased while the search ran."""
    references = sorted({c.reference for c in candidates})
    if not references:
        return
    now = utcnow()
    with write_transaction(node.engine) as conn:
        conn.execute(
            _RECORD_SENT, [{"reference": r, "party": party, "at": now} for r in references]
        )
        gone: list[Erased] = []
        for part in _parts(references):
            held = set(
                conn.execute(
                    select(national_records.c.reference)
                    .where(national_records.c.reference.in_(part))
                    .with_for_update()  # waits for an erasure in flight to commit
                ).scalars()
            )
            missing = [r for r in part if r not in held]
            if not missing:
                continue
            # Not a current national record: erased if a national system ever wrote it
            # (a record loaded otherwise has no change).
            rows = conn.execute(
                select(
                    record_changes.c.reference,
                    record_changes.c.category,
                    record_changes.c.operation,
                    record_changes.c.reason,
                ).where(record_changes.c.reference.in_(missing))
            ).all()
            reasons: dict[str, tuple[str, str]] = {}
            for reference, category, operation, reason in rows:
                if operation == "deleted":
                    reasons[reference] = (category, reason or WithdrawalReason.ERASURE.value)
                else:
                    reasons.setdefault(reference, (category, WithdrawalReason.RECTIFICATION.value))
            gone += [(r, Category(c), why) for r, (c, why) in reasons.items()]
        if gone:
            node.audit.append_in(conn, queue_withdrawals(node, conn, gone))


def queue_withdrawals(node: Node, conn: Connection, erased: Sequence[Erased]) -> list[AuditEvent]:
    """In the caller's transaction (the one that erases the records): one notice per
    party that received any of the references, in the outbox; its audit events."""
    if not erased:
        return []

    what = {reference: (category, reason) for reference, category, reason in erased}
    receivers: dict[tuple[str, Category, str], list[str]] = {}
    for part in _parts(sorted(what)):
        rows = conn.execute(
            select(references_sent.c.reference, references_sent.c.party).where(
                references_sent.c.reference.in_(part)
            )
        ).all()
        for reference, party in rows:
            category, reason = what[reference]
            receivers.setdefault((party, category, reason), []).append(reference)
        conn.execute(delete(references_sent).where(references_sent.c.reference.in_(part)))
    now = utcnow()
    events = []
    for (party, category, reason), references in sorted(receivers.items()):
        for chunk in _parts(sorted(references), MAX_WITHDRAWN):
            notice = RecordWithdrawn(
                holder_party=node.party,
                requesting_party=party,
                withdrawn=[
                    Withdrawal(reference=r, category=category, reason=WithdrawalReason(reason))
                    for r in chunk
                ],
                withdrawn_at=now,
            )
            envelope = node.signer.sign(notice.model_dump(mode="json"))
            enqueue(conn, notice.message_id, notice.kind, party, envelope.to_dict())
            events.append(
                AuditEvent(
                    at=now,
                    kind=EventKind.RECORD_WITHDRAWN,
                    requesting_party=party,
                    requested_party=node.party,
                    category=category,
                    message_id=notice.message_id,
                    reference=list(chunk),
                    reason_code=reason,
                    signature=envelope.signature,
                    detail=f"withdrawal notice queued for {party}",
                )
            )
    return events


# --- receiving side ----------------------------------------------------------------------


def receive_withdrawal(node: Node, message: VerifiedMessage) -> dict[str, Any]:
    """Apply a holder's notice exactly once: remove the copies, keep the markers, log."""
    notice: RecordWithdrawn = validated(RecordWithdrawn, message.body)
    if notice.holder_party != message.signer or notice.requesting_party != node.party:
        raise NotAuthorised("the notice is not from its signer, or not for this node")
    now = utcnow()

    def withdraw(conn: Connection) -> None:
        candidates = _withdraw_candidates(conn, notice, now)
        releases = _withdraw_core_data(conn, notice, now)
        reasons = sorted({w.reason.value for w in notice.withdrawn})
        categories = {w.category for w in notice.withdrawn}
        node.audit.append_in(
            conn,
            [
                AuditEvent(
                    at=now,
                    kind=EventKind.RECORD_WITHDRAWN,
                    requesting_party=node.party,
                    requested_party=notice.holder_party,
                    category=categories.pop() if len(categories) == 1 else None,
                    message_id=notice.message_id,
                    reference=[w.reference for w in notice.withdrawn],
                    reason_code=reasons[0] if len(reasons) == 1 else "several",
                    candidate_count=min(candidates, 1000),
                    signature=message.signature,
                    detail=(
                        f"withdrawn by {notice.holder_party}: {candidates} candidate(s)"
                        f" and {releases} core-data release(s) removed"
                    ),
                )
            ],
        )

    return accept_once(
        node.audit.transaction(),
        message_id=notice.message_id,
        kind=notice.kind,
        sender=notice.holder_party,
        received_at=now,
        effect=withdraw,
    )


def _marker(withdrawal: Withdrawal, notice: RecordWithdrawn, now: dt.datetime) -> dict[str, str]:
    return {
        "reason": withdrawal.reason.value,
        "words": REASON_WORDS[withdrawal.reason],
        "at": notice.withdrawn_at.isoformat(),
        "received_at": now.isoformat(),
        "message_id": notice.message_id,
    }


def _withdraw_candidates(conn: Connection, notice: RecordWithdrawn, now: dt.datetime) -> int:
    """Strip the image and details of each withdrawn candidate of the holder from every
    stored answer; how many candidates were stripped."""
    by_reference = {w.reference: w for w in notice.withdrawn}
    text_of_reply = cast(searches.c.reply, Text)
    stripped = 0
    # The stored answers are JSON: find those naming a reference by its text, then check.
    rows = conn.execute(
        select(searches.c.id, searches.c.reply, searches.c.user).where(
            searches.c.reply.is_not(None),
            or_(*[text_of_reply.contains(r, autoescape=True) for r in by_reference]),
        )
    ).all()
    for row in rows:
        reply = copy.deepcopy(row.reply)
        changed = 0
        for answer in reply.get("replies", []):
            if answer.get("party") != notice.holder_party:
                continue
            for candidate in answer.get("candidates", []):
                withdrawal = by_reference.get(candidate.get("reference"))
                if withdrawal is None or candidate.get("withdrawn"):
                    continue
                candidate["image"] = None
                candidate["details"] = None
                candidate["withdrawn"] = _marker(withdrawal, notice, now)
                changed += 1
        if changed:
            conn.execute(update(searches).where(searches.c.id == row.id).values(reply=reply))
            stripped += changed
            notify(
                conn,
                [row.user],
                "withdrawn",
                f"{notice.holder_party} withdrew {changed} candidate(s) of your search #{row.id}",
                f"/workbench/searches/{row.id}",
            )
    return stripped


def _withdraw_core_data(conn: Connection, notice: RecordWithdrawn, now: dt.datetime) -> int:
    """Erase released core data of the withdrawn references; the request keeps its
    status and a marker. How many releases were erased."""
    by_reference = {w.reference: w for w in notice.withdrawn}
    rows = conn.execute(
        select(
            requests_out.c.id, requests_out.c.reference, requests_out.c.reply, requests_out.c.user
        ).where(
            requests_out.c.holder_party == notice.holder_party,
            requests_out.c.reference.in_(list(by_reference)),
        )
    ).all()
    erased = 0
    for row in rows:
        reply = dict(row.reply or {})
        if reply.get("withdrawn"):
            continue
        gone = reply.pop("core_data", None) is not None
        erased += gone
        reply["withdrawn"] = _marker(by_reference[row.reference], notice, now)
        conn.execute(update(requests_out).where(requests_out.c.id == row.id).values(reply=reply))
        notify(
            conn,
            [row.user],
            "withdrawn",
            f"{notice.holder_party} withdrew {row.reference}"
            + ("; the core data it had released were deleted here" if gone else ""),
            f"/workbench/requests#request-{row.id}",
        )
    return erased
