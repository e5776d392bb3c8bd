"""Checks of step 1 (docs/protocol.md, Node and "What a search carries"): each offered
category's answer schema, the deadline, candidate caps, and the explicit refusals
(category, purpose, penalty, search type, capacity, exposure)."""

from __future__ import annotations

import base64
import time

from prum.conformance.checks import Context, Failed, NotApplicable, check, expect
from prum.conformance.declaration import ANSWERED_AT_ONCE, DEFAULT_FORMAT
from prum.conformance.wire import country_reply
from prum.errors import PrumError
from prum.federation.messages import (
    Category,
    CountryReply,
    Probe,
    Purpose,
    ReplyStatus,
)

NODE = "docs/protocol.md, Node (POST /v1/search)"
PER_CATEGORY = "docs/protocol.md, What a search carries, per category"
# The kit exhausts a daily capacity only up to this many searches (a test run, not a
# load test); a larger declared capacity makes the check not applicable.
MAX_CAPACITY_TO_EXHAUST = 200
# The deadline of the deadline check: short, yet ample for one search of a declared
# probe (our node answers a DNA search in tens of milliseconds, docs/benchmarks.md).
DEADLINE_MS = 2000
# The details a candidate of each category carries (None: nothing; docs/protocol.md).
DETAILS_KIND: dict[Category, str | None] = {
    Category.FACE: None,
    Category.DNA: "dna",
    Category.FINGER: "finger",
    Category.VEHICLE: "vehicle",
    Category.RECORDS: "records",
}
# What a node may itself report: timeout and unavailable are the router's to write.
NODE_STATUSES = {ReplyStatus.ANSWERED, ReplyStatus.NO_HIT, ReplyStatus.REFUSED, ReplyStatus.ERROR}


def _reply(ctx: Context, **fields: object) -> tuple[dict[str, object], CountryReply]:
    category = fields.pop("category", None) or ctx.first_category()
    assert isinstance(category, Category)
    body = ctx.search_body(category, **fields)
    try:
        return body, country_reply(ctx.search(body))
    except PrumError as exc:
        raise Failed(exc.message) from None


def _refusal(ctx: Context, code: str, **fields: object) -> str:
    _, reply = _reply(ctx, **fields)
    expect(
        reply.status is ReplyStatus.REFUSED,
        f"expected status refused ({code}), got {reply.status.value}",
    )
    expect(
        reply.error is not None and reply.error.code == code,
        f"refused with {reply.error.code if reply.error else 'no error'}, not {code}",
    )
    expect(not reply.candidates, "a refusal carries candidates")
    return f"refused: {code}"


def _schema(ctx: Context, category: Category) -> str:
    if category not in ctx.declaration.categories:
        raise NotApplicable(f"the node does not declare {category.value}")
    probe = ctx.declaration.any_probe(category)
    if probe is None:
        raise NotApplicable(f"declare a {category.value} hit_probe: the kit has none of its own")
    body, reply = _reply(ctx, category=category, max_candidates=100)
    expect(
        reply.in_reply_to == body["message_id"], f"in reply to {reply.in_reply_to}, not the request"
    )
    expect(reply.party == ctx.party, f"the answer names party {reply.party}, not {ctx.party}")
    expect(reply.status in NODE_STATUSES, f"a node may not report {reply.status.value}")
    expect(
        (reply.status is ReplyStatus.ANSWERED) == bool(reply.candidates),
        f"status {reply.status.value} with {len(reply.candidates)} candidates",
    )
    if reply.status in (ReplyStatus.REFUSED, ReplyStatus.ERROR):
        expect(reply.error is not None, f"status {reply.status.value} without an error saying why")
    kind = DETAILS_KIND[category]
    for candidate in reply.candidates:
        seen = candidate.details.kind if candidate.details is not None else None
        if kind is None:
            expect(seen is None, f"a {category.value} candidate carries {seen} details")
        else:
            expect(seen == kind, f"a {category.value} candidate carries {seen} details, not {kind}")
    return f"{reply.status.value}, {len(reply.candidates)} candidate(s), schema valid"


def _schema_check(category: Category) -> None:
    check(
        f"search.{category.value}.answer_schema",
        f"{PER_CATEGORY} ({category.value}); messages.py CountryReply",
        f"a {category.value} answer validates as CountryReply"
        f" with {DETAILS_KIND[category] or 'no'} details",
    )(lambda ctx: _schema(ctx, category))


for _category in Category:
    _schema_check(_category)


@check(
    "search.ranked",
    f"{NODE}; messages.py Candidate",
    "candidates come ranked 1..n, best first, for the examiner",
)
def ranked(ctx: Context) -> str:
    _, reply = ctx.hit()
    ranks = [c.rank for c in reply.candidates]
    expect(ranks == list(range(1, len(ranks) + 1)), f"ranks {ranks}")
    scores = [c.score for c in reply.candidates]
    expect(scores == sorted(scores, reverse=True), f"scores not best first: {scores}")
    return f"{len(ranks)} candidates ranked"


@check(
    "search.deadline",
    "docs/protocol.md, Router (deadline_ms; the router never waits past it)",
    "an answer after the deadline is lost as a timeout",
)
def deadline(ctx: Context) -> str:
    deadline_ms = DEADLINE_MS
    started = time.perf_counter()
    _reply(ctx, deadline_ms=deadline_ms)
    took = 1000 * (time.perf_counter() - started)
    expect(took <= deadline_ms, f"answered after {took:.0f} ms, past the {deadline_ms} ms deadline")
    return f"answered in {took:.0f} ms (deadline {deadline_ms} ms)"


@check(
    "search.candidate_cap_requested",
    f"{NODE}; SearchRequest.max_candidates",
    "no more candidates leave than the requester asked for (data minimisation)",
)
def cap_requested(ctx: Context) -> str:
    body, reply = ctx.hit()
    found = len(reply.candidates)
    if found < 2:
        raise NotApplicable(f"the hit_probe finds {found} candidate: declare one with several")
    category = Category(str(body["category"]))
    probe = ctx.declaration.probe(category)
    _, capped = _reply(ctx, category=category, probe=probe, max_candidates=1)
    expect(len(capped.candidates) <= 1, f"{len(capped.candidates)} candidates for max_candidates 1")
    return f"1 of {found} candidates sent"


@check(
    "search.candidate_cap_node",
    f"{NODE}; docs/protocol.md (candidate cap at the requested node)",
    "the node's own cap holds whatever the requester asks",
)
def cap_node(ctx: Context) -> str:
    body, reply = ctx.hit()
    cap = ctx.declaration.categories[Category(str(body["category"]))].max_candidates
    if cap is None:
        raise NotApplicable("the declaration gives no max_candidates for the hit category")
    expect(
        len(reply.candidates) <= cap,
        f"{len(reply.candidates)} candidates for max_candidates 100, cap {cap}",
    )
    return f"{len(reply.candidates)} candidate(s) for max_candidates 100 (cap {cap})"


@check(
    "refusal.category_not_offered",
    "docs/protocol.md, Node (refused with the reason)",
    "a search in a category the node does not offer is refused explicitly, not dropped",
)
def category_not_offered(ctx: Context) -> str:
    missing = [c for c in Category if c not in ctx.declaration.categories]
    if not missing:
        raise NotApplicable("the node offers every category")
    # The refusal comes before the probe is read, so any probe of the format will do.
    probe = ctx.declaration.any_probe(missing[0]) or Probe(
        format=DEFAULT_FORMAT[missing[0]], data=base64.b64encode(b"not read")
    )
    if probe.format in ("vehicle_query", "records_query"):
        raise NotApplicable(f"the kit has no {missing[0].value} probe to send")
    return _refusal(ctx, "category_not_offered", category=missing[0], probe=probe)


@check(
    "refusal.purpose_not_allowed",
    "Reg. 2024/982 Art 2 (purposes); docs/protocol.md, Node",
    "a purpose national law does not allow is refused with its reason",
)
def purpose_not_allowed(ctx: Context) -> str:
    category = ctx.first_category()
    allowed = ctx.declaration.categories[category].purposes
    other = [p for p in Purpose if p not in allowed]
    if not other:
        raise NotApplicable(f"the node accepts every purpose for {category.value}")
    return _refusal(ctx, "purpose_not_allowed", category=category, purpose=other[0].value)


@check(
    "refusal.penalty_below_threshold",
    "docs/protocol.md, Node; node policy min_penalty_months",
    "a search for a minor offence is refused where national law sets a threshold",
)
def penalty(ctx: Context) -> str:
    for category in ctx.offered():
        minimum = ctx.declaration.categories[category].min_penalty_months
        if minimum > 0 and ctx.declaration.any_probe(category) is not None:
            return _refusal(
                ctx, "penalty_below_threshold", category=category, max_penalty_months=minimum - 1
            )
    raise NotApplicable("the declaration sets no min_penalty_months above 0")


@check(
    "refusal.search_type_not_offered",
    "docs/protocol.md (search_type; search_type_not_offered)",
    "a fingerprint search type the node does not offer is refused, not run under another's"
    " capacity",
)
def search_type(ctx: Context) -> str:
    if (
        Category.FINGER not in ctx.declaration.categories
        or ctx.declaration.any_probe(Category.FINGER) is None
    ):
        raise NotApplicable("the node declares no fingerprints with a probe")
    return _refusal(ctx, "search_type_not_offered", category=Category.FINGER, search_type="ZZ/ZZ")


@check(
    "refusal.capacity_exhausted",
    "docs/protocol.md (daily capacity per requesting party)",
    "a requester past its daily capacity is refused with capacity_exhausted, others are not",
)
def capacity(ctx: Context) -> str:
    for category in ctx.offered():
        daily = ctx.declaration.categories[category].daily_capacity
        if (
            daily is None
            or daily > MAX_CAPACITY_TO_EXHAUST
            or ctx.declaration.any_probe(category) is None
        ):
            continue
        requester = ctx.wire.exhausted
        for n in range(1, daily + 2):
            _, reply = _reply(ctx, category=category, requesting_party=requester)
            if reply.status is ReplyStatus.REFUSED:
                code = reply.error.code if reply.error else "none"
                expect(
                    code == "capacity_exhausted", f"search {n} of {requester} refused with {code}"
                )
                _, other = _reply(ctx, category=category)
                expect(
                    other.status is not ReplyStatus.REFUSED,
                    f"{ctx.wire.requester} was refused too: capacity is per requesting party",
                )
                return (
                    f"search {n} of {requester} refused: capacity_exhausted"
                    f" (declared {daily} a day)"
                )
        raise Failed(
            f"{daily + 1} searches of {requester} in one day, none refused (declared {daily})"
        )
    raise NotApplicable(
        f"the declaration gives no daily_capacity of at most {MAX_CAPACITY_TO_EXHAUST} with a probe"
    )


@check(
    "exposure.hidden_not_returned",
    "docs/protocol.md, Node (exposure); node policy exposed subjects",
    "records national law hides from a purpose (victims, minors) never leave as candidates",
)
def hidden(ctx: Context) -> str:
    for category in ctx.offered():
        probe = ctx.declaration.probe(category, "hidden")
        if probe is not None:
            _, reply = _reply(ctx, category=category, probe=probe)
            expect(
                not reply.candidates,
                f"{len(reply.candidates)} hidden record(s) returned:"
                f" {[c.reference for c in reply.candidates]}",
            )
            return f"{reply.status.value}, nothing hidden returned"
    raise NotApplicable("the declaration gives no hidden_probe")


@check(
    "search.answered_at_once_categories",
    PER_CATEGORY,
    "vehicle answers carry the registration data at once (no step 2)",
)
def at_once(ctx: Context) -> str:
    categories = [c for c in ctx.offered() if c in ANSWERED_AT_ONCE and ctx.declaration.probe(c)]
    if not categories:
        raise NotApplicable("no vehicle hit_probe declared")
    _, reply = _reply(ctx, category=categories[0], probe=ctx.declaration.probe(categories[0]))
    expect(bool(reply.candidates), f"the vehicle hit_probe found nothing ({reply.status.value})")
    expect(
        all(c.details is not None for c in reply.candidates),
        "a vehicle hit without its registration data",
    )
    return f"{len(reply.candidates)} hit(s) with registration data"
