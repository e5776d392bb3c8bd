"""Step 1 at a node: answering searches from other parties, and sending its own.

Incoming: the router forwards the requester's signed request unchanged; the node
verifies who asked, applies its national rules (category, purpose, penalty
threshold, daily capacity, exposure, candidate cap), runs its own matcher and signs
its answer. Every refusal is explicit (status ``refused`` with the reason) and logged.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import Connection, insert, select, text, update

from prum.categories.interface import BatchMatcher, Exposure, MatchResult
from prum.errors import (
    BadInput,
    BatchNotSupported,
    CapacityExhausted,
    CategoryNotOffered,
    MatcherUnavailable,
    NotAuthorised,
    PenaltyBelowThreshold,
    PolicyRefused,
    PrumError,
    PurposeNotAllowed,
    SecurityError,
    Unavailable,
    UnknownReference,
)
from prum.federation.messages import (
    Candidate,
    Category,
    CountryReply,
    ErrorInfo,
    Probe,
    Purpose,
    ReplyStatus,
    SearchReply,
    SearchRequest,
)
from prum.federation.security.pki import PeerIdentity, format_serial
from prum.federation.security.signing import SignedEnvelope
from prum.node.config import CategoryPolicy, ReleaseThreshold
from prum.node.core import Node, utcnow, validated
from prum.node.release import Released, release
from prum.node.schema import capacity, national_records, searches
from prum.node.users import Role, User
from prum.node.withdrawal import record_sent

# One line per search with the milliseconds of each stage, for bench/face_federated.py;
# silent unless PRUM_TIMING_LOG is set (prum.federation.transport).
timing_log = logging.getLogger("prum.timing")


def _log_timings(role: str, message_id: str, party: str, stages: dict[str, float]) -> None:
    if timing_log.isEnabledFor(logging.INFO):
        rounded = {k: round(v, 2) for k, v in stages.items()}
        timing_log.info("%s", json.dumps({role: message_id, "party": party, **rounded}))


def check_policy(node: Node, request: SearchRequest) -> CategoryPolicy:
    """The national rules for an incoming search; raises the first that refuses it."""
    policy = node.config.categories.get(request.category)
    if policy is None:
        raise CategoryNotOffered(
            f"{node.party} does not take part in {request.category.value} searches"
        )
    if request.purpose not in policy.purposes:
        allowed = ", ".join(p.value for p in policy.purposes)
        raise PurposeNotAllowed(
            f"{node.party} answers {request.category.value} searches only for: {allowed}"
        )
    policy = policy.with_defaults(request.category)  # a policy set after loading
    minimum = policy.min_penalty_months or 0
    # Missing-person and remains searches name no offence: the threshold is the criminal
    # searches' (SearchHeader makes an investigation request carry its penalty).
    penalty = request.max_penalty_months
    if request.purpose is Purpose.INVESTIGATION and (penalty or 0) < minimum:
        raise PenaltyBelowThreshold(
            f"{request.category.value} searches need an offence punishable by at least"
            f" {minimum} months; the request says {penalty}",
            minimum=minimum,
        )
    return policy


# One statement, so two searches arriving together cannot both take the last slot: the
# row is created or increased only while the sum stays within the day's capacity
# (SQLite 3.35+ and PostgreSQL; the row lock of ON CONFLICT orders concurrent callers).
_RESERVE = text(
    "INSERT INTO node_capacity (day, requesting_party, search_type, used)"
    " VALUES (:day, :party, :key, :amount)"
    " ON CONFLICT (day, requesting_party, search_type) DO UPDATE"
    " SET used = node_capacity.used + excluded.used"
    " WHERE node_capacity.used + excluded.used <= :daily"
    " RETURNING used"
)


def reserve_capacity(
    node: Node, request: SearchRequest, *, key: str, daily: int, amount: int = 1
) -> int:
    """Count ``amount`` against the requester's daily capacity ``key``, atomically;
    returns the day's count. One-off searches count one each; batched comparisons count
    their profiles."""
    day = utcnow().date()
    party = request.requesting_party
    used: int | None = None
    if amount <= daily:
        with node.engine.begin() as conn:
            params = {"day": day, "party": party, "key": key, "amount": amount, "daily": daily}
            used = conn.execute(_RESERVE, params).scalar_one_or_none()
    if used is None:
        with node.engine.connect() as conn:
            taken = conn.execute(
                select(capacity.c.used).where(
                    capacity.c.day == day,
                    capacity.c.requesting_party == party,
                    capacity.c.search_type == key,
                )
            ).scalar_one_or_none()
        raise CapacityExhausted(
            f"{node.party} has answered {taken or 0} {key} searches from {party} today;"
            f" the daily capacity is {daily}",
            capacity=daily,
        )
    return int(used)


def _run_matcher(node: Node, request: SearchRequest, policy: CategoryPolicy) -> MatchResult:
    """Capacity, then the national matcher, for a one-off search or a batch."""
    exposure = Exposure(
        subjects=policy.subjects_for(request.purpose),
        min_age=policy.min_age,
        unknown_age_exposed=policy.unknown_age_exposed,
    )
    matcher = node.matcher(request.category)
    suffix, daily, cap = policy.limits(request.search_type)
    cap = min(request.max_candidates, cap)
    if request.batch is None:
        assert request.probe is not None  # SearchRequest guarantees one of the two
        reserve_capacity(node, request, key=request.category.value + suffix, daily=daily)
        return matcher.search(
            request.probe, max_candidates=cap, exposure=exposure, search_type=request.search_type
        )
    if not isinstance(matcher, BatchMatcher):
        raise BatchNotSupported(
            f"{node.party} answers {request.category.value} searches one at a time"
        )
    reserve_capacity(
        node,
        request,
        key=f"{request.category.value}:{request.mode.value}",
        daily=policy.daily_bulk_profiles,
        amount=len(request.batch),
    )
    results = matcher.search_batch(
        [item.probe for item in request.batch], max_candidates=cap, exposure=exposure
    )
    candidates = [
        candidate.model_copy(update={"probe_reference": item.reference})
        for item, result in zip(request.batch, results, strict=True)
        for candidate in result.candidates
    ]
    return MatchResult(
        candidates=candidates, gallery_size=max((r.gallery_size for r in results), default=0)
    )


def with_origins(node: Node, candidates: list[Candidate]) -> list[Candidate]:
    """Candidates with the country their data came from, where a national system said
    (Europol's third-country data, Art 48): examiners see it beside the candidate."""
    if not candidates:
        return candidates
    references = list({c.reference for c in candidates})
    with node.engine.connect() as conn:
        rows = conn.execute(
            select(national_records.c.reference, national_records.c.origin_country).where(
                national_records.c.reference.in_(references),
                national_records.c.origin_country.is_not(None),
            )
        ).all()
    origins = {str(reference): str(origin) for reference, origin in rows}
    if not origins:
        return candidates
    return [
        c.model_copy(update={"origin_country": origins[c.reference]})
        if c.reference in origins
        else c
        for c in candidates
    ]


def answer_search(node: Node, raw: bytes, peer: PeerIdentity) -> SignedEnvelope:
    """Answer a search forwarded by the router (the requester's envelope, as bytes);
    the answer is signed by this node."""
    if peer.party != "ROUTER":
        raise NotAuthorised(f"searches arrive through the router, not from {peer.party}")
    received = time.perf_counter()
    message = node.verifier.verify_json(raw)
    request: SearchRequest = validated(SearchRequest, message.body)
    if request.requesting_party != message.signer:
        raise NotAuthorised(
            f"the request claims to come from {request.requesting_party}"
            f" but is signed by {message.signer}"
        )
    node.replay.check(request.message_id, request.issued_at)
    started = time.perf_counter()
    status, candidates, gallery_size, error = ReplyStatus.ERROR, [], None, None
    released: Released | None = None
    stages: dict[str, float] = {"verify": 1000 * (started - received)}
    try:
        policy = check_policy(node, request)
        result = _run_matcher(node, request, policy)
        matched = time.perf_counter()
        stages["match"] = 1000 * (matched - started)
        stages.update(result.timings_ms or {})
        released = release(policy.release or ReleaseThreshold(), result)
        candidates, gallery_size = with_origins(node, released.candidates), result.gallery_size
        # Before the answer leaves: whom to tell if one of them is erased later.
        record_sent(node, request.requesting_party, candidates)
        status = ReplyStatus.ANSWERED if candidates else ReplyStatus.NO_HIT
        stages["release"] = 1000 * (time.perf_counter() - matched)
    except PolicyRefused as exc:
        status, error = ReplyStatus.REFUSED, ErrorInfo(**exc.to_dict())
    except BadInput as exc:
        status, error = ReplyStatus.ERROR, ErrorInfo(**exc.to_dict())
    except MatcherUnavailable as exc:
        # An external ABIS failed or was too slow: "error" with the reason (its code
        # says matcher_timeout for a slow one; "timeout" is the router's observation).
        status, error = ReplyStatus.ERROR, ErrorInfo(**exc.to_dict())
    duration = 1000 * (time.perf_counter() - started)
    reply = CountryReply(
        in_reply_to=request.message_id,
        party=node.party,
        status=status,
        answer_number=f"{node.party}-A-{request.message_id[:8]}",
        answered_at=utcnow(),
        duration_ms=duration,
        gallery_size=gallery_size,
        candidates=candidates,
        withheld=released.withheld if released and released.withheld else None,
        error=error,
    )
    node.log(
        kind="search_received",
        requesting_party=request.requesting_party,
        requested_party=node.party,
        category=request.category,
        purpose=request.purpose,
        offence=request.offence,
        max_penalty_months=request.max_penalty_months,
        case_reference=request.case_reference,
        message_id=request.message_id,
        request_number=request.request_number,
        reference=[c.reference for c in candidates] or None,
        outcome={"answered": "hit"}.get(status.value, status.value),
        reason_code=error.code if error else None,
        candidate_count=len(candidates),
        withheld_count=reply.withheld,
        investigative=True if released and released.investigative else None,
        duration_ms=round(duration),
        signature=message.signature,
    )
    # "withheld" only when some were: a requester of an older version does not know it.
    body = reply.model_dump(mode="json", exclude=None if reply.withheld else {"withheld"})
    logged = time.perf_counter()
    signed = node.signer.sign(body)
    stages["audit"] = 1000 * (logged - started) - duration
    stages["sign"] = 1000 * (time.perf_counter() - logged)
    stages["total"] = 1000 * (time.perf_counter() - received)
    _log_timings("answered", request.message_id, node.party, stages)
    return signed


@dataclass(frozen=True)
class SearchForm:
    """What an officer fills in (national API, workbench).

    A face search gives ``image`` (and ``face_box`` when the photo shows several
    faces); every other category gives its ``probe`` (a DNA profile, an ANSI/NIST-ITL
    transaction, a vehicle query, a pseudonymised records query).
    """

    category: Category
    purpose: Purpose
    offence: str | None  # criminal-offence searches only
    max_penalty_months: int | None
    case_reference: str
    image: bytes = b""
    targets: list[str] | None = None  # None: all that offer the category
    face_box: list[int] | None = None
    max_candidates: int = 10
    deadline_ms: int = 10_000
    probe: Probe | None = None
    search_type: str | None = None

    def outgoing_probe(self) -> Probe:
        if self.probe is not None:
            return self.probe
        if not self.image:
            raise BadInput(f"a {self.category.value} search needs a probe")
        from prum.categories.face.type10 import is_transaction

        # A face probe may be a Type-10 transaction; it travels as one (format ansi_nist).
        return Probe(
            format="ansi_nist" if is_transaction(self.image) else "image",
            data=base64.b64encode(self.image),
            face_box=self.face_box,
        )


def _request_number(node: Node) -> str:
    return f"{node.party}-{utcnow():%Y%m%d%H%M%S}-{time.perf_counter_ns() % 100_000:05d}"


def _stored_probe(probe: Probe, face: bytes | None = None) -> dict[str, Any]:
    """The probe as the requesting node keeps it for the examiner's side-by-side view
    (``face``: the image taken from a Type-10 transaction probe)."""
    kept = probe.model_dump(mode="json", exclude_none=True)
    if probe.format == "image":  # the workbench reads these two keys
        kept["image"], kept["box"] = kept.pop("data"), kept.pop("face_box", None)
    elif face is not None:
        kept["image"], kept["box"] = base64.b64encode(face).decode(), kept.pop("face_box", None)
    return kept


async def send_search(node: Node, client: httpx.AsyncClient, user: User, form: SearchForm) -> int:
    """Check the probe, send the search through the router, store the answers."""
    outgoing = begin_search(node, user, form)
    await deliver(node, client, outgoing)
    return outgoing.search_id


def begin_search(node: Node, user: User, form: SearchForm) -> Outgoing:
    """Check the probe, then sign and record the search (logged ``search_sent``); the
    caller sends it with :func:`deliver`, at once or in the background."""
    user.require(Role.OFFICER)
    started = time.perf_counter()
    probe = form.outgoing_probe()
    face = check_probe(node, form.category, probe)
    checked = time.perf_counter()
    request = validated(
        SearchRequest,
        {
            "request_number": _request_number(node),
            "requesting_party": node.party,
            "requesting_user": user.name,
            "category": form.category,
            "purpose": form.purpose,
            "offence": form.offence,
            "max_penalty_months": form.max_penalty_months,
            "case_reference": form.case_reference,
            "targets": form.targets or "all",
            "probe": probe,
            "search_type": form.search_type,
            "max_candidates": form.max_candidates,
            "deadline_ms": form.deadline_ms,
        },
    )
    outgoing = record_search(node, user.name, request, _stored_probe(probe, face))
    outgoing.timings_ms["probe_check"] = 1000 * (checked - started)
    outgoing.timings_ms["record"] = 1000 * (time.perf_counter() - checked)
    return outgoing


def own_certificate_problem(node: Node) -> str:
    """Why the federation may refuse this node's connections: its own certificate
    revoked or expired (the TLS refusal itself only shows as a closed connection)."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(node.signer.cert_pem.encode("ascii"))
    hint = f"issue a new one: `prum pki issue {node.party}`"
    if cert.serial_number in node.verifier.revoked_serials():
        return f"this node's certificate {format_serial(cert.serial_number)} is revoked ({hint})"
    if cert.not_valid_after_utc < utcnow():
        return f"this node's certificate expired on {cert.not_valid_after_utc:%Y-%m-%d} ({hint})"
    return ""


def check_probe(node: Node, category: Category, probe: Probe) -> bytes | None:
    """Refuse a probe that cannot work, with the reason, before it travels (and before
    anything is stored): a face without a usable face, a DNA profile against the
    2008/616 Annex rules, a fingerprint transaction or image that cannot be read.
    Returns the face image of a Type-10 face transaction (for the examiner's view)."""
    # Faces: found and good enough; the template is each requested country's to make
    # (with its own model), so none is made here (it would cost ~0.25 s per search).
    if category is Category.FACE and probe.format == "image":
        node.face_pipeline.extract(probe.data, use="probe", box=_box(probe.face_box), embed=False)
    elif category is Category.FACE and probe.format == "ansi_nist":
        from prum.categories.face.type10 import probe_image

        face, _ = probe_image(probe.data, node.face_pipeline.settings)
        node.face_pipeline.extract(face, use="probe", box=_box(probe.face_box), embed=False)
        return face
    elif category is Category.DNA and probe.format == "dna_profile":
        from prum.categories.dna.formats import parse_profile
        from prum.categories.dna.loci import LocusSet

        parse_profile(probe.data, loci=LocusSet("prum"))
    elif category is Category.FINGER and probe.format == "ansi_nist":
        from prum.categories.finger.nist import read_transaction

        transaction = read_transaction(probe.data)
        if not transaction.images and not any(transaction.minutiae.values()):
            raise BadInput("the transaction holds no finger image and no minutiae")
    elif category is Category.FINGER and probe.format == "image":
        from prum.categories.finger.images import decode_image

        decode_image(probe.data)
    return None


@dataclass(frozen=True)
class Outgoing:
    """A search recorded and signed, not yet sent."""

    search_id: int
    request: SearchRequest
    envelope: SignedEnvelope
    common: dict[str, Any]  # the fields of its audit entries
    timings_ms: dict[str, float] = field(default_factory=dict)  # for the timing log


async def dispatch(
    node: Node,
    client: httpx.AsyncClient,
    user_name: str,
    request: SearchRequest,
    stored_probe: dict[str, Any],
    on_answer: Callable[[Connection, int, SearchReply], None] | None = None,
) -> int:
    """Sign, record, send through the router and store the answers of one request.

    ``on_answer`` runs in the transaction that stores the answers (a bulk comparison
    advances its cursor there, so a crash can neither lose nor repeat a batch's hits).
    """
    outgoing = record_search(node, user_name, request, stored_probe)
    await deliver(node, client, outgoing, on_answer)
    return outgoing.search_id


def record_search(
    node: Node, user_name: str, request: SearchRequest, stored_probe: dict[str, Any]
) -> Outgoing:
    """Sign and record one request (status ``sent``), logged ``search_sent``."""
    envelope = node.signer.sign(request.model_dump(mode="json"))
    with node.engine.begin() as conn:
        search_id = conn.execute(
            insert(searches).values(
                message_id=request.message_id,
                request_number=request.request_number,
                user=user_name,
                category=request.category.value,
                purpose=request.purpose.value,
                offence=request.offence or "",
                # 0 where the purpose names no offence (missing persons, remains).
                max_penalty_months=request.max_penalty_months or 0,
                case_reference=request.case_reference,
                targets=request.targets if request.targets != "all" else ["all"],
                probe=stored_probe,
                status="sent",
                created_at=utcnow(),
            )
        ).inserted_primary_key
    assert search_id is not None
    common = {
        "requesting_party": node.party,
        "category": request.category,
        "purpose": request.purpose,
        "offence": request.offence,
        "max_penalty_months": request.max_penalty_months,
        "case_reference": request.case_reference,
        "user": user_name,
        "message_id": request.message_id,
        "request_number": request.request_number,
    }
    node.log(kind="search_sent", signature=envelope.signature, **common)
    return Outgoing(int(search_id[0]), request, envelope, common)


async def deliver(
    node: Node,
    client: httpx.AsyncClient,
    outgoing: Outgoing,
    on_answer: Callable[[Connection, int, SearchReply], None] | None = None,
    *,
    live: bool = False,
) -> None:
    """Send a recorded search through the router and store its answers (status
    ``answered``), or its failure with the reason (status ``failed``, raised).

    ``live``: hear each country as it settles, kept in the search's ``reply`` as
    ``progress`` until the signed answer replaces it (the workbench's live page).
    """
    sid, request = outgoing.search_id, outgoing.request
    started = time.perf_counter()
    try:
        raw = await (_live(node, client, outgoing) if live else _post(node, client, outgoing))
        answered = time.perf_counter()
        verified = node.verifier.verify_json(raw, expected_signer="ROUTER")
        reply: SearchReply = validated(SearchReply, verified.body)
        if reply.in_reply_to != request.message_id:
            raise BadInput("the router answered another request")
    except PrumError as exc:
        _fail(node, sid, exc)
        raise
    except asyncio.CancelledError:  # the node is stopping: say so, not "waiting" forever
        _fail(node, sid, Unavailable("the node stopped before the answers came"))
        raise
    with node.engine.begin() as conn:
        conn.execute(
            update(searches)
            .where(searches.c.id == sid)
            .values(status="answered", reply=reply.model_dump(mode="json"), answered_at=utcnow())
        )
        if on_answer is not None:
            on_answer(conn, sid, reply)
    for answer in reply.replies:
        node.log(
            kind="search_answered",
            requested_party=answer.party,
            outcome={"answered": "hit"}.get(answer.status.value, answer.status.value),
            candidate_count=len(answer.candidates),
            reference=[c.reference for c in answer.candidates] or None,
            duration_ms=round(answer.duration_ms) if answer.duration_ms is not None else None,
            reason_code=answer.error.code if answer.error else None,
            **outgoing.common,
        )
    stages = outgoing.timings_ms
    stages["router"] = 1000 * (answered - started)  # the round trip through the router
    stages["store"] = 1000 * (time.perf_counter() - answered)  # verify, store, audit
    _log_timings("sent", request.message_id, node.party, stages)


def _router_down(node: Node, exc: httpx.HTTPError) -> Unavailable:
    problem = own_certificate_problem(node)
    detail = str(exc) or type(exc).__name__  # some httpx errors carry no text
    return Unavailable(
        f"the router cannot be reached: {detail}" + (f"; {problem}" if problem else "")
    )


async def _post(node: Node, client: httpx.AsyncClient, outgoing: Outgoing) -> bytes:
    """The router's signed answer, all countries at once."""
    try:
        response = await client.post(
            f"{node.config.router_url}/v1/search",
            content=outgoing.envelope.to_json(),
            headers={"content-type": "application/json"},
            timeout=outgoing.request.deadline_ms / 1000 + 10,
        )
    except httpx.HTTPError as exc:
        raise _router_down(node, exc) from exc
    if response.status_code != 200:
        raise _remote_error(response)
    return response.content


async def _live(node: Node, client: httpx.AsyncClient, outgoing: Outgoing) -> bytes:
    """The router's signed answer, each country's status noted as it settles (the
    router's ``application/x-ndjson`` answer: progress lines, then the reply)."""
    request = outgoing.request
    named = [] if request.targets == "all" else list(request.targets)
    progress: dict[str, dict[str, Any]] = {p: {"status": "pending"} for p in named}
    _note(node, outgoing.search_id, progress, request.deadline_ms)
    try:
        async with client.stream(
            "POST",
            f"{node.config.router_url}/v1/search",
            content=outgoing.envelope.to_json(),
            headers={"content-type": "application/json", "accept": "application/x-ndjson"},
            timeout=request.deadline_ms / 1000 + 10,
        ) as response:
            if response.status_code != 200:
                await response.aread()
                raise _remote_error(response)
            if "ndjson" not in response.headers.get("content-type", ""):
                return await response.aread()  # a router that does not stream
            async for line in response.aiter_lines():
                event = json.loads(line) if line.strip() else {}
                if "progress" in event:
                    step = event["progress"]
                    if "targets" in step:
                        for party in step["targets"]:
                            progress.setdefault(party, {"status": "pending"})
                    else:
                        progress[step["party"]] = step
                    _note(node, outgoing.search_id, progress, request.deadline_ms)
                elif "error" in event:
                    raise _remote_error(
                        httpx.Response(event.get("status", 503), json=event["error"])
                    )
                elif event:
                    return line.encode()
    except httpx.HTTPError as exc:
        raise _router_down(node, exc) from exc
    except (ValueError, TypeError, KeyError) as exc:
        raise Unavailable(f"the router's answer could not be read: {exc}") from exc
    raise Unavailable("the router closed the connection before its answer was complete")


def _note(node: Node, search_id: int, progress: dict[str, Any], deadline_ms: int) -> None:
    with node.engine.begin() as conn:
        conn.execute(
            update(searches)
            .where(searches.c.id == search_id, searches.c.status == "sent")
            .values(reply={"replies": [], "progress": progress, "deadline_ms": deadline_ms})
        )


def _box(face_box: list[int] | None) -> Any:
    from prum.categories.face.types import FaceBox

    return FaceBox(*face_box) if face_box else None


def _fail(node: Node, search_id: int, error: PrumError) -> None:
    """The search failed as a whole: its status and the reason, for the results page."""
    with node.engine.begin() as conn:
        conn.execute(
            update(searches)
            .where(searches.c.id == search_id)
            .values(status="failed", reply={"replies": [], "error": error.to_dict()})
        )


def _remote_error(response: httpx.Response) -> PrumError:
    try:
        body = response.json()
        message = f"the router refused the search: ({body['code']}) {body['message']}"
    except (ValueError, KeyError, TypeError):
        message = f"the router answered HTTP {response.status_code}"
    if response.status_code == 503:
        return Unavailable(message)
    if response.status_code in (400, 413):
        return BadInput(message)
    if response.status_code == 403:
        return SecurityError(message)
    return Unavailable(message)


def load_search(node: Node, search_id: int) -> dict[str, Any]:
    with node.engine.connect() as conn:
        row = conn.execute(select(searches).where(searches.c.id == search_id)).first()
    if row is None:
        raise UnknownReference(f"no search {search_id}")
    return dict(row._mapping)


def find_candidate(search: dict[str, Any], party: str, reference: str) -> dict[str, Any]:
    for answer in (search.get("reply") or {}).get("replies", []):
        if answer["party"] == party:
            for candidate in answer["candidates"]:
                if candidate["reference"] == reference:
                    return dict(candidate)
    raise UnknownReference(f"{party} returned no candidate {reference} in this search")
