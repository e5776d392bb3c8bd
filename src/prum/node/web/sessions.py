"""Server-side sessions of the workbench and their CSRF tokens.

The browser holds only a random session id (256 bits) in an HttpOnly, SameSite=Strict
cookie; the node's database holds its SHA-256, the user, the CSRF token and the
expiry, so a copy of the database does not let anyone act as a logged-in user, and a
logout or an expiry ends the session on the server, not only in the browser.

Expiry follows BSI IT-Grundschutz ORP.4 (lock after inactivity) and a working shift:
30 minutes idle, 12 hours at most. Roles are read from the user table on every
request, so a role taken away applies at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Engine, delete, select, update

from prum.node.schema import users, web_sessions
from prum.node.users import Role, User

IDLE = dt.timedelta(minutes=30)
ABSOLUTE = dt.timedelta(hours=12)
COOKIE = "prum_session"
LOGIN_COOKIE = "prum_login"  # double-submit token of the login form (no session yet)


@dataclass(frozen=True)
class Session:
    user: User
    csrf_token: str
    expires_at: dt.datetime


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def start(engine: Engine, user: User, now: dt.datetime | None = None) -> str:
    """A new session for a user who just authenticated; returns the id for the cookie."""
    now = now or _now()
    session_id = new_token()
    with engine.begin() as conn:
        conn.execute(delete(web_sessions).where(web_sessions.c.expires_at < now))
        conn.execute(
            web_sessions.insert().values(
                id_hash=_hash(session_id),
                user=user.name,
                csrf_token=new_token(),
                created_at=now,
                last_seen_at=now,
                expires_at=now + ABSOLUTE,
            )
        )
    return session_id


def resume(
    engine: Engine, session_id: str | None, now: dt.datetime | None = None
) -> Session | None:
    """The live session behind a cookie, or None (unknown, idle too long, expired)."""
    if not session_id or len(session_id) > 100:
        return None
    now = now or _now()
    key = _hash(session_id)
    with engine.begin() as conn:
        row = conn.execute(
            select(web_sessions, users.c.roles)
            .join(users, users.c.name == web_sessions.c.user)
            .where(web_sessions.c.id_hash == key)
        ).first()
        if row is None:
            return None
        expires = _aware(row.expires_at)
        if expires <= now or _aware(row.last_seen_at) + IDLE <= now:
            conn.execute(delete(web_sessions).where(web_sessions.c.id_hash == key))
            return None
        conn.execute(
            update(web_sessions).where(web_sessions.c.id_hash == key).values(last_seen_at=now)
        )
    user = User(row.user, frozenset(Role(r) for r in row.roles))
    return Session(user=user, csrf_token=row.csrf_token, expires_at=expires)


def end(engine: Engine, session_id: str | None) -> None:
    if session_id:
        with engine.begin() as conn:
            conn.execute(delete(web_sessions).where(web_sessions.c.id_hash == _hash(session_id)))


def same_token(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of a CSRF token; missing on either side is a mismatch."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
