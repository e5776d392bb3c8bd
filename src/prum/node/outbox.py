"""The node's durable outbox: a message is stored in the same transaction as the
decision that produced it (a release, a core-data request, an erasure's withdrawal
notice) and delivered by prum.node.followup's loop, with retries, until acknowledged.
Inserts and deletes for a category's external ABIS go through the same table, delivered
in order by prum.node.abis.delivery instead."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, insert

from prum.node.schema import outbox

# Messages for a category's external ABIS (destination: the category), not the router.
ABIS_INSERT = "abis_insert"
ABIS_DELETE = "abis_delete"
ABIS_KINDS = (ABIS_INSERT, ABIS_DELETE)


def enqueue(
    conn: Connection, message_id: str, kind: str, destination: str, envelope: dict[str, Any]
) -> None:
    """Queue a signed message for ``destination`` inside the caller's transaction."""
    now = dt.datetime.now(dt.UTC)
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
