"""Checks of the signed envelope on /v1/search: the node signs its answers, and refuses
what is unsigned, altered, signed by someone else, replayed or outside its time window.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

from prum.conformance.checks import Context, Failed, NotApplicable, check, expect
from prum.conformance.wire import Answer, country_reply, error_shape_problem, foreign_party
from prum.errors import PrumError
from prum.federation.security.signing import canonical_json, format_time

ENVELOPE = "docs/protocol.md (signed envelope)"
REPLAY = "docs/protocol.md (replay guard, 5-minute window)"
# Outside the protocol's 5-minute window by a margin no clock drift explains.
OUTSIDE_WINDOW = dt.timedelta(minutes=10)
# Inside it by a margin: a sender whose clock is two minutes off is still served.
INSIDE_WINDOW = dt.timedelta(minutes=2)


def _refused(answer: Answer, what: str) -> str:
    expect(answer.status == 403, f"{what} was not refused with HTTP 403: {answer.describe()}")
    problem = error_shape_problem(answer)
    expect(problem is None, f"{what}: {problem}")
    return f"HTTP 403 {answer.json()['code']}"


def _accepted(answer: Answer, body: dict[str, Any], what: str) -> str:
    try:
        reply = country_reply(answer)
    except PrumError as exc:
        raise Failed(f"{what}: {exc.message}") from None
    expect(
        reply.in_reply_to == body["message_id"],
        f"{what}: the answer is in reply to {reply.in_reply_to}",
    )
    return f"answered ({reply.status.value})"


def _valid(ctx: Context, **fields: Any) -> dict[str, Any]:
    return ctx.search_body(ctx.first_category(), **fields)


@check(
    "envelope.reply_signed",
    ENVELOPE,
    "the requester and the router verify who answered: the node signs every answer",
)
def reply_signed(ctx: Context) -> str:
    answer = ctx.search(_valid(ctx))
    expect(answer.status == 200, f"a valid search was not answered: {answer.describe()}")
    try:
        message = ctx.wire.verifier.verify_json(answer.content, expected_signer=ctx.party)
    except PrumError as exc:
        raise Failed(
            f"the answer is not an envelope signed by {ctx.party}: {exc.message}"
        ) from None
    ctx.memo["signed_answer"] = answer.content
    return f"signed by {message.signer} (certificate {message.cert_serial:x})"


@check(
    "envelope.reply_canonical",
    f"{ENVELOPE}: senders write the body last and canonical",
    "a relay checks and splices the body bytes as they came, without re-encoding",
)
def reply_canonical(ctx: Context) -> str:
    raw = ctx.memo.get("signed_answer")
    if raw is None:
        raise NotApplicable("no signed answer to look at (see envelope.reply_signed)")
    envelope = json.loads(raw)
    expected = b',"body":' + canonical_json(envelope["body"]) + b"}"
    expect(raw.rstrip().endswith(expected), "the body is not last, or not in canonical JSON")
    return "body last, canonical"


@check(
    "envelope.unsigned_refused",
    ENVELOPE,
    "a message without a signature proves nothing about its sender",
)
def unsigned(ctx: Context) -> str:
    body = _valid(ctx)
    return _refused(ctx.wire.post("/v1/search", json.dumps(body).encode()), "a bare SearchRequest")


@check(
    "envelope.altered_refused",
    ENVELOPE,
    "a body changed after signing (a raised max_candidates) is caught",
)
def altered(ctx: Context) -> str:
    body = _valid(ctx)
    envelope = json.loads(ctx.wire.sign(body))
    envelope["body"]["max_candidates"] = 11 if body["max_candidates"] != 11 else 12
    return _refused(
        ctx.wire.post("/v1/search", json.dumps(envelope).encode()), "an altered envelope"
    )


@check(
    "envelope.signer_is_requester",
    f"{ENVELOPE}: the requester is the signer, never a body field",
    "one party cannot search in another's name",
)
def signer_is_requester(ctx: Context) -> str:
    body = _valid(ctx)  # requesting_party: the kit's requester
    envelope = ctx.wire.sign(body, ctx.wire.impostor)
    return _refused(
        ctx.wire.post("/v1/search", envelope),
        f"a request of {body['requesting_party']} signed by {ctx.wire.impostor}",
    )


@check(
    "envelope.certificate_names_signer",
    f"{ENVELOPE}: the certificate's CN equals signer",
    "the signer field cannot claim another party than the certificate",
)
def certificate_names_signer(ctx: Context) -> str:
    body = _valid(ctx, requesting_party=ctx.wire.impostor)
    envelope = json.loads(ctx.wire.sign(body, ctx.wire.impostor))
    envelope["signer"] = ctx.wire.requester
    envelope["body"]["requesting_party"] = ctx.wire.impostor
    return _refused(
        ctx.wire.post("/v1/search", json.dumps(envelope).encode()),
        "an envelope whose signer is not its certificate's CN",
    )


@check(
    "envelope.foreign_certificate_refused",
    f"{ENVELOPE}: certificates of the federation CA",
    "a key certified by another CA is nobody in the federation",
)
def foreign_certificate(ctx: Context) -> str:
    body = _valid(ctx)
    with foreign_party(ctx.wire.requester) as (_, signer):
        envelope = signer.sign(body).to_json()
    return _refused(ctx.wire.post("/v1/search", envelope), "a request signed under another CA")


@check(
    "envelope.algorithm_refused",
    f"{ENVELOPE}: ES256 only",
    "no algorithm substitution (alg none, HMAC)",
)
def algorithm(ctx: Context) -> str:
    envelope = json.loads(ctx.wire.sign(_valid(ctx)))
    envelope["alg"] = "none"
    envelope["signature"] = base64.b64encode(b"").decode()
    return _refused(
        ctx.wire.post("/v1/search", json.dumps(envelope).encode()), "an envelope with alg 'none'"
    )


@check(
    "envelope.replay_refused",
    REPLAY,
    "a captured request cannot be played again to repeat a search",
)
def replay(ctx: Context) -> str:
    envelope = ctx.wire.sign(_valid(ctx))
    first = ctx.wire.post("/v1/search", envelope)
    expect(first.status == 200, f"the first sending was not answered: {first.describe()}")
    return _refused(ctx.wire.post("/v1/search", envelope), "the same envelope sent again")


def _dated(ctx: Context, shift: dt.timedelta) -> bytes:
    moment = dt.datetime.now(dt.UTC) + shift
    return ctx.wire.sign(_valid(ctx, issued_at=format_time(moment)))


@check(
    "envelope.stale_refused",
    REPLAY,
    "an old captured request is refused once the ids it could repeat are forgotten",
)
def stale(ctx: Context) -> str:
    return _refused(
        ctx.wire.post("/v1/search", _dated(ctx, -OUTSIDE_WINDOW)), "a request issued 10 minutes ago"
    )


@check("envelope.future_refused", REPLAY, "a request dated ahead cannot outlive the replay window")
def future(ctx: Context) -> str:
    return _refused(
        ctx.wire.post("/v1/search", _dated(ctx, OUTSIDE_WINDOW)), "a request dated 10 minutes ahead"
    )


@check(
    "envelope.skew_within_window_accepted",
    REPLAY,
    "a sender whose clock is a little off is still served",
)
def skew_within(ctx: Context) -> str:
    body = _valid(ctx, issued_at=format_time(dt.datetime.now(dt.UTC) - INSIDE_WINDOW))
    return _accepted(ctx.search(body), body, "a request issued 2 minutes ago")


@check(
    "envelope.any_key_order_accepted",
    f"{ENVELOPE}: any key order or spacing is still valid",
    "a sender written in another language need not copy our byte layout",
)
def any_key_order(ctx: Context) -> str:
    body = _valid(ctx)
    envelope = json.loads(ctx.wire.sign(body))
    reordered = {"body": envelope.pop("body"), **envelope}
    raw = json.dumps(reordered, indent=2, ensure_ascii=True).encode()
    return _accepted(
        ctx.wire.post("/v1/search", raw), body, "an envelope with the body first and indented"
    )
