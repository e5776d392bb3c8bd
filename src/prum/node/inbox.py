"""The node's inbox: every message the router delivers (a core-data request, reply,
hold or cancellation, a withdrawal notice) is recorded by its id in the same
transaction as its effect. A redelivery, after a crash or a lost acknowledgement,
hits the id already there: it is acknowledged as a duplicate and changes nothing.
The sending side of this exactly-once pair is prum.node.outbox."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy.exc import IntegrityError

from prum.node.schema import inbox


def accept_once(
    transaction: AbstractContextManager[Connection],
    *,
    message_id: str,
    kind: str,
    sender: str,
    received_at: dt.datetime,
    effect: Callable[[Connection], object],
) -> dict[str, Any]:
    """Record the message in the inbox and apply ``effect`` in one ``transaction``; the
    acknowledgement for the router. An integrity error (the id is already there) rolls
    back the whole transaction, effect included, and is answered as a duplicate."""
    try:
        with transaction as conn:
            conn.execute(
                insert(inbox).values(
                    message_id=message_id, kind=kind, sender=sender, received_at=received_at
                )
            )
            effect(conn)
    except IntegrityError:
        return {"accepted": message_id, "duplicate": True}
    return {"accepted": message_id, "duplicate": False}
