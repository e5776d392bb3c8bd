"""National users of a node and their roles; passwords hashed with argon2.

Roles (DESIGN.md section 6): officer (searches), examiner (verifies candidates),
approver (releases core data; never for a match they verified), auditor (reads logs
and statistics), admin (users, configuration). One user may hold several roles.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from prum.errors import BadInput, NotAuthorised, RoleRequired
from prum.node.schema import users

# Five wrong passwords lock the account for 15 minutes (BSI IT-Grundschutz ORP.4).
MAX_FAILED_LOGINS = 5
LOCKOUT = dt.timedelta(minutes=15)
_NAME = re.compile(r"^[a-z0-9._-]{2,64}$")
_hasher = PasswordHasher()


class Role(StrEnum):
    OFFICER = "officer"
    EXAMINER = "examiner"
    APPROVER = "approver"
    AUDITOR = "auditor"
    ADMIN = "admin"


@dataclass(frozen=True)
class User:
    name: str
    roles: frozenset[Role]

    def require(self, role: Role) -> None:
        if role not in self.roles:
            raise RoleRequired(f"{self.name} lacks the {role.value} role needed for this action")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def add_user(engine: Engine, name: str, password: str, roles: set[Role]) -> User:
    if not _NAME.match(name):
        raise BadInput("a user name is 2-64 characters of a-z, 0-9, '.', '_' or '-'")
    if len(password) < 12:
        raise BadInput("a password needs at least 12 characters")
    if not roles:
        raise BadInput("a user needs at least one role")
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(users).values(
                    name=name,
                    password_hash=_hasher.hash(password),
                    roles=sorted(r.value for r in roles),
                    failed_logins=0,
                    created_at=_now(),
                )
            )
    except IntegrityError:
        raise BadInput(f"the user {name!r} exists already") from None
    return User(name, frozenset(roles))


def authenticate(engine: Engine, name: str, password: str) -> User:
    """The user, if the password is right and the account not locked.

    A wrong password is counted in its own committed transaction (raising inside
    the transaction would roll the count back, and lockout would never happen).
    """
    refused = NotAuthorised("wrong user name or password")
    with engine.begin() as conn:
        row = conn.execute(select(users).where(users.c.name == name)).first()
        if row is None:
            _hasher.hash(password)  # same time as a wrong password: no user enumeration
            raise refused
        locked = row.locked_until
        if locked is not None and locked.tzinfo is None:
            locked = locked.replace(tzinfo=dt.UTC)
        if locked is not None and locked > _now():
            raise NotAuthorised(
                f"the account is locked until {locked:%H:%M} UTC after failed logins"
            )
        try:
            _hasher.verify(row.password_hash, password)
            wrong = False
        except (VerificationError, InvalidHashError):
            wrong = True
        if wrong:
            failed = row.failed_logins + 1
            conn.execute(
                update(users)
                .where(users.c.name == name)
                .values(
                    failed_logins=0 if failed >= MAX_FAILED_LOGINS else failed,
                    locked_until=_now() + LOCKOUT if failed >= MAX_FAILED_LOGINS else None,
                )
            )
        elif row.failed_logins or row.locked_until is not None:
            conn.execute(
                update(users).where(users.c.name == name).values(failed_logins=0, locked_until=None)
            )
    if wrong:
        raise refused
    return User(name, frozenset(Role(r) for r in row.roles))
