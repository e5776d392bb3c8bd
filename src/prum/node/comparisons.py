"""DNA comparisons of Art 7 through the router: initial bulk, then continuous.

When a country connects, all its profiles are compared with every other party's
database (the *initial bulk comparison*); afterwards every newly enrolled profile is
(*continuous comparison*). Both run here as jobs, one per other party and mode, that
send this node's own profiles in batches (``SearchRequest.batch``) through the router
and store each answer as an ordinary search: hits then go through the same human
verification and core-data steps as any search, with no special case.

- **Resumable.** A job's cursor is the id of the last own profile whose batch the
  other party answered; it moves in the transaction that stores that answer
  (prum.node.exchange.dispatch ``on_answer``). A crash at any point repeats at most one
  unanswered batch, and no answer is stored twice.
- **Back-pressure.** One batch in flight per job. A timeout halves the job's batch
  size (down to 1) and a success doubles it back to the configured size; a refusal
  (daily capacity, ...) or an unreachable party backs the job off, doubling from 1 s
  up to ``max_backoff_seconds``; the other jobs carry on.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
from typing import Any

import httpx
from sqlalchemy import Connection, insert, select, update

from prum.errors import BadInput, CategoryNotOffered, PrumError
from prum.federation.messages import (
    BatchProbe,
    Category,
    Probe,
    Purpose,
    ReplyStatus,
    SearchMode,
    SearchReply,
    SearchRequest,
)
from prum.node.core import Node, utcnow, validated
from prum.node.schema import comparisons, searches
from prum.node.users import Role, User

log = logging.getLogger(__name__)
MODE_WORDS = {"initial_bulk": "initial bulk", "continuous": "continuous"}

SYSTEM_USER = "dna-comparison"  # the national log names the job, not a person


def _dna(node: Node) -> Any:
    from prum.categories.dna.matcher import DnaMatcher

    matcher = node.matcher(Category.DNA)
    if not isinstance(matcher, DnaMatcher):
        raise CategoryNotOffered(f"{node.party} holds no DNA database to compare")
    return matcher


def start(node: Node, user: User, parties: list[str]) -> list[dict[str, Any]]:
    """Start the initial bulk comparison with each party, and continuous after it.

    Starting again for a party that already has its jobs changes nothing.
    """
    user.require(Role.ADMIN)
    parties = sorted(set(parties))
    if not parties or node.party in parties:
        raise BadInput("name the other parties to compare this node's DNA database with")
    matcher = _dna(node)
    upto = int(matcher.index.last_id)
    now = utcnow()
    size = node.config.comparison.batch_size
    with node.engine.begin() as conn:
        for party in parties:
            for mode, cursor, last in (
                (SearchMode.INITIAL_BULK, 0, upto),
                (SearchMode.CONTINUOUS, upto, None),
            ):
                exists = conn.execute(
                    select(comparisons.c.id).where(
                        comparisons.c.category == Category.DNA.value,
                        comparisons.c.mode == mode.value,
                        comparisons.c.party == party,
                    )
                ).first()
                if exists is None:
                    conn.execute(
                        insert(comparisons).values(
                            category=Category.DNA.value,
                            mode=mode.value,
                            party=party,
                            cursor=cursor,
                            upto=last,
                            status="running",
                            batch_size=size,
                            attempts=0,
                            next_try_at=now,
                            batches=0,
                            compared=0,
                            hits=0,
                            created_at=now,
                            updated_at=now,
                        )
                    )
    node.log(
        kind="config_changed",
        user=user.name,
        category=Category.DNA,
        detail=f"DNA comparison started with {', '.join(parties)}",
    )
    return jobs(node)


def jobs(node: Node) -> list[dict[str, Any]]:
    with node.engine.connect() as conn:
        rows = conn.execute(select(comparisons).order_by(comparisons.c.id)).all()
    return [dict(r._mapping) for r in rows]


def _batch(node: Node, job: Any) -> list[tuple[int, BatchProbe]]:
    """The next own profiles of a job: (id, the probe named by its reference)."""
    matcher = _dna(node)
    chosen: list[tuple[int, str]] = []
    for record_id, profile in matcher.store.iter_profiles(
        after_id=int(job.cursor), batch=int(job.batch_size)
    ):
        if job.upto is not None and record_id > job.upto:
            break
        chosen.append((record_id, profile))
        if len(chosen) >= job.batch_size:
            break
    records = matcher.store.records([record_id for record_id, _ in chosen])
    return [
        (
            record_id,
            BatchProbe(
                reference=records[record_id].reference,
                probe=Probe(format="dna_profile", data=base64.b64encode(profile.encode())),
            ),
        )
        for record_id, profile in chosen
        if record_id in records  # deleted since: nothing to compare
    ]


def _keep_hit_profiles(
    conn: Connection, search_id: int, batch: list[tuple[int, BatchProbe]], hits: list[Any]
) -> None:
    """Keep with the search the own profiles that found something, by reference, so the
    examiner compares both profiles locus by locus even after the own one changes."""
    wanted = {c.probe_reference for c in hits if c.probe_reference}
    if not wanted:
        return
    profiles = {
        b.reference: b.probe.model_dump(mode="json", include={"format", "data"})
        for _, b in batch
        if b.reference in wanted
    }
    conn.execute(
        update(searches)
        .where(searches.c.id == search_id)
        .values(probe={"batch": len(batch), "profiles": profiles})
    )


def _backoff(node: Node, attempts: int) -> dt.datetime:
    seconds = min(node.config.comparison.max_backoff_seconds, 2.0 ** max(0, attempts - 1))
    return utcnow() + dt.timedelta(seconds=seconds)


async def step(node: Node, client: httpx.AsyncClient, job: Any) -> bool:
    """Send one batch of a job; True when it moved (so there may be more to do)."""
    from prum.node.exchange import dispatch

    batch = _batch(node, job)
    now = utcnow()
    if not batch:
        status = "done" if job.mode == SearchMode.INITIAL_BULK.value else "running"
        with node.engine.begin() as conn:
            conn.execute(
                update(comparisons)
                .where(comparisons.c.id == job.id)
                .values(
                    status=status,
                    updated_at=now,
                    next_try_at=now + dt.timedelta(seconds=node.config.comparison.poll_seconds),
                )
            )
        return False
    settings = node.config.comparison
    request = validated(
        SearchRequest,
        {
            "request_number": f"{node.party}-CMP-{job.id}-{batch[-1][0]}",
            "requesting_party": node.party,
            "requesting_user": SYSTEM_USER,
            "category": Category.DNA,
            "purpose": Purpose.INVESTIGATION,
            "max_penalty_months": 0,
            # Read by examiners on both sides (Art 7): words, not the mode's wire code.
            "case_reference": f"DNA {MODE_WORDS.get(job.mode, job.mode)} comparison"
            f" {node.party} with {job.party}",
            "targets": [job.party],
            "mode": job.mode,
            "batch": [probe for _, probe in batch],
            "max_candidates": 10,
            "deadline_ms": settings.deadline_ms,
        },
    )
    last_id = batch[-1][0]
    outcome: dict[str, Any] = {}

    def advance(conn: Connection, search_id: int, reply: SearchReply) -> None:
        answer = next((r for r in reply.replies if r.party == job.party), None)
        status = answer.status if answer else ReplyStatus.ERROR
        outcome["status"] = status
        if status in (ReplyStatus.ANSWERED, ReplyStatus.NO_HIT):
            assert answer is not None
            _keep_hit_profiles(conn, search_id, batch, answer.candidates)
            conn.execute(
                update(comparisons)
                .where(comparisons.c.id == job.id, comparisons.c.cursor == job.cursor)
                .values(
                    cursor=last_id,
                    attempts=0,
                    batch_size=min(settings.batch_size, job.batch_size * 2),
                    batches=comparisons.c.batches + 1,
                    compared=comparisons.c.compared + len(batch),
                    hits=comparisons.c.hits + len(answer.candidates),
                    last_error=None,
                    next_try_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
            return
        error = answer.error.message if answer and answer.error else status.value
        smaller = max(1, job.batch_size // 2) if status is ReplyStatus.TIMEOUT else job.batch_size
        conn.execute(
            update(comparisons)
            .where(comparisons.c.id == job.id)
            .values(
                attempts=job.attempts + 1,
                batch_size=smaller,
                last_error=f"{status.value}: {error}"[:2000],
                next_try_at=_backoff(node, job.attempts + 1),
                updated_at=utcnow(),
            )
        )

    try:
        await dispatch(node, client, SYSTEM_USER, request, {"batch": len(batch)}, advance)
    except PrumError as exc:  # the router refused or could not be reached
        with node.engine.begin() as conn:
            conn.execute(
                update(comparisons)
                .where(comparisons.c.id == job.id)
                .values(
                    attempts=job.attempts + 1,
                    last_error=f"{exc.code}: {exc}"[:2000],
                    next_try_at=_backoff(node, job.attempts + 1),
                    updated_at=utcnow(),
                )
            )
        return False
    return outcome.get("status") in (ReplyStatus.ANSWERED, ReplyStatus.NO_HIT)


async def run_due(node: Node, client: httpx.AsyncClient) -> int:
    """One batch of every job that is due; the number of batches that moved."""
    now = utcnow()
    with node.engine.connect() as conn:
        due = conn.execute(
            select(comparisons).where(comparisons.c.status == "running").order_by(comparisons.c.id)
        ).all()
    moved = 0
    for job in due:
        if _aware(job.next_try_at) > now:
            continue
        # The initial comparison of a party goes first; continuous waits for it.
        if job.mode == SearchMode.CONTINUOUS.value and any(
            j.party == job.party and j.mode == SearchMode.INITIAL_BULK.value for j in due
        ):
            continue
        moved += await step(node, client, job)
    return moved


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


async def run_comparisons(node: Node, client: httpx.AsyncClient) -> None:
    """The node's background loop (started with the national API when DNA is offered)."""
    idle = node.config.comparison.poll_seconds
    while True:
        try:
            moved = await run_due(node, client)
        except Exception:  # a bug must not stop the loop; it is logged and retried
            log.exception("DNA comparison step failed")
            moved = 0
        await asyncio.sleep(0 if moved else min(1.0, idle))
