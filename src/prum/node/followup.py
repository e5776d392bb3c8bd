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
import logging
from typing import Any

import httpx
from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

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
    Category,
    CoreData,
    CoreDataReply,
    CoreDataRequest,
    Decision,
    Purpose,
    RefusalReason,
)
from prum.federation.security.pki import PeerIdentity
from prum.node.categories import ANSWERED_AT_ONCE
from prum.node.core import Node, utcnow, validated
from prum.node.exchange import find_candidate, load_search
from prum.node.outbox import ABIS_KINDS, enqueue
from prum.node.schema import (
    core_data,
    inbox,
    outbox,
    requests_in,
    requests_out,
    verifications,
)
from prum.node.users import Role, User
from prum.node.withdrawal import receive_withdrawal

# Retry delays of undelivered messages double from the configured start up to this.
MAX_RETRY_SECONDS = 60.0
# Half the 5-minute replay window of the protocol (docs/protocol.md).
RESIGN_AFTER = dt.timedelta(seconds=150)


# --- requesting side --------------------------------------------------------------------


def verify_candidate(
    node: Node,
    user: User,
    search_id: int,
    *,
    party: str,
    reference: str,
    decision: Decision,
    justification: str,
) -> int:
    """Record an examiner's outcome for one candidate of one search."""
    user.require(Role.EXAMINER)
    search = load_search(node, search_id)
    find_candidate(search, party, reference)
    _two_steps(search)
    text = justification.strip()
    if len(text) < 10:
        raise BadInput("a justification of at least 10 characters is required")
    with node.engine.begin() as conn:
        pk = conn.execute(
            insert(verifications).values(
                search_id=search_id,
                party=party,
                reference=reference,
                decision=decision.value,
                justification=text,
                user=user.name,
                decided_at=utcnow(),
            )
        ).inserted_primary_key
    assert pk is not None
    node.log(
        kind="candidate_verified",
        requesting_party=node.party,
        requested_party=party,
        category=search["category"],
        case_reference=search["case_reference"],
        user=user.name,
        message_id=search["message_id"],
        reference=[reference],
        outcome=decision.value,
    )
    return int(pk[0])


def _two_steps(search: dict[str, Any]) -> None:
    if Category(search["category"]) in ANSWERED_AT_ONCE:
        raise WrongState(
            f"{search['category']} answers carry the data at once: there is nothing to"
            " verify and no core data to request"
        )


def latest_verification(conn: Connection, search_id: int, party: str, reference: str) -> Any:
    return conn.execute(
        select(verifications)
        .where(
            verifications.c.search_id == search_id,
            verifications.c.party == party,
            verifications.c.reference == reference,
        )
        .order_by(verifications.c.id.desc())
        .limit(1)
    ).first()


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
    _two_steps(search)
    with node.engine.connect() as conn:
        verification = latest_verification(conn, search_id, party, reference)
    if verification is None or verification.decision != Decision.CONFIRMED.value:
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
            f"the inbox takes core-data requests and replies and withdrawal notices, not {kind!r}"
        )
    now = utcnow()
    try:
        with node.engine.begin() as conn:
            conn.execute(
                insert(inbox).values(
                    message_id=message_id, kind=kind, sender=sender, received_at=now
                )
            )
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
                conn.execute(
                    update(requests_out)
                    .where(requests_out.c.message_id == reply.in_reply_to)
                    .values(
                        status=reply.decision,
                        reply=reply.model_dump(mode="json"),
                        replied_at=now,
                    )
                )
    except IntegrityError:
        return {"accepted": message_id, "duplicate": True}
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
    return {"accepted": message_id, "duplicate": False}


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


def decide(
    node: Node,
    user: User,
    request_id: int,
    *,
    action: str,
    reason: RefusalReason | None = None,
) -> dict[str, Any]:
    """An approver's decision on an incoming request: release, refuse, hold or resume."""
    user.require(Role.APPROVER)
    now = utcnow()
    with node.engine.begin() as conn:
        row = conn.execute(select(requests_in).where(requests_in.c.id == request_id)).first()
        if row is None:
            raise UnknownReference(f"no incoming core-data request {request_id}")
        request: CoreDataRequest = validated(CoreDataRequest, row.request)
        if row.status not in ("pending", "on_hold"):
            raise WrongState(f"request {request_id} was already decided ({row.status})")
        if request.requesting_party == node.party and request.verified_by == user.name:
            raise SeparationOfDuties(
                f"{user.name} verified this match and may not also release its core data"
            )
        where = requests_in.c.id == request_id
        if action == "hold":
            if row.status == "on_hold":
                raise WrongState("the request is already on hold")
            conn.execute(
                update(requests_in).where(where).values(status="on_hold", hold_started_at=now)
            )
            return {"status": "on_hold"}
        if action == "resume":
            if row.status != "on_hold":
                raise WrongState("only a request on hold can be resumed")
            paused = (row.paused_seconds or 0.0) + (
                now - _aware(row.hold_started_at)
            ).total_seconds()
            conn.execute(
                update(requests_in)
                .where(where)
                .values(status="pending", hold_started_at=None, paused_seconds=paused)
            )
            return {"status": "pending"}
        if action == "release":
            stored = conn.execute(
                select(core_data.c.data).where(core_data.c.reference == request.reference)
            ).scalar_one_or_none() or _kept_by_matcher(node, request)
            if stored is None:
                raise UnknownReference(
                    f"no core data is recorded for {request.reference}; it cannot be released"
                )
            reply = CoreDataReply(
                in_reply_to=request.message_id,
                requesting_party=request.requesting_party,
                holder_party=node.party,
                reference=request.reference,
                decision="released",
                core_data=validated(CoreData, stored),
            )
        elif action == "refuse":
            if reason is None:
                raise BadInput("a refusal needs a reason code")
            reply = CoreDataReply(
                in_reply_to=request.message_id,
                requesting_party=request.requesting_party,
                holder_party=node.party,
                reference=request.reference,
                decision="refused",
                reason=reason,
            )
        else:
            raise BadInput(f"unknown action {action!r}: use release, refuse, hold or resume")
        envelope = node.signer.sign(reply.model_dump(mode="json"))
        conn.execute(
            update(requests_in)
            .where(where)
            .values(
                status=reply.decision,
                decided_by=user.name,
                decided_at=now,
                reason=reason.value if reason else None,
            )
        )
        enqueue(conn, reply.message_id, reply.kind, request.requesting_party, envelope.to_dict())
    node.log(
        kind="core_data_decided",
        requesting_party=request.requesting_party,
        requested_party=node.party,
        category=request.category,
        case_reference=request.case_reference,
        user=user.name,
        message_id=reply.message_id,
        reference=[request.reference],
        outcome="released" if reply.decision == "released" else "refused",
        reason_code=reason.value if reason else None,
        signature=envelope.signature,
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
