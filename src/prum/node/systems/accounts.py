"""Machine accounts of the national systems that feed a node.

A system authenticates with a bearer token bound to its account: 256 random bits,
shown once when the account is made, kept only as a SHA-256 digest (a token is not a
password: it cannot be guessed, so a slow hash buys nothing). An account names the
categories it may write; it can neither search nor release. A people's login
(officers, examiners ...) is no system credential, and a token opens no workbench.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from prum.errors import BadInput, NoCredentials, RoleRequired
from prum.federation.messages import Category
from prum.node.schema import system_accounts

_NAME = re.compile(r"^[a-z0-9._-]{2,64}$")
TOKEN_PREFIX = "prum-sys-"


@dataclass(frozen=True)
class SystemAccount:
    name: str
    categories: frozenset[Category]

    def require(self, category: Category) -> None:
        if category not in self.categories:
            raise RoleRequired(
                f"the system account {self.name} may not write {category.value} records"
                f" (it may write: {', '.join(sorted(c.value for c in self.categories))})"
            )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_system(engine: Engine, name: str, categories: set[Category]) -> str:
    """Create a system account; returns its token (shown once, never stored)."""
    if not _NAME.match(name):
        raise BadInput(f"{name!r} is not a system name: 2-64 of a-z, 0-9, '.', '_', '-'")
    if not categories:
        raise BadInput("a system account needs at least one category it may write")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(system_accounts).values(
                    name=name,
                    token_sha256=_digest(token),
                    categories=sorted(c.value for c in categories),
                    created_at=dt.datetime.now(dt.UTC),
                )
            )
    except IntegrityError:
        raise BadInput(f"a system account {name!r} exists already") from None
    return token


def revoke_system(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        done = conn.execute(
            update(system_accounts)
            .where(system_accounts.c.name == name, system_accounts.c.revoked_at.is_(None))
            .values(revoked_at=dt.datetime.now(dt.UTC))
        )
    if done.rowcount == 0:
        raise BadInput(f"no active system account is named {name!r}")


def authenticate_system(engine: Engine, token: str) -> SystemAccount:
    """The account a bearer token belongs to; NotAuthorised otherwise (same answer for
    an unknown and a revoked token)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise NoCredentials(
            "this interface is for national systems: send a system token"
            " (Authorization: Bearer prum-sys-...) made with `prum node system-add`"
        )
    digest = _digest(token)
    with engine.connect() as conn:
        row = conn.execute(
            select(system_accounts).where(system_accounts.c.token_sha256 == digest)
        ).first()
    if (
        row is None
        or row.revoked_at is not None
        or not hmac.compare_digest(row.token_sha256, digest)
    ):
        raise NoCredentials("unknown or revoked system token")
    return SystemAccount(row.name, frozenset(Category(c) for c in row.categories))
