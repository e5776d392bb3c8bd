"""Checks of step 2 (Reg. 2024/982 Art 47; docs/protocol.md, /v1/deliver and the
node's /v1/inbox): a core-data request for a reference the node returned is
acknowledged once, its redeliveries are acknowledged as duplicates, and the node's
answers come back through the router, signed, released with core data or refused with
a reason, and retried while the router cannot deliver them.

The decisions themselves are human: without ``--await-decisions`` the checks that
need the tested node's approver are not applicable. With it, the kit sends requests
whose facts say what the approver is asked to do (release, refuse, hold, try to
release an unknown reference) and waits for the answers on its delivery endpoint.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from pydantic import ValidationError

from prum.conformance.checks import (
    OFFENCE,
    SEVERE_PENALTY_MONTHS,
    Context,
    Failed,
    NotApplicable,
    check,
    expect,
)
from prum.conformance.wire import Answer, Delivery, error_shape_problem
from prum.federation.messages import CoreDataHold, CoreDataRequest, RefusalReason
from prum.federation.security.signing import format_time

ART47 = "Reg. 2024/982 Art 47; docs/protocol.md (/v1/inbox)"
DELIVER = "docs/protocol.md (/v1/deliver, the sender's outbox)"
NEEDS_APPROVER = (
    "needs an approver at the tested node: run with --await-decisions SECONDS and act on"
    " the requests the kit lists while it waits"
)
# After the release and refusal arrived: how long a held request must stay unanswered.
HOLD_GRACE_SECONDS = 3.0
# The asks, in the facts of each request (an approver reads them in the inbox).
ASKS = {
    "release": "RELEASE the core data of this request.",
    "refuse": "REFUSE this request with any reason code.",
    "hold": "put this request ON HOLD (judicial authorisation pending); do not answer it.",
    "unknown": "TRY TO RELEASE this request: its reference was never returned, so it must fail.",
}
UNKNOWN_REFERENCE = "CONFORMANCE-NO-SUCH-REF"


def _request(ctx: Context, ask: str, reference: str | None = None) -> dict[str, Any]:
    body, reply = ctx.hit()
    request = CoreDataRequest(
        requesting_party=ctx.wire.requester,
        holder_party=ctx.party,
        reference=reference or reply.candidates[0].reference,
        category=body["category"],
        search_message_id=body["message_id"],
        requesting_user="conformance-kit",
        verified_by="conformance-examiner",
        facts=f"Conformance kit, request '{ask}': {ASKS[ask]}",
        offence=OFFENCE,
        max_penalty_months=SEVERE_PENALTY_MONTHS,
        case_reference="CONFORMANCE-1",
    )
    return request.model_dump(mode="json")


def _ack(answer: Answer, message_id: str, duplicate: bool, what: str) -> str:
    expect(answer.status == 200, f"{what}: {answer.describe()}")
    body = answer.json()
    expect(
        isinstance(body, dict) and body.get("accepted") == message_id,
        f"{what}: not accepted as {message_id}: {answer.describe()}",
    )
    expect(
        body.get("duplicate") is duplicate,
        f"{what}: duplicate is {body.get('duplicate')!r}, not {duplicate}",
    )
    return f"{{'accepted': ..., 'duplicate': {str(duplicate).lower()}}}"


def _refused(answer: Answer, statuses: set[int], what: str) -> str:
    expect(
        answer.status in statuses,
        f"{what}: expected HTTP {sorted(statuses)}, got {answer.describe()}",
    )
    problem = error_shape_problem(answer)
    expect(problem is None, f"{what}: {problem}")
    return f"HTTP {answer.status} {answer.json()['code']}"


def _send(
    ctx: Context, ask: str, reference: str | None = None
) -> tuple[dict[str, Any], bytes, Answer]:
    body = _request(ctx, ask, reference)
    envelope = ctx.wire.sign(body)
    answer = ctx.wire.post("/v1/inbox", envelope)
    ctx.memo.setdefault("step2", {})[ask] = (body, answer)
    return body, envelope, answer


@check(
    "step2.request_acknowledged",
    ART47,
    "a reasoned request for a returned reference is taken in, and the holder says so",
)
def acknowledged(ctx: Context) -> str:
    body, envelope, answer = _send(ctx, "release")
    ctx.memo["release_envelope"] = envelope
    return _ack(answer, body["message_id"], False, "a core-data request")


@check(
    "step2.redelivery_is_duplicate",
    f"{DELIVER}: a repeat is acknowledged as a duplicate",
    "the sender's outbox retries until acknowledged; a replay acts only once",
)
def redelivery(ctx: Context) -> str:
    envelope = ctx.memo.get("release_envelope")
    if envelope is None:
        raise NotApplicable("no request was acknowledged (see step2.request_acknowledged)")
    return _ack(
        ctx.wire.post("/v1/inbox", envelope),
        json.loads(envelope)["body"]["message_id"],
        True,
        "the same envelope again",
    )


@check(
    "step2.resigned_redelivery_is_duplicate",
    f"{DELIVER}: re-signed with a fresh issued_at, same message_id",
    "an outbox that re-signs an old message is still recognised",
)
def resigned(ctx: Context) -> str:
    envelope = ctx.memo.get("release_envelope")
    if envelope is None:
        raise NotApplicable("no request was acknowledged (see step2.request_acknowledged)")
    body = dict(json.loads(envelope)["body"], issued_at=format_time(dt.datetime.now(dt.UTC)))
    return _ack(
        ctx.wire.post("/v1/inbox", ctx.wire.sign(body)),
        body["message_id"],
        True,
        "the same message re-signed",
    )


@check(
    "step2.altered_refused",
    ART47,
    "a core-data request changed after signing (another reference) is refused",
)
def altered(ctx: Context) -> str:
    envelope = json.loads(ctx.wire.sign(_request(ctx, "refuse")))
    envelope["body"]["reference"] = UNKNOWN_REFERENCE
    return _refused(
        ctx.wire.post("/v1/inbox", json.dumps(envelope).encode()), {403}, "an altered request"
    )


@check(
    "step2.signer_is_requester",
    f"{ART47}: signed by its requesting_party",
    "core data go only to the party that asked, proven by its signature",
)
def signer(ctx: Context) -> str:
    envelope = ctx.wire.sign(_request(ctx, "refuse"), ctx.wire.impostor)
    return _refused(
        ctx.wire.post("/v1/inbox", envelope),
        {403},
        f"a request of {ctx.wire.requester} signed by {ctx.wire.impostor}",
    )


@check(
    "step2.other_holder_refused",
    f"{ART47}: holder_party is the receiving node",
    "a node takes in requests addressed to it only",
)
def other_holder(ctx: Context) -> str:
    body = dict(_request(ctx, "refuse"), holder_party=ctx.wire.exhausted)
    return _refused(
        ctx.wire.post("/v1/inbox", ctx.wire.sign(body)),
        {403},
        f"a request addressed to {ctx.wire.exhausted}",
    )


@check(
    "step2.inbox_kind_refused",
    "docs/protocol.md, Node (/v1/inbox takes CoreDataRequest / CoreDataReply)",
    "a search posted to the inbox is bad input, not a request",
)
def inbox_kind(ctx: Context) -> str:
    body = ctx.search_body(ctx.first_category())
    return _refused(
        ctx.wire.post("/v1/inbox", ctx.wire.sign(body)),
        {400},
        "a SearchRequest posted to /v1/inbox",
    )


@check(
    "step2.requests_sent",
    ART47,
    "the requests an approver decides on are taken in (refuse, hold, unknown reference)",
)
def requests_sent(ctx: Context) -> str:
    seen = []
    for ask, reference in (("refuse", None), ("hold", None), ("unknown", UNKNOWN_REFERENCE)):
        body, _, answer = _send(ctx, ask, reference)
        if ask == "unknown" and answer.status != 200:
            what = "a request for an unknown reference"
            seen.append(f"unknown: {_refused(answer, {400, 403, 404, 409}, what)}")
            continue
        seen.append(f"{ask}: {_ack(answer, body['message_id'], False, f'the {ask} request')}")
    return "; ".join(seen)


def _decisions(ctx: Context) -> dict[str, list[Delivery]]:
    """Wait (once) for the approver's answers to the release and refuse requests."""
    if ctx.await_decisions is None or ctx.listener is None:
        raise NotApplicable(NEEDS_APPROVER)
    sent = ctx.memo.get("step2", {})
    if "release" not in sent or "refuse" not in sent:
        raise NotApplicable("the requests were not all taken in (see step2.requests_sent)")
    if "decisions" not in ctx.memo:
        ids = {ask: body["message_id"] for ask, (body, _) in sent.items()}
        print(_instructions(ctx, ids), flush=True)
        deadline = time.monotonic() + ctx.await_decisions
        while time.monotonic() < deadline:
            if all(_accepted(ctx, ids[a]) for a in ("release", "refuse")):
                time.sleep(HOLD_GRACE_SECONDS)
                break
            time.sleep(0.2)
        ctx.memo["decisions"] = {ask: ctx.listener.replies_to(i) for ask, i in ids.items()}
    return ctx.memo["decisions"]  # type: ignore[no-any-return]


def _accepted(ctx: Context, message_id: str) -> bool:
    assert ctx.listener is not None
    return any(d.answered == 200 for d in ctx.listener.replies_to(message_id))


def _instructions(ctx: Context, ids: dict[str, str]) -> str:
    lines = [f"Waiting up to {ctx.await_decisions:.0f} s for {ctx.party}'s approver to act on:"]
    lines += [f"  request {ids[a]}: {ASKS[a]}" for a in ids]
    return "\n".join(lines)


def _one(ctx: Context, ask: str) -> Delivery:
    deliveries = _decisions(ctx).get(ask, [])
    expect(
        bool(deliveries),
        f"no answer to the {ask} request arrived within {ctx.await_decisions:.0f} s",
    )
    delivery = deliveries[0]
    expect(
        delivery.peer == ctx.party,
        f"delivered over a TLS connection of {delivery.peer}, not {ctx.party}",
    )
    expect(
        delivery.signer_problem is None,
        f"the answer is not signed by {ctx.party}: {delivery.signer_problem}",
    )
    return delivery


@check(
    "step2.release",
    f"{ART47}: core data released by a human of the holder",
    "a release reaches the requester signed by the holder, with the core data, for the request",
)
def release(ctx: Context) -> str:
    delivery, (body, _) = _one(ctx, "release"), ctx.memo["step2"]["release"]
    reply = delivery.reply
    assert reply is not None
    expect(
        reply.decision == "released" and reply.core_data is not None,
        f"decision {reply.decision}, not a release with core data",
    )
    expect(
        reply.reference == body["reference"] and reply.holder_party == ctx.party,
        "the release names another reference or holder",
    )
    expect(
        reply.requesting_party == ctx.wire.requester,
        f"the release is addressed to {reply.requesting_party}",
    )
    fields = len(reply.core_data.model_dump(exclude_defaults=True)) if reply.core_data else 0
    return f"released, signed by {ctx.party}, {fields} field(s) of core data"


@check(
    "step2.refusal_with_reason",
    f"{ART47}; messages.py RefusalReason",
    "a refusal says why, with a code the requester's examiner can read",
)
def refusal(ctx: Context) -> str:
    reply = _one(ctx, "refuse").reply
    assert reply is not None
    expect(
        reply.decision == "refused" and reply.reason in set(RefusalReason),
        f"decision {reply.decision}, reason {reply.reason}",
    )
    expect(reply.core_data is None, "a refusal carries core data")
    return f"refused: {reply.reason}"


@check(
    "step2.hold_not_answered",
    f"{ART47} (a judicial-authorisation hold pauses the 48 hours)",
    "a request on hold is not answered until the holder decides",
)
def hold(ctx: Context) -> str:
    answers = _decisions(ctx).get("hold", [])
    if answers:
        decision = answers[0].reply.decision if answers[0].reply else "?"
        raise Failed(f"the held request was answered: {decision}")
    return f"no answer {HOLD_GRACE_SECONDS:.0f} s after the others arrived"


@check(
    "step2.hold_told",
    f"{ART47}; docs/protocol.md (CoreDataHold)",
    "the requester is told of a hold and its reason, signed by the holder",
)
def hold_told(ctx: Context) -> str:
    _decisions(ctx)
    sent = ctx.memo.get("step2", {}).get("hold")
    if sent is None or ctx.listener is None:
        raise NotApplicable("the hold request was not taken in (see step2.requests_sent)")
    request_id = sent[0]["message_id"]
    holds = [
        (d, b)
        for d, b in ctx.listener.bodies()
        if b.get("kind") == "core_data_hold" and b.get("in_reply_to") == request_id
    ]
    expect(bool(holds), "no CoreDataHold for the held request reached the requester")
    delivery, body = holds[0]
    expect(
        delivery.signer_problem is None,
        f"the hold is not signed by {ctx.party}: {delivery.signer_problem}",
    )
    try:
        hold = CoreDataHold.model_validate(body)
    except ValidationError as exc:
        raise Failed(f"not a valid CoreDataHold: {exc.errors()[0]['msg']}") from None
    expect(hold.on_hold and hold.reason is not None, "the hold names no reason")
    expect(hold.holder_party == ctx.party, f"the hold names holder {hold.holder_party}")
    return f"told: on hold, {hold.reason}"


@check(
    "step2.unknown_reference_not_released",
    f"{ART47}: core data only of a returned, matched record",
    "nothing is released for a reference the holder never returned",
)
def unknown(ctx: Context) -> str:
    sent = ctx.memo.get("step2", {}).get("unknown")
    if sent is not None and sent[1].status != 200:
        return f"refused at once ({sent[1].describe()[:60]})"
    answers = _decisions(ctx).get("unknown", [])
    released = [d for d in answers if d.reply is not None and d.reply.decision == "released"]
    expect(not released, "core data were released for a reference the node never returned")
    return "refused" if answers else "not released"


@check(
    "step2.outbox_retries",
    f"{DELIVER}: if the destination is down the sender's outbox retries",
    "an answer the router could not deliver is sent again, same message id",
)
def outbox_retries(ctx: Context) -> str:
    first = _one(ctx, "release")
    expect(
        first.answered == 503,
        "the kit did not refuse the first delivery (an earlier run's message?)",
    )
    assert first.reply is not None
    repeats = [d for d in _decisions(ctx)["release"] if d.answered == 200]
    expect(bool(repeats), "the release was not delivered again after the kit answered 503")
    expect(
        repeats[0].reply is not None and repeats[0].reply.message_id == first.reply.message_id,
        "the retry carries another message id",
    )
    return f"delivered again after {repeats[0].at - first.at:.1f} s, same message id"
