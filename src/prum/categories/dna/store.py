"""The system of record of a national DNA database: SQLite (WAL) or PostgreSQL.

Each write is one transaction; the genotype index (prum.categories.dna.index) is derived from
this store and rebuilt or caught up from it (records past its last id, deletions past
its last deletion sequence).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from prum.categories.dna.schema import dna_deletions, dna_records
from prum.categories.interface import SubjectCategory
from prum.categories.store import CategoryStore, utcnow
from prum.db import new_reference
from prum.errors import InvalidRecord, StorageError

MIGRATIONS = Path(__file__).with_name("migrations")


@dataclass(frozen=True)
class NewProfile:
    profile_json: str  # normalised
    identified: bool
    subject_category: SubjectCategory
    provenance: str = ""
    date_of_birth: dt.date | None = None
    synthetic: bool = False
    source_key: str | None = None


@dataclass(frozen=True)
class DnaRecord:
    id: int
    reference: str
    subject_category: SubjectCategory
    identified: bool
    date_of_birth: dt.date | None
    provenance: str
    synthetic: bool
    profile: str  # normalised JSON


class DnaStore(CategoryStore):
    """Profiles and deletions of one DNA database."""

    record_table = dna_records
    deletion_table = dna_deletions
    migrations = MIGRATIONS
    what = "the DNA database"
    noun = "DNA record"

    def insert(
        self,
        profile_json: str,
        *,
        identified: bool,
        subject_category: SubjectCategory,
        provenance: str,
        date_of_birth: dt.date | None = None,
        synthetic: bool = False,
        source_key: str | None = None,
    ) -> tuple[int, str]:
        """Store one profile; returns (id, reference). A known ``source_key`` is not stored
        twice: the existing (id, reference) is returned."""
        try:
            with self.transaction() as conn:
                return self.insert_in(
                    conn,
                    profile_json,
                    identified=identified,
                    subject_category=subject_category,
                    provenance=provenance,
                    date_of_birth=date_of_birth,
                    synthetic=synthetic,
                    source_key=source_key,
                )
        except IntegrityError as exc:
            raise InvalidRecord(f"the DNA record conflicts with a stored one: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            raise StorageError(f"the DNA database refused the write: {exc}") from exc

    def insert_in(
        self,
        conn: Connection,
        profile_json: str,
        *,
        identified: bool,
        subject_category: SubjectCategory,
        provenance: str,
        date_of_birth: dt.date | None = None,
        synthetic: bool = False,
        source_key: str | None = None,
    ) -> tuple[int, str]:
        """:meth:`insert` on the caller's connection, inside the caller's transaction."""
        if source_key is not None:
            found = conn.execute(
                select(dna_records.c.id, dna_records.c.reference).where(
                    dna_records.c.source_key == source_key
                )
            ).first()
            if found is not None:
                return int(found[0]), str(found[1])
        reference = new_reference(self.country, "D")
        result = conn.execute(
            insert(dna_records).values(
                reference=reference,
                subject_category=subject_category.value,
                identified=identified,
                date_of_birth=date_of_birth,
                provenance=provenance,
                synthetic=synthetic,
                source_key=source_key,
                profile=profile_json,
                enrolled_at=utcnow(),
            )
        )
        pk = result.inserted_primary_key
        assert pk is not None
        return int(pk[0]), reference

    def insert_many_in(self, conn: Connection, rows: Sequence[NewProfile]) -> list[str]:
        """Profiles on the caller's connection in a few statements (bulk loads); their
        references in order. A known ``source_key`` is not stored twice."""
        keys = [r.source_key for r in rows if r.source_key is not None]
        known: dict[str, str] = {}
        for start in range(0, len(keys), 500):
            found = conn.execute(
                select(dna_records.c.source_key, dna_records.c.reference).where(
                    dna_records.c.source_key.in_(keys[start : start + 500])
                )
            ).all()
            known.update({str(k): str(r) for k, r in found})
        now = utcnow()
        references: list[str] = []
        new: list[dict[str, object]] = []
        for row in rows:
            if row.source_key is not None and row.source_key in known:
                references.append(known[row.source_key])
                continue
            reference = new_reference(self.country, "D")
            if row.source_key is not None:
                known[row.source_key] = reference  # the same key twice in one call
            references.append(reference)
            new.append(
                {
                    "reference": reference,
                    "subject_category": row.subject_category.value,
                    "identified": row.identified,
                    "date_of_birth": row.date_of_birth,
                    "provenance": row.provenance,
                    "synthetic": row.synthetic,
                    "source_key": row.source_key,
                    "profile": row.profile_json,
                    "enrolled_at": now,
                }
            )
        if new:
            conn.execute(insert(dna_records), new)
        return references

    def records(self, ids: list[int]) -> dict[int, DnaRecord]:
        if not ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(select(dna_records).where(dna_records.c.id.in_(ids))).all()
        return {
            int(r.id): DnaRecord(
                id=int(r.id),
                reference=r.reference,
                subject_category=SubjectCategory(r.subject_category),
                identified=bool(r.identified),
                date_of_birth=r.date_of_birth,
                provenance=r.provenance,
                synthetic=bool(r.synthetic),
                profile=r.profile,
            )
            for r in rows
        }

    def iter_profiles(self, *, after_id: int = 0, batch: int = 10_000) -> Iterator[tuple[int, str]]:
        """(id, profile JSON) in id order, in batches (never all in memory)."""
        last = after_id
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(dna_records.c.id, dna_records.c.profile)
                    .where(dna_records.c.id > last)
                    .order_by(dna_records.c.id)
                    .limit(batch)
                ).all()
            if not rows:
                return
            for r in rows:
                yield int(r[0]), str(r[1])
            last = int(rows[-1][0])
