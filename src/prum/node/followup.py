"""Step 2 at a node: human verification, core-data requests, release decisions, and
the durable outbox that carries them through the router exactly once.

Requesting side: an examiner records confirmed / rejected / inconclusive with a
justification; only a confirmed candidate allows a CoreDataRequest, which must carry
the facts and the offence category. Holding side: the request lands in the inbox with
a 48-hour deadline (Art 47); an approver who is not the verifier releases the core
data or refuses with a reason; a judicial-authorisation hold pauses the clock.

Exactly once: a message is written to the outbox in the same transaction as the
decision that produced it, and retried until the destination acknowledges it; the
destination records every accepted message id in the same transaction as its effect,
so a redelivery after a crash is acknowledged and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from prum.audit.events import AuditEvent, EventKind, Outcome
from prum.categories.interface import CoreDataSource
from prum.errors import (
    BadInput,
    CategoryNotOffered,
    NotAuthorised,
    NotVerified,
    SeparationOfDuties,
    UnknownReference,
    WrongState,
)
from prum.federation.messages import (
    CoreData,
    CoreDataCancelled,
    CoreDataHold,
    CoreDataReply,
    CoreDataRequest,
    HoldReason,
    Purpose,
    RefusalReason,
)
from prum.federation.security.pki import PeerIdentity
from prum.node import verdicts
from prum.node.core import Node, utcnow, validated
from prum.node.exchange import find_candidate, load_search
from prum.node.inbox import accept_once
from prum.node.notifications import notify
from prum.node.outbox import ABIS_KINDS, enqueue
from prum.node.schema import (
    core_data,
    outbox,
    requests_in,
    requests_out,
)
from prum.node.users import Role, User
from prum.node.withdrawal import receive_withdrawal

PREFIX = verdicts.PREFIX

# Retry delays of undelivered messages double from the configured start up to this.
MAX_RETRY_SECONDS = 60.0
# Half the 5-minute replay window of the protocol (docs/protocol.md).
RESIGN_AFTER = dt.timedelta(seconds=150)


# --- requesting side --------------------------------------------------------------------


# Record an examiner's outcome for one candidate of one search (after a core-data
# request, a proposed change that a second examiner must countersign): the one
# function of prum.node.verdicts, under the name the API and the workbench call.
verify_candidate = verdicts.record


def request_core_data(
    node: Node,
    user: User,
    search_id: int,
    *,
    party: str,
    reference: str,
    facts: str,
    offence: str | None = None,
) -> int:
    """Queue a reasoned request for core data of a confirmed candidate."""
    if not ({Role.OFFICER, Role.EXAMINER} & user.roles):
        user.require(Role.OFFICER)
    search = load_search(node, search_id)
    withdrawn = find_candidate(search, party, reference).get("withdrawn")
    if withdrawn:
        raise WrongState(
            f"{party} withdrew candidate {reference} ({withdrawn['words']}): there is no"
            " core data to request"
        )
    verdicts.two_steps(search)
    standing = verdicts.standing(node, search_id, party, reference)
    verification = standing.latest
    if standing.awaiting_second:
        raise NotVerified(
            f"candidate {reference} of {party} was confirmed by one examiner; under four-eyes"
            " verification a second examiner must confirm it before core data can be requested"
        )
    if not standing.confirmed:
        state = "not verified" if verification is None else f"verified as {verification.decision}"
        raise NotVerified(
            f"candidate {reference} of {party} is {state}; core data can be requested only"
            " after a qualified examiner confirmed the match"
        )
    request: CoreDataRequest = validated(
        CoreDataRequest,
        {
            "requesting_party": node.party,
            "holder_party": party,
            "reference": reference,
            "category": search["category"],
            "search_message_id": search["message_id"],
            "requesting_user": user.name,
            "verified_by": verification.user,
            "facts": facts,
            "purpose": search["purpose"],
            # A missing-person or remains search named no offence (stored as "", 0).
            "offence": offence or search["offence"] or None,
            "max_penalty_months": (
                search["max_penalty_months"]
                if search["purpose"] == Purpose.INVESTIGATION.value
                else None
            ),
            "case_reference": search["case_reference"],
        },
    )
    envelope = node.signer.sign(request.wire())
    try:
        with node.engine.begin() as conn:
            pk = conn.execute(
                insert(requests_out).values(
                    message_id=request.message_id,
                    search_id=search_id,
                    holder_party=party,
                    reference=reference,
                    user=user.name,
                    facts=request.facts,
                    offence=request.offence or "",
                    status="sent",
                    created_at=utcnow(),
                )
            ).inserted_primary_key
            enqueue(conn, request.message_id, request.kind, party, envelope.to_dict())
    except IntegrityError:
        raise WrongState(
            f"core data of {reference} was already requested for this search"
        ) from None
    assert pk is not None
    node.log(
        kind="core_data_requested",
        requesting_party=node.party,
        requested_party=party,
        category=request.category,
        offence=request.offence,
        max_penalty_months=request.max_penalty_months,
        case_reference=request.case_reference,
        user=user.name,
        message_id=request.message_id,
        reference=[reference],
        signature=envelope.signature,
    )
    return int(pk[0])


# --- the inbox (both sides) ------------------------------------------------------------


def receive(node: Node, raw: bytes, peer: PeerIdentity) -> dict[str, Any]:
    """Accept a core-data request or reply, or a holder's withdrawal notice
    (prum.node.withdrawal), delivered by the router (the sender's envelope, as bytes),
    exactly once.

    No replay time window here: the sender's outbox may legitimately retry for hours
    while this node is down. A message id already accepted is acknowledged as a
    duplicate and changes nothing, which is what protects against replays.
    """
    if peer.party != "ROUTER":
        raise NotAuthorised(f"deliveries arrive through the router, not from {peer.party}")
    message = node.verifier.verify_json(raw)
    kind = message.body.get("kind")
    if kind == "record_withdrawn":
        return receive_withdrawal(node, message)
    if kind == "core_data_hold":
        return _receive_hold(node, message)
    if kind == "core_data_cancelled":
        return _receive_cancelled(node, message)
    if kind == "core_data_request":
        request: CoreDataRequest = validated(CoreDataRequest, message.body)
        if request.requesting_party != message.signer or request.holder_party != node.party:
            raise NotAuthorised("the request is not from its signer, or not for this node")
        message_id, sender = request.message_id, request.requesting_party
    elif kind == "core_data_reply":
        reply: CoreDataReply = validated(CoreDataReply, message.body)
        if reply.holder_party != message.signer or reply.requesting_party != node.party:
            raise NotAuthorised("the reply is not from its signer, or not for this node")
        message_id, sender = reply.message_id, reply.holder_party
    else:
        raise BadInput(
            "the inbox takes core-data requests, replies, holds and cancellations and"
            f" withdrawal notices, not {kind!r}"
        )
    now = utcnow()

    def take_in(conn: Connection) -> None:
        if kind == "core_data_request":
            conn.execute(
                insert(requests_in).values(
                    message_id=request.message_id,
                    requesting_party=request.requesting_party,
                    reference=request.reference,
                    request=request.model_dump(mode="json"),
                    status="pending",
                    received_at=now,
                    paused_seconds=0.0,
                )
            )
        else:
            _store_reply(conn, reply, now)

    acknowledgement = accept_once(
        node.engine.begin(),
        message_id=message_id,
        kind=kind,
        sender=sender,
        received_at=now,
        effect=take_in,
    )
    if acknowledgement["duplicate"]:
        return acknowledgement
    if kind == "core_data_request":
        node.log(
            kind="core_data_requested",
            requesting_party=request.requesting_party,
            requested_party=node.party,
            category=request.category,
            offence=request.offence,
            max_penalty_months=request.max_penalty_months,
            case_reference=request.case_reference,
            message_id=request.message_id,
            reference=[request.reference],
            signature=message.signature,
        )
    else:
        node.log(
            kind="core_data_delivered",
            requesting_party=node.party,
            requested_party=reply.holder_party,
            message_id=reply.message_id,
            reference=[reply.reference],
            outcome="released" if reply.decision == "released" else "refused",
            reason_code=reply.reason.value if reply.reason else None,
            signature=message.signature,
        )
    return acknowledgement


def _store_reply(conn: Connection, reply: CoreDataReply, now: dt.datetime) -> None:
    """Keep the holder's answer with its request and tell the requester. An answer to a
    request this node withdrew meanwhile (the messages crossed) keeps no core data."""
    asked = conn.execute(
        select(requests_out).where(requests_out.c.message_id == reply.in_reply_to)
    ).first()
    if asked is None:
        return  # not a request of ours: acknowledged, nothing to keep
    kept = reply.model_dump(mode="json")
    if asked.status == "cancelled":
        if kept.pop("core_data", None) is not None:
            kept["erased"] = {"at": now.isoformat(), "why": "the request had been withdrawn"}
        conn.execute(
            update(requests_out)
            .where(requests_out.c.id == asked.id)
            .values(reply=kept, replied_at=now)
        )
        return
    conn.execute(
        update(requests_out)
        .where(requests_out.c.id == asked.id)
        .values(status=reply.decision, reply=kept, replied_at=now)
    )
    if reply.decision == "released":
        text = f"Core data of {reply.reference} arrived from {reply.holder_party}"
    else:
        text = f"{reply.holder_party} refused the core data of {reply.reference}"
    notify(conn, [asked.user], reply.decision, text, f"{PREFIX}/requests#request-{asked.id}")


def _receive_hold(node: Node, message: Any) -> dict[str, Any]:
    """Requesting side: the holder held our request back (or took it up again)."""
    hold: CoreDataHold = validated(CoreDataHold, message.body)
    if hold.holder_party != message.signer or hold.requesting_party != node.party:
        raise NotAuthorised("the hold is not from its signer, or not for this node")
    now = utcnow()

    def apply_hold(conn: Connection) -> None:
        asked = conn.execute(
            select(requests_out).where(
                requests_out.c.message_id == hold.in_reply_to,
                requests_out.c.holder_party == hold.holder_party,
            )
        ).first()
        if asked is not None and asked.status in ("sent", "on_hold"):
            conn.execute(
                update(requests_out)
                .where(requests_out.c.id == asked.id)
                .values(
                    status="on_hold" if hold.on_hold else "sent",
                    hold=hold.model_dump(mode="json"),
                )
            )
            words = HOLD_WORDS[hold.reason] if hold.reason else ""
            notify(
                conn,
                [asked.user],
                "hold" if hold.on_hold else "resumed",
                f"{hold.holder_party} holds your request for {hold.reference}: {words}"
                if hold.on_hold
                else f"{hold.holder_party} took your request for {hold.reference} up again",
                f"{PREFIX}/requests#request-{asked.id}",
            )
        node.audit.append_in(
            conn,
            [
                AuditEvent(
                    at=now,
                    kind=EventKind.CORE_DATA_HELD,
                    requesting_party=node.party,
                    requested_party=hold.holder_party,
                    message_id=hold.message_id,
                    reference=[hold.reference],
                    signature=message.signature,
                    detail=(
                        f"held by {hold.holder_party}: {hold.reason.value}"
                        if hold.on_hold and hold.reason
                        else f"taken up again by {hold.holder_party}"
                    ),
                )
            ],
        )

    return accept_once(
        node.audit.transaction(),
        message_id=hold.message_id,
        kind=hold.kind,
        sender=hold.holder_party,
        received_at=now,
        effect=apply_hold,
    )


def _receive_cancelled(node: Node, message: Any) -> dict[str, Any]:
    """Holding side: the requester withdrew its request; it leaves the approvers' queue."""
    notice: CoreDataCancelled = validated(CoreDataCancelled, message.body)
    if notice.requesting_party != message.signer or notice.holder_party != node.party:
        raise NotAuthorised("the cancellation is not from its signer, or not for this node")
    now = utcnow()

    def cancel(conn: Connection) -> None:
        row = conn.execute(
            select(requests_in).where(
                requests_in.c.message_id == notice.in_reply_to,
                requests_in.c.requesting_party == notice.requesting_party,
            )
        ).first()
        values: dict[str, Any] = {"cancelled": notice.model_dump(mode="json")}
        if row is not None and row.status in ("pending", "on_hold"):
            values["status"] = "cancelled"
        if row is not None:
            conn.execute(update(requests_in).where(requests_in.c.id == row.id).values(**values))
        node.audit.append_in(
            conn,
            [
                AuditEvent(
                    at=now,
                    kind=EventKind.CORE_DATA_CANCELLED,
                    requesting_party=notice.requesting_party,
                    requested_party=node.party,
                    message_id=notice.message_id,
                    reference=[notice.reference],
                    reason_code=notice.reason.value,
                    signature=message.signature,
                    detail=(
                        "withdrawn by the requester; it erased the core data released"
                        if notice.erased
                        else "withdrawn by the requester"
                    ),
                )
            ],
        )

    return accept_once(
        node.audit.transaction(),
        message_id=notice.message_id,
        kind=notice.kind,
        sender=notice.requesting_party,
        received_at=now,
        effect=cancel,
    )


# --- holding side -------------------------------------------------------------------------


def deadline_of(node: Node, row: Any, now: dt.datetime | None = None) -> dt.datetime:
    """When the reply is due: 48 h after receipt, plus time spent on a judicial hold."""
    now = now or utcnow()
    paused = dt.timedelta(seconds=row.paused_seconds or 0.0)
    if row.status == "on_hold" and row.hold_started_at is not None:
        paused += now - _aware(row.hold_started_at)
    hours = dt.timedelta(hours=node.config.core_data_deadline_hours)
    return _aware(row.received_at) + hours + paused


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


# What a requester's examiner reads for each hold reason.
HOLD_WORDS = {
    HoldReason.JUDICIAL_AUTHORISATION: (
        "judicial authorisation is needed under the holder's national law"
    ),
    HoldReason.OWNER_CONSULTED: "the authority that owns the record is being consulted",
}
MIN_EXPLANATION = 10


@dataclass(frozen=True)
class Preview:
    """Exactly what a release would send: the reply (built by the function that builds
    the outgoing message) and a digest the approver's confirmation must name."""

    reply: CoreDataReply
    digest: str

    @property
    def fields(self) -> dict[str, Any]:
        assert self.reply.core_data is not None
        return self.reply.core_data.model_dump(mode="json", exclude_defaults=True)


def _release_reply(node: Node, conn: Connection, request: CoreDataRequest) -> CoreDataReply:
    """The CoreDataReply a release sends (the preview shows this very message)."""
    stored = conn.execute(
        select(core_data.c.data).where(core_data.c.reference == request.reference)
    ).scalar_one_or_none() or _kept_by_matcher(node, request)
    if stored is None:
        raise UnknownReference(
            f"no core data is recorded for {request.reference}; it cannot be released"
        )
    return CoreDataReply(
        in_reply_to=request.message_id,
        requesting_party=request.requesting_party,
        holder_party=node.party,
        reference=request.reference,
        decision="released",
        core_data=validated(CoreData, stored),
    )


def _digest(reply: CoreDataReply) -> str:
    assert reply.core_data is not None
    data = reply.core_data.model_dump(mode="json", exclude_defaults=True)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def preview_release(node: Node, user: User, request_id: int) -> Preview:
    """The core data a release of ``request_id`` would send, for the approver to check."""
    user.require(Role.APPROVER)
    with node.engine.connect() as conn:
        row = _incoming(conn, request_id)
        reply = _release_reply(node, conn, validated(CoreDataRequest, row.request))
    return Preview(reply, _digest(reply))


def _incoming(conn: Connection, request_id: int) -> Any:
    row = conn.execute(select(requests_in).where(requests_in.c.id == request_id)).first()
    if row is None:
        raise UnknownReference(f"no incoming core-data request {request_id}")
    return row


def decide(
    node: Node,
    user: User,
    request_id: int,
    *,
    action: str,
    reason: RefusalReason | None = None,
    explanation: str | None = None,
    hold_reason: HoldReason | None = None,
    previewed: str | None = None,
) -> dict[str, Any]:
    """An approver's decision on an incoming request: release, refuse, hold or resume.

    A refusal carries a reason code and the approver's words; a hold is not a refusal:
    it names its own reason, pauses the 48-hour clock and is told to the requester
    (CoreDataHold). ``previewed``, the digest of the preview the approver confirmed, must
    still match what a release sends (the workbench always gives it).
    """
    user.require(Role.APPROVER)
    now = utcnow()
    words = (explanation or "").strip() or None
    with node.audit.transaction() as conn:
        row = _incoming(conn, request_id)
        request: CoreDataRequest = validated(CoreDataRequest, row.request)
        if row.status not in ("pending", "on_hold"):
            state = "withdrawn by the requester" if row.status == "cancelled" else row.status
            raise WrongState(f"request {request_id} was already decided ({state})")
        if request.requesting_party == node.party and request.verified_by == user.name:
            raise SeparationOfDuties(
                f"{user.name} verified this match and may not also release its core data"
            )
        where = requests_in.c.id == request_id
        common: dict[str, Any] = {
            "at": now,
            "requesting_party": request.requesting_party,
            "requested_party": node.party,
            "category": request.category,
            "case_reference": request.case_reference,
            "user": user.name,
            "reference": [request.reference],
        }
        if action in ("hold", "resume"):
            if action == "hold":
                if row.status == "on_hold":
                    raise WrongState("the request is already on hold")
                if hold_reason is None:
                    raise BadInput("a hold names its reason (judicial authorisation, ...)")
                values: dict[str, Any] = {
                    "status": "on_hold",
                    "hold_started_at": now,
                    "hold_reason": hold_reason.value,
                    "hold_note": words,
                }
            else:
                if row.status != "on_hold":
                    raise WrongState("only a request on hold can be resumed")
                paused = (row.paused_seconds or 0.0) + (
                    now - _aware(row.hold_started_at)
                ).total_seconds()
                values = {"status": "pending", "hold_started_at": None, "paused_seconds": paused}
            hold = CoreDataHold(
                in_reply_to=request.message_id,
                requesting_party=request.requesting_party,
                holder_party=node.party,
                reference=request.reference,
                on_hold=action == "hold",
                reason=hold_reason if action == "hold" else None,
                note=words if action == "hold" else None,
                at=now,
            )
            envelope = node.signer.sign(hold.model_dump(mode="json", exclude_none=True))
            conn.execute(update(requests_in).where(where).values(**values))
            enqueue(conn, hold.message_id, hold.kind, request.requesting_party, envelope.to_dict())
            node.audit.append_in(
                conn,
                [
                    AuditEvent(
                        kind=EventKind.CORE_DATA_HELD,
                        message_id=hold.message_id,
                        reason_code=hold_reason.value if hold_reason and action == "hold" else None,
                        signature=envelope.signature,
                        detail="hold set" if action == "hold" else "hold lifted",
                        **common,
                    )
                ],
            )
            return {"status": values["status"]}
        if action == "release":
            reply = _release_reply(node, conn, request)
            if previewed is not None and previewed != _digest(reply):
                raise WrongState(
                    "the core data changed since you reviewed them: review the preview again"
                )
        elif action == "refuse":
            if reason is None:
                raise BadInput("a refusal needs a reason code")
            if reason is RefusalReason.JUDICIAL_AUTHORISATION_PENDING:
                raise BadInput(
                    "a pending judicial authorisation is a hold, not a refusal: hold the request"
                )
            if words is None or len(words) < MIN_EXPLANATION:
                raise BadInput(
                    f"a refusal needs your explanation (at least {MIN_EXPLANATION} characters)"
                )
            reply = CoreDataReply(
                in_reply_to=request.message_id,
                requesting_party=request.requesting_party,
                holder_party=node.party,
                reference=request.reference,
                decision="refused",
                reason=reason,
                explanation=words,
            )
        else:
            raise BadInput(f"unknown action {action!r}: use release, refuse, hold or resume")
        envelope = node.signer.sign(reply.wire())
        conn.execute(
            update(requests_in)
            .where(where)
            .values(
                status=reply.decision,
                decided_by=user.name,
                decided_at=now,
                reason=reason.value if reason else None,
                explanation=words if action == "refuse" else None,
            )
        )
        enqueue(conn, reply.message_id, reply.kind, request.requesting_party, envelope.to_dict())
        node.audit.append_in(
            conn,
            [
                AuditEvent(
                    kind=EventKind.CORE_DATA_DECIDED,
                    message_id=reply.message_id,
                    outcome=Outcome.RELEASED if reply.decision == "released" else Outcome.REFUSED,
                    reason_code=reason.value if reason else None,
                    signature=envelope.signature,
                    **common,
                )
            ],
        )
    return {"status": reply.decision}


# --- the outbox ------------------------------------------------------------------------------


def _kept_by_matcher(node: Node, request: CoreDataRequest) -> dict[str, Any] | None:
    """Core data a category's own store keeps (police records), if it has them."""
    try:
        matcher = node.matcher(request.category)
    except CategoryNotOffered:
        return None
    if not isinstance(matcher, CoreDataSource):
        return None
    try:
        return matcher.core_data(request.reference).model_dump(mode="json", exclude_none=True)
    except UnknownReference:
        return None


async def deliver_due(node: Node, client: httpx.AsyncClient) -> int:
    """Try every due message once; returns how many were acknowledged."""
    now = utcnow()
    with node.engine.connect() as conn:
        due = conn.execute(
            select(outbox.c.id, outbox.c.envelope, outbox.c.attempts)
            .where(outbox.c.delivered_at.is_(None), outbox.c.next_attempt_at <= now)
            .where(outbox.c.kind.not_in(ABIS_KINDS))  # prum.node.abis.delivery's
            .order_by(outbox.c.id)
            .limit(50)
        ).all()
    delivered = 0
    for row in due:
        error = None
        envelope = _fresh(node, row)
        try:
            response = await client.post(
                f"{node.config.router_url}/v1/deliver", json=envelope, timeout=15
            )
            if response.status_code == 200:
                with node.engine.begin() as conn:
                    conn.execute(
                        update(outbox)
                        .where(outbox.c.id == row.id)
                        .values(delivered_at=utcnow(), attempts=row.attempts + 1)
                    )
                delivered += 1
                continue
            error = f"HTTP {response.status_code}: {response.text[:300]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        delay = min(MAX_RETRY_SECONDS, node.config.outbox_retry_seconds * 2**row.attempts)
        with node.engine.begin() as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.id == row.id)
                .values(
                    attempts=row.attempts + 1,
                    last_error=error,
                    next_attempt_at=utcnow() + dt.timedelta(seconds=delay),
                )
            )
    return delivered


def _fresh(node: Node, row: Any) -> dict[str, Any]:
    """The envelope to send now: re-signed with a new ``issued_at`` once it is older
    than half the router's replay window, so a message held back for hours (the
    destination was down) is still accepted. The message id stays, so the destination
    still recognises a repeat."""
    envelope: dict[str, Any] = row.envelope
    issued = dt.datetime.fromisoformat(envelope["body"]["issued_at"].replace("Z", "+00:00"))
    if utcnow() - issued < RESIGN_AFTER:
        return envelope
    body = dict(envelope["body"], issued_at=utcnow().isoformat().replace("+00:00", "Z"))
    envelope = node.signer.sign(body).to_dict()
    with node.engine.begin() as conn:
        conn.execute(update(outbox).where(outbox.c.id == row.id).values(envelope=envelope))
    return envelope


async def run_outbox(node: Node, client: httpx.AsyncClient, wake: asyncio.Event) -> None:
    """Deliver forever: at once when woken (a new message), else every half second."""
    while True:
        try:
            await deliver_due(node, client)
        except Exception:  # a failed round is retried; the loop must not die
            logging.getLogger("prum.outbox").exception("outbox round failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=0.5)
        wake.clear()
