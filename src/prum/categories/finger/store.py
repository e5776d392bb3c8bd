"""The system of record of a national fingerprint database: SQLite (WAL) or PostgreSQL.

Each enrolment is one transaction (the record and its finger templates); the search
index (prum.categories.finger.index) is derived from this store and rebuilt or caught up from it
(templates past its last id, deletions past its last deletion sequence).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from prum.categories.finger.minutiae import Template
from prum.categories.finger.schema import finger_deletions, finger_records, finger_templates
from prum.categories.interface import SubjectCategory
from prum.categories.store import CategoryStore, utcnow
from prum.db import new_reference
from prum.errors import InvalidRecord, StorageError

MIGRATIONS = Path(__file__).with_name("migrations")

TENPRINT = "tenprint"
LATENT = "latent"
COLLECTIONS = (TENPRINT, LATENT)


@dataclass(frozen=True)
class FingerRecord:
    id: int
    reference: str
    collection: str
    subject_category: SubjectCategory
    date_of_birth: dt.date | None
    provenance: str
    synthetic: bool


@dataclass(frozen=True)
class StoredFinger:
    """One finger template as the index reads it."""

    id: int
    record_id: int
    position: int
    collection: str
    template: bytes


@dataclass(frozen=True)
class NewFinger:
    position: int
    template: bytes
    image: bytes | None


class FingerStore(CategoryStore):
    """Records, finger templates and deletions of one fingerprint database."""

    record_table = finger_records
    deletion_table = finger_deletions
    migrations = MIGRATIONS
    what = "the fingerprint database"
    noun = "fingerprint record"
    dependants = ((finger_templates, "record_id"),)

    def collection_size(self, collection: str) -> int:
        """Records in the tenprint or the latent collection."""
        return self.count(finger_records.c.collection == collection)

    def insert(
        self,
        fingers: list[NewFinger],
        *,
        collection: str,
        subject_category: SubjectCategory,
        provenance: str,
        date_of_birth: dt.date | None = None,
        synthetic: bool = False,
        source_key: str | None = None,
    ) -> tuple[int, str, list[int]]:
        """Store one record and its fingers; returns (id, reference, template ids).

        A known ``source_key`` is not stored twice: the existing record is returned
        (with no template ids, as nothing new needs indexing)."""
        if collection not in COLLECTIONS:
            raise InvalidRecord(f"unknown fingerprint collection {collection!r}")
        try:
            with self.transaction() as conn:
                return self.insert_in(
                    conn,
                    fingers,
                    collection=collection,
                    subject_category=subject_category,
                    provenance=provenance,
                    date_of_birth=date_of_birth,
                    synthetic=synthetic,
                    source_key=source_key,
                )
        except IntegrityError as exc:
            raise InvalidRecord(f"the fingerprint record conflicts: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            raise StorageError(f"the fingerprint database refused the write: {exc}") from exc

    def insert_in(
        self,
        conn: Connection,
        fingers: list[NewFinger],
        *,
        collection: str,
        subject_category: SubjectCategory,
        provenance: str,
        date_of_birth: dt.date | None = None,
        synthetic: bool = False,
        source_key: str | None = None,
    ) -> tuple[int, str, list[int]]:
        """:meth:`insert` on the caller's connection, inside the caller's transaction."""
        if collection not in COLLECTIONS:
            raise InvalidRecord(f"unknown fingerprint collection {collection!r}")
        if source_key is not None:
            found = conn.execute(
                select(finger_records.c.id, finger_records.c.reference).where(
                    finger_records.c.source_key == source_key
                )
            ).first()
            if found is not None:
                return int(found[0]), str(found[1]), []
        reference = new_reference(self.country, "F")
        result = conn.execute(
            insert(finger_records).values(
                reference=reference,
                collection=collection,
                subject_category=subject_category.value,
                date_of_birth=date_of_birth,
                provenance=provenance,
                synthetic=synthetic,
                source_key=source_key,
                enrolled_at=utcnow(),
            )
        )
        pk = result.inserted_primary_key
        assert pk is not None
        record_id = int(pk[0])
        ids = []
        for finger in fingers:
            res = conn.execute(
                insert(finger_templates).values(
                    record_id=record_id,
                    position=finger.position,
                    template=finger.template,
                    image=finger.image,
                )
            )
            key = res.inserted_primary_key
            assert key is not None
            ids.append(int(key[0]))
        return record_id, reference, ids

    def records(self, ids: list[int]) -> dict[int, FingerRecord]:
        if not ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(select(finger_records).where(finger_records.c.id.in_(ids))).all()
        return {
            int(r.id): FingerRecord(
                id=int(r.id),
                reference=r.reference,
                collection=r.collection,
                subject_category=SubjectCategory(r.subject_category),
                date_of_birth=r.date_of_birth,
                provenance=r.provenance,
                synthetic=bool(r.synthetic),
            )
            for r in rows
        }

    def image(self, template_id: int) -> bytes | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(finger_templates.c.image).where(finger_templates.c.id == template_id)
            ).first()
        return None if row is None or row[0] is None else bytes(row[0])

    def frame(self, template_id: int) -> tuple[int, int] | None:
        """(width, height) of the image a stored template's minutiae are measured in."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(finger_templates.c.template).where(finger_templates.c.id == template_id)
            ).first()
        if row is None:
            return None
        template = Template.from_bytes(bytes(row[0]))
        return template.width, template.height

    def position(self, template_id: int) -> int:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(finger_templates.c.position).where(finger_templates.c.id == template_id)
            ).first()
        return 0 if row is None else int(row[0])

    def iter_fingers(self, *, after_id: int = 0, batch: int = 5_000) -> Iterator[StoredFinger]:
        """Finger templates in id order, in batches (never all in memory)."""
        last = after_id
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(
                        finger_templates.c.id,
                        finger_templates.c.record_id,
                        finger_templates.c.position,
                        finger_records.c.collection,
                        finger_templates.c.template,
                    )
                    .join(finger_records, finger_records.c.id == finger_templates.c.record_id)
                    .where(finger_templates.c.id > last)
                    .order_by(finger_templates.c.id)
                    .limit(batch)
                ).all()
            if not rows:
                return
            for r in rows:
                yield StoredFinger(int(r[0]), int(r[1]), int(r[2]), str(r[3]), bytes(r[4]))
            last = int(rows[-1][0])
