"""Inserts and deletes for each category's external ABIS, from the node's outbox.

The national-systems interface queues them in the transaction that writes or erases the
record (prum.node.abis.adapter.ExternalIngester), so none is lost. This loop sends each
category's queue in order: consecutive inserts (or deletes) travel together, and a
failed request blocks its category's queue until it succeeds, retried with doubling
pauses, so a delete never overtakes the insert it undoes. The ABIS applies inserts
and deletes idempotently per reference, so a request resent after a crash (the node's
or the ABIS's) changes nothing twice: exactly once in effect. :func:`backlog` shows
what is waiting (``prum abis status``, ``GET /api/abis``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError
from sqlalchemy import func, select, update

from prum.federation.messages import Category
from prum.node.abis.adapter import client_options, error_of
from prum.node.abis.contract import (
    DeleteRequest,
    DeleteResponse,
    InsertRecord,
    InsertRequest,
    InsertResponse,
    RecordOutcome,
)
from prum.node.abis.endpoint import AbisEndpoint
from prum.node.core import Node, utcnow
from prum.node.outbox import ABIS_INSERT, ABIS_KINDS
from prum.node.schema import outbox

log = logging.getLogger("prum.abis")

MAX_RETRY_SECONDS = 60.0
# How long a request carrying a batch of records may take.
DELIVERY_TIMEOUT = 60.0


@dataclass
class Round:
    sent: int = 0
    failed: bool = False


async def deliver_category(
    node: Node, category: Category, endpoint: AbisEndpoint, client: httpx.AsyncClient
) -> Round:
    """Send the head of one category's queue (one request); what became of it."""
    with node.engine.connect() as conn:
        rows = conn.execute(
            select(
                outbox.c.id,
                outbox.c.kind,
                outbox.c.envelope,
                outbox.c.attempts,
                outbox.c.next_attempt_at,
            )
            .where(
                outbox.c.delivered_at.is_(None),
                outbox.c.kind.in_(ABIS_KINDS),
                outbox.c.destination == category.value,
            )
            .order_by(outbox.c.id)
            .limit(endpoint.insert_batch)
        ).all()
    if not rows or _aware(rows[0].next_attempt_at) > utcnow():
        return Round()
    head = rows[0]
    group = [head]
    for row in rows[1:]:
        same_reason = head.kind == ABIS_INSERT or (
            row.envelope.get("reason") == head.envelope.get("reason")
        )
        if row.kind != head.kind or not same_reason:
            break
        group.append(row)
    try:
        results = await _send(client, head.kind, group)
    except _Failed as exc:
        delay = min(MAX_RETRY_SECONDS, node.config.outbox_retry_seconds * 2**head.attempts)
        with node.engine.begin() as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.id == head.id)
                .values(
                    attempts=head.attempts + 1,
                    last_error=exc.reason[:1000],
                    next_attempt_at=utcnow() + dt.timedelta(seconds=delay),
                )
            )
        log.warning("ABIS %s: %s (retry in %.1f s)", category.value, exc.reason, delay)
        return Round(failed=True)
    refused = {r.reference: r.message or "" for r in results if r.outcome == "refused"}
    now = utcnow()
    with node.engine.begin() as conn:
        for row in group:
            reason = refused.get(row.envelope["reference"])
            conn.execute(
                update(outbox)
                .where(outbox.c.id == row.id)
                .values(
                    delivered_at=now,
                    attempts=row.attempts + 1,
                    last_error=None if reason is None else f"refused by the ABIS: {reason}"[:1000],
                )
            )
    for reference, reason in refused.items():
        log.warning("ABIS %s refused %s: %s", category.value, reference, reason)
    return Round(sent=len(group))


class _Failed(Exception):
    def __init__(self, reason: str):
        self.reason = reason


async def _send(client: httpx.AsyncClient, kind: str, group: list[Any]) -> list[RecordOutcome]:
    if kind == ABIS_INSERT:
        path = "/insert"
        body = InsertRequest(
            records=[InsertRecord.model_validate(r.envelope) for r in group]
        ).model_dump_json()
    else:
        path = "/delete"
        body = DeleteRequest(
            references=[r.envelope["reference"] for r in group],
            reason=group[0].envelope["reason"][:200],
        ).model_dump_json()
    try:
        response = await client.post(path, content=body, timeout=DELIVERY_TIMEOUT)
    except httpx.HTTPError as exc:
        raise _Failed(f"{type(exc).__name__}: {exc}") from None
    if response.status_code != 200:
        error = error_of(response)
        raise _Failed(f"HTTP {response.status_code} {error.code}: {error.message}")
    model = InsertResponse if kind == ABIS_INSERT else DeleteResponse
    try:
        results = model.model_validate_json(response.content).results
    except ValidationError as exc:
        raise _Failed(f"an answer that does not follow the contract ({str(exc)[:200]})") from None
    if {r.reference for r in results} != {r.envelope["reference"] for r in group}:
        raise _Failed("an answer that does not name the records sent")
    return results


async def run_delivery(node: Node, wake: asyncio.Event | None = None) -> None:
    """Deliver forever: every category's queue drained while it moves, then a look
    every 0.2 s (or at once when woken)."""
    endpoints = {c: p.abis for c, p in node.config.categories.items() if p.abis is not None}
    clients = {
        c: httpx.AsyncClient(**client_options(e, timeout=DELIVERY_TIMEOUT))
        for c, e in endpoints.items()
    }
    try:
        while True:
            moved = False
            for category, endpoint in endpoints.items():
                try:
                    moved |= (
                        await deliver_category(node, category, endpoint, clients[category])
                    ).sent > 0
                except Exception:  # a failed round is retried; the loop must not die
                    log.exception("ABIS delivery round failed")
            if moved:
                continue
            if wake is None:
                await asyncio.sleep(0.2)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=0.2)
                wake.clear()
    finally:
        for client in clients.values():
            await client.aclose()


def backlog(node: Node) -> dict[str, dict[str, Any]]:
    """Per ABIS-served category: messages waiting, the age of the oldest, the head's
    attempts and last error, and how many records the ABIS refused."""
    categories = [c.value for c, p in node.config.categories.items() if p.abis is not None]
    now = utcnow()
    out: dict[str, dict[str, Any]] = {}
    with node.engine.connect() as conn:
        for category in categories:
            mine = (outbox.c.kind.in_(ABIS_KINDS), outbox.c.destination == category)
            pending = conn.execute(
                select(func.count(), func.min(outbox.c.created_at)).where(
                    *mine, outbox.c.delivered_at.is_(None)
                )
            ).one()
            head = conn.execute(
                select(outbox.c.attempts, outbox.c.last_error, outbox.c.next_attempt_at)
                .where(*mine, outbox.c.delivered_at.is_(None))
                .order_by(outbox.c.id)
                .limit(1)
            ).first()
            delivered = conn.execute(
                select(func.count()).where(*mine, outbox.c.delivered_at.is_not(None))
            ).scalar_one()
            refused = conn.execute(
                select(func.count()).where(
                    *mine,
                    outbox.c.delivered_at.is_not(None),
                    outbox.c.last_error.is_not(None),
                )
            ).scalar_one()
            oldest = pending[1]
            out[category] = {
                "pending": int(pending[0]),
                "lag_seconds": 0.0 if oldest is None else (now - _aware(oldest)).total_seconds(),
                "attempts": 0 if head is None else int(head.attempts),
                "last_error": None if head is None else head.last_error,
                "delivered": int(delivered),
                "refused": int(refused),
            }
    return out


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
