"""What a user of the workbench must see without looking for it: core data arrived, a
hold set on a request, a reference withdrawn, a verdict change to countersign.

A notification is written in the same transaction as the event it reports (the
reply's receipt, the withdrawal, the proposal), so none is lost and none is told of
something that did not happen. It names what happened and links to the page; it
carries no core data.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from prum.node.core import utcnow
from prum.node.schema import notifications, users

# Shown at most; older ones stay in the table until retention removes them.
LIST_LIMIT = 200


def notify(
    conn: Connection, recipients: Iterable[str], kind: str, text: str, link: str | None = None
) -> None:
    """In the caller's transaction: one notification per recipient (duplicates once)."""
    now = utcnow()
    rows = [
        {"user": user, "kind": kind, "text": text[:500], "link": link, "created_at": now}
        for user in sorted(set(recipients))
        if user
    ]
    if rows:
        conn.execute(insert(notifications), rows)


def users_with(conn: Connection, role: str, *, besides: str | None = None) -> list[str]:
    """The names of users holding ``role`` (except ``besides``)."""
    names = []
    for name, roles in conn.execute(select(users.c.name, users.c.roles)):
        if role in (roles or []) and name != besides:
            names.append(name)
    return names


def unread(engine: Engine, user: str) -> int:
    with engine.connect() as conn:
        count = conn.execute(
            select(func.count())
            .select_from(notifications)
            .where(notifications.c.user == user, notifications.c.read_at.is_(None))
        ).scalar_one()
    return int(count)


def for_user(engine: Engine, user: str) -> list[dict[str, Any]]:
    """The user's notifications, newest first; the unread ones become read."""
    with engine.begin() as conn:
        rows = conn.execute(
            select(notifications)
            .where(notifications.c.user == user)
            .order_by(notifications.c.id.desc())
            .limit(LIST_LIMIT)
        ).all()
        conn.execute(
            update(notifications)
            .where(notifications.c.user == user, notifications.c.read_at.is_(None))
            .values(read_at=utcnow())
        )
    return [dict(r._mapping) for r in rows]
