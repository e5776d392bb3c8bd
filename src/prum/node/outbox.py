"""The node's durable outbox: a message is stored in the same transaction as the
decision that produced it (a release, a core-data request, an erasure's withdrawal
notice) and delivered by prum.node.followup's loop, with retries, until acknowledged."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert

from prum.node.core import utcnow
from prum.node.schema import outbox


def enqueue(
    conn: Connection, message_id: str, kind: str, destination: str, envelope: dict[str, Any]
) -> None:
    """Queue a signed message for ``destination`` inside the caller's transaction."""
    now = utcnow()
    conn.execute(
        insert(outbox).values(
            message_id=message_id,
            kind=kind,
            destination=destination,
            envelope=envelope,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
