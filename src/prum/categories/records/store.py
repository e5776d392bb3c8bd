"""The system of record of a national police-records index: SQLite (WAL) or PostgreSQL.

Each person is stored in clear (national data: core data are taken from it after a
confirmed match and a human release) together with the pseudonymised encodings of
each of its names under the federation key; every write is one transaction. The
in-memory index (prum.categories.records.index) is rebuilt from the encodings at start.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from prum.categories.interface import SubjectCategory
from prum.categories.records.encode import Encoding
from prum.categories.records.person import Person, person_from_dict
from prum.categories.records.schema import records_deletions, records_encodings, records_persons
from prum.categories.store import CategoryStore, utcnow
from prum.db import new_reference
from prum.errors import InvalidRecord, StorageError, UnknownReference
from prum.federation.messages import CoreData

MIGRATIONS = Path(__file__).with_name("migrations")
CASE_FIELDS = ("offence", "case_number", "responsible_authority")


@dataclass(frozen=True)
class NewRecord:
    """One person to store, with the encodings of its names under the current key."""

    person: Person
    encodings: list[Encoding]
    subject_category: SubjectCategory = SubjectCategory.SUSPECT
    provenance: str = ""
    synthetic: bool = False
    source_key: str | None = None
    case: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stored:
    id: int
    reference: str
    new: bool


@dataclass(frozen=True)
class RecordRow:
    id: int
    reference: str
    subject_category: SubjectCategory
    birth_year: int | None
    date_of_birth: dt.date | None
    provenance: str
    synthetic: bool


class RecordsStore(CategoryStore):
    """Persons, their encodings and the log of erasures, of one records holder."""

    record_table = records_persons
    deletion_table = records_deletions
    migrations = MIGRATIONS
    what = "the police-records database"
    noun = "police record"
    dependants = ((records_encodings, "record_id"),)

    def max_id(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(select(func.coalesce(func.max(records_persons.c.id), 0))).scalar_one()
            )

    def insert_many(self, records: Sequence[NewRecord]) -> list[Stored]:
        """Store persons in one transaction. A known ``source_key`` is not stored
        twice: the existing record comes back with ``new`` False."""
        out: list[Stored] = []
        try:
            with self.transaction() as conn:
                for record in records:
                    out.append(self._insert(conn, record))
        except IntegrityError as exc:
            raise InvalidRecord(f"the record conflicts with a stored one: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            raise StorageError(f"the police-records database refused the write: {exc}") from exc
        return out

    def insert_many_in(self, conn: Connection, records: Sequence[NewRecord]) -> list[Stored]:
        """Persons on the caller's connection in a few statements (bulk loads). A known
        ``source_key`` is not stored twice: the existing record comes back, ``new`` False."""
        keys = [r.source_key for r in records if r.source_key is not None]
        known: dict[str, Stored] = {}
        for start in range(0, len(keys), 500):
            found = conn.execute(
                select(
                    records_persons.c.source_key, records_persons.c.id, records_persons.c.reference
                ).where(records_persons.c.source_key.in_(keys[start : start + 500]))
            ).all()
            known.update({str(k): Stored(int(i), str(r), new=False) for k, i, r in found})
        now = utcnow()
        fresh = [r for r in records if r.source_key is None or r.source_key not in known]
        references = [new_reference(self.country, "R") for _ in fresh]
        rows = [
            {
                "reference": reference,
                "subject_category": record.subject_category.value,
                "person": record.person.to_json().decode(),
                "case_data": json.dumps(record.case, ensure_ascii=False),
                "birth_year": record.person.born.year,
                "date_of_birth": record.person.born.complete(),
                "provenance": record.provenance[:200],
                "synthetic": record.synthetic,
                "source_key": record.source_key,
                "enrolled_at": now,
            }
            for record, reference in zip(fresh, references, strict=True)
        ]
        ids: list[int] = []
        if rows:
            statement = insert(records_persons).returning(
                records_persons.c.id, sort_by_parameter_order=True
            )
            ids = [int(i) for i in conn.execute(statement, rows).scalars()]
        encodings = [
            {"record_id": record_id, "entry": entry, "key_id": e.key_id, "encoding": e.to_json()}
            for record_id, record in zip(ids, fresh, strict=True)
            for entry, e in enumerate(record.encodings)
        ]
        if encodings:
            conn.execute(insert(records_encodings), encodings)
        stored = iter(
            Stored(record_id, reference, new=True)
            for record_id, reference in zip(ids, references, strict=True)
        )
        out = []
        for record in records:
            key = record.source_key
            if key is not None and key in known:
                out.append(known[key])
            else:
                item = next(stored)
                out.append(item)
                if key is not None:
                    known[key] = Stored(item.id, item.reference, new=False)
        return out

    def _insert(self, conn: Connection, record: NewRecord) -> Stored:
        if record.source_key is not None:
            found = conn.execute(
                select(records_persons.c.id, records_persons.c.reference).where(
                    records_persons.c.source_key == record.source_key
                )
            ).first()
            if found is not None:
                return Stored(int(found[0]), str(found[1]), new=False)
        reference = new_reference(self.country, "R")
        person = record.person
        result = conn.execute(
            insert(records_persons).values(
                reference=reference,
                subject_category=record.subject_category.value,
                person=person.to_json().decode(),
                case_data=json.dumps(record.case, ensure_ascii=False),
                birth_year=person.born.year,
                date_of_birth=person.born.complete(),
                provenance=record.provenance[:200],
                synthetic=record.synthetic,
                source_key=record.source_key,
                enrolled_at=utcnow(),
            )
        )
        pk = result.inserted_primary_key
        assert pk is not None
        record_id = int(pk[0])
        if record.encodings:
            conn.execute(
                insert(records_encodings),
                [
                    {
                        "record_id": record_id,
                        "entry": entry,
                        "key_id": encoding.key_id,
                        "encoding": encoding.to_json(),
                    }
                    for entry, encoding in enumerate(record.encodings)
                ],
            )
        return Stored(record_id, reference, new=True)

    def iter_encodings(
        self, key_id: str, *, batch: int = 20_000, after_id: int = 0
    ) -> Iterator[tuple[int, list[Encoding]]]:
        """(record id, encodings of its names in entry order) under ``key_id``, by id."""
        last = after_id
        while True:
            with self.engine.connect() as conn:
                ids = (
                    conn.execute(
                        select(records_persons.c.id)
                        .where(records_persons.c.id > last)
                        .order_by(records_persons.c.id)
                        .limit(batch)
                    )
                    .scalars()
                    .all()
                )
                if not ids:
                    return
                rows = conn.execute(
                    select(records_encodings.c.record_id, records_encodings.c.encoding)
                    .where(
                        records_encodings.c.key_id == key_id,
                        records_encodings.c.record_id >= ids[0],
                        records_encodings.c.record_id <= ids[-1],
                    )
                    .order_by(records_encodings.c.record_id, records_encodings.c.entry)
                ).all()
            grouped: dict[int, list[Encoding]] = {}
            for record_id, text in rows:
                grouped.setdefault(int(record_id), []).append(Encoding.from_json(text))
            yield from grouped.items()
            last = int(ids[-1])

    def iter_persons(self, *, batch: int = 5_000) -> Iterator[tuple[int, Person]]:
        """(record id, clear person) by id: what a key rotation re-encodes."""
        last = 0
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(records_persons.c.id, records_persons.c.person)
                    .where(records_persons.c.id > last)
                    .order_by(records_persons.c.id)
                    .limit(batch)
                ).all()
            if not rows:
                return
            for record_id, text in rows:
                yield int(record_id), person_from_dict(json.loads(text))
            last = int(rows[-1][0])

    def add_encodings(self, rows: Sequence[tuple[int, list[Encoding]]]) -> None:
        """Store encodings of existing persons (a new key's, during a rotation)."""
        with self.transaction() as conn:
            values = [
                {
                    "record_id": record_id,
                    "entry": entry,
                    "key_id": encoding.key_id,
                    "encoding": encoding.to_json(),
                }
                for record_id, encodings in rows
                for entry, encoding in enumerate(encodings)
            ]
            if values:
                conn.execute(insert(records_encodings), values)

    def drop_key(self, key_id: str) -> int:
        """Delete every encoding under ``key_id`` (after a rotation); returns how many."""
        with self.transaction() as conn:
            result = conn.execute(
                delete(records_encodings).where(records_encodings.c.key_id == key_id)
            )
        return int(result.rowcount)

    def key_ids(self) -> dict[str, int]:
        """Encodings stored per key id."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(records_encodings.c.key_id, func.count()).group_by(
                    records_encodings.c.key_id
                )
            ).all()
        return {str(k): int(n) for k, n in rows}

    def rows(self, ids: list[int]) -> dict[int, RecordRow]:
        if not ids:
            return {}
        with self.engine.connect() as conn:
            found = conn.execute(
                select(
                    records_persons.c.id,
                    records_persons.c.reference,
                    records_persons.c.subject_category,
                    records_persons.c.birth_year,
                    records_persons.c.date_of_birth,
                    records_persons.c.provenance,
                    records_persons.c.synthetic,
                ).where(records_persons.c.id.in_(ids))
            ).all()
        return {
            int(r.id): RecordRow(
                id=int(r.id),
                reference=r.reference,
                subject_category=SubjectCategory(r.subject_category),
                birth_year=r.birth_year,
                date_of_birth=r.date_of_birth,
                provenance=r.provenance,
                synthetic=bool(r.synthetic),
            )
            for r in found
        }

    def person(self, reference: str) -> tuple[Person, dict[str, Any]]:
        """The clear person and case data of a reference (national use only)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(records_persons.c.person, records_persons.c.case_data).where(
                    records_persons.c.reference == reference
                )
            ).first()
        if row is None:
            raise UnknownReference(f"no police record has the reference {reference!r}")
        return person_from_dict(json.loads(row[0])), json.loads(row[1])

    def core_data(self, reference: str) -> CoreData:
        """The Art 47 core data of a record, for the holder's release decision.

        The equivalent of the node's ``node_core_data`` lookup for faces
        (prum.node.followup.decide): built from the clear record, never sent in step 1.
        """
        person, case = self.person(reference)
        aliases = [a.display() for a in person.aliases]
        try:
            return CoreData(
                surnames=list(person.name.surnames),
                first_names=list(person.name.first_names),
                aliases=[a for a in aliases if a],
                date_of_birth=person.born.complete(),
                place_of_birth=person.place_of_birth,
                nationalities=list(person.nationalities),
                gender=person.gender,  # type: ignore[arg-type]
                offence=case.get("offence"),
                case_number=case.get("case_number"),
                responsible_authority=case.get("responsible_authority"),
            )
        except ValidationError as exc:
            raise InvalidRecord(
                f"the stored record {reference} cannot form core data: {exc}"
            ) from exc
