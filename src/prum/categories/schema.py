"""The tables every category's store has in common: a record table that starts and ends
with the same columns, and a log of deletions. Each category's ``schema.py`` adds its
own columns and tables."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, DateTime, MetaData, String, Table

from prum.db import BigId


def record_table(name: str, metadata: MetaData, *columns: Any) -> Table:
    """A category's record table: identity and subject category, then ``columns``, then
    where the record came from and when it was enrolled."""
    return Table(
        name,
        metadata,
        Column("id", BigId, primary_key=True, autoincrement=True),
        # Opaque and random ("AT-D-..."): names the record, never the person.
        Column("reference", String(40), nullable=False, unique=True),
        Column("subject_category", String(32), nullable=False),
        *columns,
        Column("provenance", String(200), nullable=False),
        Column("synthetic", Boolean, nullable=False, default=False),
        # Idempotency key of bulk loads: the same source is never stored twice.
        Column("source_key", String(500), nullable=True, unique=True),
        Column("enrolled_at", DateTime(timezone=True), nullable=False),
    )


def deletions_table(name: str, metadata: MetaData) -> Table:
    """Every erasure is logged (that it happened, not what was erased), so an index
    catches up after a restart and supervisors can see it."""
    return Table(
        name,
        metadata,
        Column("seq", BigId, primary_key=True, autoincrement=True),
        Column("record_id", BigInteger, nullable=False),
        Column("reference", String(40), nullable=False),
        Column("reason", String(200), nullable=False),
        Column("deleted_at", DateTime(timezone=True), nullable=False),
    )
