"""What every category's store shares: its database (migrated when opened), erasure
with an entry in the deletion log, and that log read back by the category's index to
catch up after a restart. Each category's ``store.py`` subclasses :class:`CategoryStore`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from sqlalchemy import ColumnElement, Connection, Table, delete, func, insert, select
from sqlalchemy.exc import OperationalError

from prum.db import open_store
from prum.errors import StorageError, UnknownReference


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CategoryStore:
    """The system of record of one category in one node's database."""

    record_table: ClassVar[Table]  # a prum.categories.schema.record_table
    deletion_table: ClassVar[Table]  # a prum.categories.schema.deletions_table
    migrations: ClassVar[Path]
    what: ClassVar[str]  # "the DNA database", in errors about the database
    noun: ClassVar[str]  # "DNA record", in errors about one record
    # Rows of other tables that belong to a record: (table, its column of the record id).
    dependants: ClassVar[Sequence[tuple[Table, str]]] = ()

    def __init__(self, url: str, *, country: str = "XX"):
        self.url = url
        self.country = country
        self.engine = open_store(url, self.migrations, self.what)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction: committed when the block ends, rolled back if it
        raises. The database itself failing (a full disk, a restarted server) is a
        StorageError that says nothing was stored, not a driver traceback."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            reason = str(exc.orig).splitlines()[0][:160] if exc.orig else type(exc).__name__
            raise StorageError(
                f"{self.what} cannot be written ({reason}); nothing of this transaction"
                " was stored: try again when the database is back"
            ) from None

    def delete(self, reference: str, reason: str) -> int:
        """Erase a record with what belongs to it, and log that it happened (not what was
        erased) in the same transaction; returns the record's id."""
        with self.transaction() as conn:
            return self.delete_in(conn, reference, reason)

    def delete_in(self, conn: Connection, reference: str, reason: str) -> int:
        """:meth:`delete` on the caller's connection, inside the caller's transaction."""
        record_id = self._record_id(conn, reference)
        for table, column in self.dependants:
            conn.execute(delete(table).where(table.c[column] == record_id))
        conn.execute(delete(self.record_table).where(self.record_table.c.id == record_id))
        conn.execute(
            insert(self.deletion_table).values(
                record_id=record_id,
                reference=reference,
                reason=reason[:200],
                deleted_at=utcnow(),
            )
        )
        return record_id

    def _record_id(self, conn: Connection, reference: str) -> int:
        row = conn.execute(
            select(self.record_table.c.id).where(self.record_table.c.reference == reference)
        ).first()
        if row is None:
            raise UnknownReference(f"no {self.noun} has the reference {reference!r}")
        return int(row[0])

    def deletions_after(self, seq: int) -> list[tuple[int, int]]:
        """(seq, record id) of the deletions logged after ``seq``, in order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(self.deletion_table.c.seq, self.deletion_table.c.record_id)
                .where(self.deletion_table.c.seq > seq)
                .order_by(self.deletion_table.c.seq)
            ).all()
        return [(int(s), int(r)) for s, r in rows]

    def last_deletion_seq(self) -> int:
        with self.engine.connect() as conn:
            query = select(func.coalesce(func.max(self.deletion_table.c.seq), 0))
            return int(conn.execute(query).scalar_one())

    def count(self, *conditions: ColumnElement[bool]) -> int:
        """Records stored (matching ``conditions``)."""
        query = select(func.count()).select_from(self.record_table).where(*conditions)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())
