"""The system of record of a national face gallery: SQLite (WAL) or PostgreSQL.

Every write is one transaction: a record is either fully there (row with template
and image) or not at all, so a crash mid-enrolment loses nothing that was committed
and leaves nothing half-written. The vector index is derived from this store and
can always be rebuilt from it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from prum.categories.face.schema import (
    face_calibration,
    face_deletions,
    face_records,
    gallery_meta,
)
from prum.categories.interface import SubjectCategory
from prum.categories.store import CategoryStore, utcnow
from prum.db import new_reference
from prum.errors import InvalidRecord, StorageError, UnknownReference

MIGRATIONS = Path(__file__).with_name("migrations")


@dataclass(frozen=True)
class NewRecord:
    subject_category: SubjectCategory
    provenance: str
    model_id: str
    template: NDArray[np.float32]
    date_of_birth: dt.date | None = None
    person_key: str | None = None
    synthetic: bool = False
    source_key: str | None = None
    image: bytes | None = None
    image_sha256: str | None = None
    image_format: str | None = None
    face_box: list[int] | None = None
    quality_overall: float | None = None
    quality: dict[str, Any] | None = None


@dataclass(frozen=True)
class StoredRecord:
    id: int
    reference: str
    subject_category: SubjectCategory
    date_of_birth: dt.date | None
    provenance: str
    synthetic: bool
    quality_overall: float | None
    quality: dict[str, Any] | None
    face_box: list[int] | None
    model_id: str
    enrolled_at: dt.datetime


@dataclass(frozen=True)
class TemplateRow:
    id: int
    category_code: int
    dob_days: int | None
    vector: NDArray[np.float32]


class FaceStore(CategoryStore):
    """Records, deletions, calibration and metadata of one gallery."""

    record_table = face_records
    deletion_table = face_deletions
    migrations = MIGRATIONS
    what = "the gallery database"
    noun = "face record"

    # --- metadata -------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(select(gallery_meta.c.value).where(gallery_meta.c.key == key))
            return value.scalar_one_or_none()

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            self.set_meta_in(conn, key, value)

    def set_meta_in(self, conn: Connection, key: str, value: str) -> None:
        updated = conn.execute(
            update(gallery_meta).where(gallery_meta.c.key == key).values(value=value)
        )
        if updated.rowcount == 0:
            conn.execute(insert(gallery_meta).values(key=key, value=value))

    # --- records --------------------------------------------------------------------

    def insert_many(self, records: Sequence[NewRecord]) -> list[tuple[int, str]]:
        """Insert records in one transaction; returns (id, reference) of each.

        A record whose ``source_key`` is already stored is skipped (bulk enrolment
        resumes without duplicates) and reported with the stored id and reference.
        """
        try:
            with self.transaction() as conn:
                return self.insert_many_in(conn, records)
        except IntegrityError as exc:
            raise InvalidRecord(f"the record conflicts with a stored one: {exc.orig}") from exc
        except OperationalError as exc:
            raise StorageError(f"the gallery database refused the write: {exc.orig}") from exc

    def insert_many_in(
        self, conn: Connection, records: Sequence[NewRecord]
    ) -> list[tuple[int, str]]:
        """:meth:`insert_many` on the caller's connection, inside the caller's transaction."""
        out: list[tuple[int, str]] = []
        now = utcnow()
        for record in records:
            if record.source_key is not None:
                existing = conn.execute(
                    select(face_records.c.id, face_records.c.reference).where(
                        face_records.c.source_key == record.source_key
                    )
                ).first()
                if existing is not None:
                    out.append((int(existing[0]), str(existing[1])))
                    continue
            reference = new_reference(self.country, "F")
            result = conn.execute(
                insert(face_records).values(
                    reference=reference,
                    subject_category=record.subject_category.value,
                    date_of_birth=record.date_of_birth,
                    person_key=record.person_key,
                    provenance=record.provenance,
                    synthetic=record.synthetic,
                    source_key=record.source_key,
                    image_sha256=record.image_sha256,
                    image_format=record.image_format,
                    image=record.image,
                    face_box=record.face_box,
                    quality_overall=record.quality_overall,
                    quality=record.quality,
                    model_id=record.model_id,
                    template=np.asarray(record.template, dtype="<f4").tobytes(),
                    enrolled_at=now,
                )
            )
            pk = result.inserted_primary_key
            assert pk is not None
            out.append((int(pk[0]), reference))
        return out

    def existing_source_keys(self, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                rows = conn.execute(
                    select(face_records.c.source_key).where(face_records.c.source_key.in_(chunk))
                )
                found.update(str(r[0]) for r in rows)
        return found

    def get(self, reference: str) -> StoredRecord:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(face_records).where(face_records.c.reference == reference)
            ).first()
        if row is None:
            raise UnknownReference(f"no face record has the reference {reference!r}")
        return _stored(row._mapping)

    def get_by_ids(self, ids: Sequence[int]) -> dict[int, StoredRecord]:
        if not ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(select(face_records).where(face_records.c.id.in_(list(ids))))
            return {int(r.id): _stored(r._mapping) for r in rows}

    def templates_by_ids(self, ids: Sequence[int]) -> dict[int, NDArray[np.float32]]:
        """Stored templates of these records (a search re-scores its shortlist with them)."""
        if not ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(face_records.c.id, face_records.c.template).where(
                    face_records.c.id.in_(list(ids))
                )
            )
            return {int(r[0]): np.frombuffer(r[1], dtype="<f4") for r in rows}

    def records_to_reenrol(
        self, model_id: str, *, after_id: int = 0, batch: int = 256
    ) -> list[tuple[int, bytes | None, list[int] | None]]:
        """The next ``batch`` records whose template is not of ``model_id``: id, image
        and the face box chosen at enrolment (face/reenrol.py)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(face_records.c.id, face_records.c.image, face_records.c.face_box)
                .where(face_records.c.id > after_id, face_records.c.model_id != model_id)
                .order_by(face_records.c.id)
                .limit(batch)
            ).all()
        return [(int(r[0]), None if r[1] is None else bytes(r[1]), r[2]) for r in rows]

    def replace_templates(
        self, model_id: str, templates: Sequence[tuple[int, NDArray[np.float32]]]
    ) -> None:
        """Give records a template of another model (one transaction)."""
        with self.transaction() as conn:
            for rid, vector in templates:
                conn.execute(
                    update(face_records)
                    .where(face_records.c.id == rid)
                    .values(
                        model_id=model_id,
                        template=np.asarray(vector, dtype="<f4").tobytes(),
                    )
                )

    def count_model(self, model_id: str) -> tuple[int, int]:
        """(records with a template of ``model_id``, all records)."""
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(face_records)).scalar_one()
            done = conn.execute(
                select(func.count())
                .select_from(face_records)
                .where(face_records.c.model_id == model_id)
            ).scalar_one()
        return int(done), int(total)

    def image(self, reference: str) -> tuple[bytes, str | None] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(face_records.c.image, face_records.c.image_format).where(
                    face_records.c.reference == reference
                )
            ).first()
        if row is None:
            raise UnknownReference(f"no face record has the reference {reference!r}")
        return None if row[0] is None else (bytes(row[0]), row[1])

    def source_key(self, reference: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(face_records.c.source_key).where(face_records.c.reference == reference)
            ).first()
        if row is None:
            raise UnknownReference(f"no face record has the reference {reference!r}")
        return None if row[0] is None else str(row[0])

    def references(self, *, synthetic: bool | None = None) -> list[str]:
        """Reference numbers of all records (optionally only real or only synthetic)."""
        query = select(face_records.c.reference).order_by(face_records.c.id)
        if synthetic is not None:
            query = query.where(face_records.c.synthetic.is_(synthetic))
        with self.engine.connect() as conn:
            return [str(r[0]) for r in conn.execute(query)]

    def model_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(face_records.c.model_id).distinct())
            return {str(r[0]) for r in rows}

    def iter_templates(
        self, *, after_id: int = 0, batch: int = 10_000, model_id: str | None = None
    ) -> Iterator[TemplateRow]:
        """Stream templates in id order (for index builds; never all in memory).

        ``model_id`` skips templates of another model (records a re-enrolment has not
        reached yet, or already upgraded, face/reenrol.py)."""
        epoch = dt.date(1970, 1, 1)
        codes = {c.value: c.code for c in SubjectCategory}
        last = after_id
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(
                        face_records.c.id,
                        face_records.c.subject_category,
                        face_records.c.date_of_birth,
                        face_records.c.template,
                    )
                    .add_columns(face_records.c.model_id)
                    .where(face_records.c.id > last)
                    .order_by(face_records.c.id)
                    .limit(batch)
                ).all()
            if not rows:
                return
            for r in rows:
                if model_id is not None and r[4] != model_id:
                    continue
                dob = None if r[2] is None else (r[2] - epoch).days
                yield TemplateRow(int(r[0]), codes[r[1]], dob, np.frombuffer(r[3], dtype="<f4"))
            last = int(rows[-1][0])

    def sample_templates(
        self, n: int, *, seed: int = 0, model_id: str | None = None, real_only: bool = True
    ) -> tuple[list[int], list[str | None], NDArray[np.float32]]:
        """About ``n`` random records: ids, person keys and templates; with
        ``real_only`` (the default) never a synthetic one, which says nothing about how
        real faces differ (a gallery of a million synthetic templates calibrated on
        them released a real look-alike at a stated false-match rate below 1e-4).

        Draws ids uniformly between the smallest and largest id (ids come from a
        sequence, so they are dense apart from deletions) instead of ORDER BY random(),
        which would scan a 30-million-row table; in a gallery that is mostly synthetic
        few real records are drawn, and calibration falls back to the reference.
        """
        with self.engine.connect() as conn:
            lo, hi = conn.execute(
                select(func.min(face_records.c.id), func.max(face_records.c.id))
            ).one()
            if lo is None:
                return [], [], np.empty((0, 0), np.float32)
            rng = np.random.default_rng(seed)
            span = int(hi) - int(lo) + 1
            if span <= 2 * n:
                wanted = np.arange(int(lo), int(hi) + 1)
            else:
                wanted = np.unique(rng.integers(int(lo), int(hi) + 1, size=2 * n))
            ids: list[int] = []
            keys: list[str | None] = []
            vectors: list[NDArray[np.float32]] = []
            for start in range(0, len(wanted), 1000):
                chunk = [int(i) for i in wanted[start : start + 1000]]
                rows = conn.execute(
                    select(
                        face_records.c.id,
                        face_records.c.person_key,
                        face_records.c.template,
                        face_records.c.model_id,
                        face_records.c.synthetic,
                    ).where(face_records.c.id.in_(chunk))
                )
                for r in rows:
                    if (model_id is not None and r[3] != model_id) or (real_only and r[4]):
                        continue
                    ids.append(int(r[0]))
                    keys.append(r[1])
                    vectors.append(np.frombuffer(r[2], dtype="<f4"))
                if len(ids) >= n:
                    break
        if not vectors:
            return [], [], np.empty((0, 0), np.float32)
        return ids[:n], keys[:n], np.stack(vectors[:n])

    # --- calibration ----------------------------------------------------------------

    def save_calibration(self, model_id: str, source: str, comparisons: int, data: bytes) -> None:
        with self.transaction() as conn:
            conn.execute(
                insert(face_calibration).values(
                    model_id=model_id,
                    source=source,
                    comparisons=comparisons,
                    data=data,
                    created_at=utcnow(),
                )
            )

    def latest_calibration(self, model_id: str) -> bytes | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(face_calibration.c.data)
                .where(face_calibration.c.model_id == model_id)
                .order_by(face_calibration.c.id.desc())
                .limit(1)
            ).first()
        return None if row is None else bytes(row[0])


def _stored(m: Any) -> StoredRecord:
    return StoredRecord(
        id=int(m["id"]),
        reference=str(m["reference"]),
        subject_category=SubjectCategory(m["subject_category"]),
        date_of_birth=m["date_of_birth"],
        provenance=str(m["provenance"]),
        synthetic=bool(m["synthetic"]),
        quality_overall=m["quality_overall"],
        quality=m["quality"],
        face_box=m["face_box"],
        model_id=str(m["model_id"]),
        enrolled_at=m["enrolled_at"],
    )
