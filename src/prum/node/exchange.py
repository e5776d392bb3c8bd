"""Step 1 at a node: answering searches from other parties, and sending its own.

Incoming: the router forwards the requester's signed request unchanged; the node
verifies who asked, applies its national rules (category, purpose, penalty
threshold, daily capacity, exposure, candidate cap), runs its own matcher and signs
its answer. Every refusal is explicit (status ``refused`` with the reason) and logged.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import insert, select, update

from prum.categories import Exposure
from prum.errors import (
    BadInput,
    CapacityExhausted,
    CategoryNotOffered,
    NotAuthorised,
    PenaltyBelowThreshold,
    PolicyRefused,
    PrumError,
    PurposeNotAllowed,
    SecurityError,
    Unavailable,
    UnknownReference,
)
from prum.messages import (
    Category,
    CountryReply,
    ErrorInfo,
    Probe,
    Purpose,
    ReplyStatus,
    SearchReply,
    SearchRequest,
)
from prum.node.config import CategoryPolicy
from prum.node.core import Node, utcnow, validated
from prum.node.schema import capacity, searches
from prum.node.users import Role, User
from prum.security.pki import PeerIdentity
from prum.security.signing import SignedEnvelope


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
    if request.max_penalty_months < policy.min_penalty_months:
        raise PenaltyBelowThreshold(
            f"{request.category.value} searches need an offence punishable by at least"
            f" {policy.min_penalty_months} months; the request says"
            f" {request.max_penalty_months}",
            minimum=policy.min_penalty_months,
        )
    return policy


def reserve_capacity(node: Node, request: SearchRequest, policy: CategoryPolicy) -> int:
    """Count this search against the requester's daily capacity (one transaction)."""
    day = utcnow().date()
    key = (day, request.requesting_party, request.category.value)
    with node.engine.begin() as conn:
        used = conn.execute(
            select(capacity.c.used).where(
                capacity.c.day == key[0],
                capacity.c.requesting_party == key[1],
                capacity.c.search_type == key[2],
            )
        ).scalar_one_or_none()
        if used is not None and used >= policy.daily_capacity:
            raise CapacityExhausted(
                f"{node.party} has answered {used} {request.category.value} searches from"
                f" {request.requesting_party} today; the daily capacity is"
                f" {policy.daily_capacity}",
                capacity=policy.daily_capacity,
            )
        if used is None:
            conn.execute(
                insert(capacity).values(
                    day=key[0], requesting_party=key[1], search_type=key[2], used=1
                )
            )
        else:
            conn.execute(
                update(capacity)
                .where(
                    capacity.c.day == key[0],
                    capacity.c.requesting_party == key[1],
                    capacity.c.search_type == key[2],
                )
                .values(used=used + 1)
            )
        return (used or 0) + 1


def answer_search(node: Node, envelope: dict[str, Any], peer: PeerIdentity) -> SignedEnvelope:
    """Answer a search forwarded by the router; the answer is signed by this node."""
    if peer.party != "ROUTER":
        raise NotAuthorised(f"searches arrive through the router, not from {peer.party}")
    message = node.verifier.verify(envelope)
    request: SearchRequest = validated(SearchRequest, message.body)
    if request.requesting_party != message.signer:
        raise NotAuthorised(
            f"the request claims to come from {request.requesting_party}"
            f" but is signed by {message.signer}"
        )
    node.replay.check(request.message_id, request.issued_at)
    started = time.perf_counter()
    status, candidates, gallery_size, error = ReplyStatus.ERROR, [], None, None
    try:
        policy = check_policy(node, request)
        reserve_capacity(node, request, policy)
        result = node.matcher(request.category).search(
            request.probe,
            max_candidates=min(request.max_candidates, policy.max_candidates),
            exposure=Exposure(
                subjects=frozenset(policy.exposed_subjects),
                min_age=policy.min_age,
                unknown_age_exposed=policy.unknown_age_exposed,
            ),
        )
        candidates, gallery_size = result.candidates, result.gallery_size
        status = ReplyStatus.ANSWERED if candidates else ReplyStatus.NO_HIT
    except PolicyRefused as exc:
        status, error = ReplyStatus.REFUSED, ErrorInfo(**exc.to_dict())
    except BadInput as exc:
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
        duration_ms=round(duration),
        signature=message.signature,
    )
    return node.signer.sign(reply.model_dump(mode="json"))


@dataclass(frozen=True)
class SearchForm:
    """What an officer fills in (national API)."""

    category: Category
    purpose: Purpose
    offence: str
    max_penalty_months: int
    case_reference: str
    image: bytes
    targets: list[str] | None = None  # None: all that offer the category
    face_box: list[int] | None = None
    max_candidates: int = 10
    deadline_ms: int = 10_000


def _request_number(node: Node) -> str:
    return f"{node.party}-{utcnow():%Y%m%d%H%M%S}-{time.perf_counter_ns() % 100_000:05d}"


async def send_search(node: Node, client: httpx.AsyncClient, user: User, form: SearchForm) -> int:
    """Check the probe, send the search through the router, store the answers."""
    user.require(Role.OFFICER)
    if form.category is Category.FACE:
        # Refuse a probe that cannot work here, with the reason, before it travels.
        node.face_pipeline.extract(form.image, use="probe", box=_box(form.face_box))
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
            "probe": Probe(data=base64.b64encode(form.image), face_box=form.face_box),
            "max_candidates": form.max_candidates,
            "deadline_ms": form.deadline_ms,
        },
    )
    envelope = node.signer.sign(request.model_dump(mode="json"))
    with node.engine.begin() as conn:
        search_id = conn.execute(
            insert(searches).values(
                message_id=request.message_id,
                request_number=request.request_number,
                user=user.name,
                category=request.category.value,
                purpose=request.purpose.value,
                offence=request.offence,
                max_penalty_months=request.max_penalty_months,
                case_reference=request.case_reference,
                targets=request.targets if request.targets != "all" else ["all"],
                probe={"image": base64.b64encode(form.image).decode(), "box": form.face_box},
                status="sent",
                created_at=utcnow(),
            )
        ).inserted_primary_key
    assert search_id is not None
    sid = int(search_id[0])
    common = {
        "requesting_party": node.party,
        "category": request.category,
        "purpose": request.purpose,
        "offence": request.offence,
        "max_penalty_months": request.max_penalty_months,
        "case_reference": request.case_reference,
        "user": user.name,
        "message_id": request.message_id,
        "request_number": request.request_number,
    }
    node.log(kind="search_sent", signature=envelope.signature, **common)
    try:
        response = await client.post(
            f"{node.config.router_url}/v1/search",
            json=envelope.to_dict(),
            timeout=form.deadline_ms / 1000 + 10,
        )
    except httpx.HTTPError as exc:
        _fail(node, sid)
        raise Unavailable(f"the router cannot be reached: {exc}") from exc
    if response.status_code != 200:
        _fail(node, sid)
        raise _remote_error(response)
    verified = node.verifier.verify(response.json(), expected_signer="ROUTER")
    reply: SearchReply = validated(SearchReply, verified.body)
    if reply.in_reply_to != request.message_id:
        _fail(node, sid)
        raise BadInput("the router answered another request")
    with node.engine.begin() as conn:
        conn.execute(
            update(searches)
            .where(searches.c.id == sid)
            .values(status="answered", reply=reply.model_dump(mode="json"), answered_at=utcnow())
        )
    for answer in reply.replies:
        node.log(
            kind="search_answered",
            requested_party=answer.party,
            outcome={"answered": "hit"}.get(answer.status.value, answer.status.value),
            candidate_count=len(answer.candidates),
            reference=[c.reference for c in answer.candidates] or None,
            duration_ms=round(answer.duration_ms) if answer.duration_ms is not None else None,
            reason_code=answer.error.code if answer.error else None,
            **common,
        )
    return sid


def _box(face_box: list[int] | None) -> Any:
    from prum.face.types import FaceBox

    return FaceBox(*face_box) if face_box else None


def _fail(node: Node, search_id: int) -> None:
    with node.engine.begin() as conn:
        conn.execute(update(searches).where(searches.c.id == search_id).values(status="failed"))


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
