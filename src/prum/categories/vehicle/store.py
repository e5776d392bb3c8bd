"""The system of record of a national vehicle register: SQLite (WAL) or PostgreSQL.

Every write is one transaction: a single enrolment, a whole CSV import
(:meth:`VehicleStore.writer`), or each batch of a bulk load. Lookups go through the
indexes on the normalised plate, the VIN and the holder's folded name and birth date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, insert, or_, select, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from prum.categories.store import CategoryStore, utcnow
from prum.categories.vehicle.normalise import name_key, plate_key
from prum.categories.vehicle.record import Registration, Role
from prum.categories.vehicle.schema import (
    INDEXES,
    vehicle_deletions,
    vehicle_parties,
    vehicle_records,
)
from prum.db import new_reference
from prum.errors import InvalidRecord, StorageError

MIGRATIONS = Path(__file__).with_name("migrations")

# Column order of the tuples given to VehicleStore.bulk_load.
BULK_VEHICLE_COLUMNS = (
    "id",
    "reference",
    "plate",
    "plate_key",
    "vin",
    "make",
    "model",
    "vehicle_category",
    "first_registration",
    "stolen_since",
    "exported_on",
    "destroyed_on",
    "insurer",
    "insurance_valid_until",
    "provenance",
    "synthetic",
    "enrolled_at",
)
BULK_PARTY_COLUMNS = (
    "vehicle_id",
    "role",
    "surname",
    "first_names",
    "date_of_birth",
    "address",
    "since",
    "until",
    "surname_key",
    "first_names_key",
)


@dataclass(frozen=True)
class StoredParty:
    role: Role
    surname: str
    first_names: str | None
    date_of_birth: dt.date | None
    address: str | None
    since: dt.date
    until: dt.date | None

    def holds_on(self, day: dt.date) -> bool:
        return self.since <= day and (self.until is None or day < self.until)


@dataclass(frozen=True)
class StoredVehicle:
    id: int
    reference: str
    plate: str
    vin: str
    make: str | None
    model: str | None
    vehicle_category: str | None
    first_registration: dt.date | None
    stolen_since: dt.date | None
    exported_on: dt.date | None
    destroyed_on: dt.date | None
    insurer: str | None
    insurance_valid_until: dt.date | None
    provenance: str
    synthetic: bool
    parties: tuple[StoredParty, ...]


def _vehicle_row(reg: Registration, reference: str, now: dt.datetime) -> dict[str, Any]:
    return {
        "reference": reference,
        "plate": reg.plate,
        "plate_key": plate_key(reg.plate),
        "vin": reg.vin,
        "make": reg.make,
        "model": reg.model,
        "vehicle_category": reg.vehicle_category,
        "first_registration": reg.first_registration,
        "stolen_since": reg.stolen_since,
        "exported_on": reg.exported_on,
        "destroyed_on": reg.destroyed_on,
        "insurer": reg.insurer,
        "insurance_valid_until": reg.insurance_valid_until,
        "provenance": reg.provenance,
        "synthetic": reg.synthetic,
        "source_key": reg.source_key,
        "enrolled_at": now,
    }


def _party_rows(vehicle_id: int, reg: Registration) -> list[dict[str, Any]]:
    return [
        {
            "vehicle_id": vehicle_id,
            "role": p.role.value,
            "surname": p.surname,
            "first_names": p.first_names,
            "date_of_birth": p.date_of_birth,
            "address": p.address,
            "since": p.since,
            "until": p.until,
            "surname_key": name_key(p.surname),
            "first_names_key": name_key(p.first_names or ""),
        }
        for p in reg.parties
    ]


class Writer:
    """Adds registrations inside one open transaction (see :meth:`VehicleStore.writer`)."""

    def __init__(self, conn: Connection, country: str):
        self.conn = conn
        self.country = country

    def known_source_keys(self, keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        rows = self.conn.execute(
            select(vehicle_records.c.source_key).where(vehicle_records.c.source_key.in_(keys))
        ).all()
        return {str(r[0]) for r in rows}

    def existing(self, keys: Sequence[str]) -> dict[str, str]:
        """The references of the registrations stored under these source keys."""
        found: dict[str, str] = {}
        for start in range(0, len(keys), 500):
            rows = self.conn.execute(
                select(vehicle_records.c.source_key, vehicle_records.c.reference).where(
                    vehicle_records.c.source_key.in_(keys[start : start + 500])
                )
            ).all()
            found.update({str(k): str(r) for k, r in rows})
        return found

    def add_many(self, registrations: Sequence[Registration]) -> list[tuple[int, str]]:
        """Store registrations (already checked); returns their (id, reference)."""
        if not registrations:
            return []
        now = utcnow()
        references = [new_reference(self.country, "V") for _ in registrations]
        result = self.conn.execute(
            insert(vehicle_records).returning(vehicle_records.c.id, sort_by_parameter_order=True),
            [_vehicle_row(r, ref, now) for r, ref in zip(registrations, references, strict=True)],
        )
        ids = [int(row[0]) for row in result.all()]
        parties = [p for i, r in zip(ids, registrations, strict=True) for p in _party_rows(i, r)]
        if parties:
            self.conn.execute(insert(vehicle_parties), parties)
        return list(zip(ids, references, strict=True))


class VehicleStore(CategoryStore):
    """Registrations, holders over time and deletions of one vehicle register."""

    record_table = vehicle_records
    deletion_table = vehicle_deletions
    migrations = MIGRATIONS
    what = "the vehicle database"
    noun = "vehicle record"
    dependants = ((vehicle_parties, "vehicle_id"),)

    # --- writes ---------------------------------------------------------------------

    @contextmanager
    def writer(self) -> Iterator[Writer]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        try:
            with self.transaction() as conn:
                yield Writer(conn, self.country)
        except IntegrityError as exc:
            raise InvalidRecord(
                f"a vehicle record conflicts with a stored one: {exc.orig}"
            ) from exc
        except SQLAlchemyError as exc:
            raise StorageError(f"the vehicle database refused the write: {exc}") from exc

    def insert(self, registration: Registration) -> tuple[int, str, bool]:
        """Store one registration; returns (id, reference, stored). A known ``source_key``
        is not stored twice: the existing id and reference are returned, stored False."""
        with self.writer() as w:
            if registration.source_key is not None:
                found = w.conn.execute(
                    select(vehicle_records.c.id, vehicle_records.c.reference).where(
                        vehicle_records.c.source_key == registration.source_key
                    )
                ).first()
                if found is not None:
                    return int(found[0]), str(found[1]), False
            record_id, reference = w.add_many([registration])[0]
            return record_id, reference, True

    def bulk_load(
        self,
        chunks: Iterable[tuple[Sequence[tuple[Any, ...]], Sequence[tuple[Any, ...]]]],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> float:
        """Load pre-built rows fast (benchmarks, a national register's first load).

        Each chunk is (vehicle tuples in ``BULK_VEHICLE_COLUMNS`` order, with explicit
        ids above the stored ones; party tuples in ``BULK_PARTY_COLUMNS`` order), plain
        values (dates as ISO text). Rows bypass validation: the caller built them with
        the functions of this package. The indexes are dropped first and built once
        at the end, each chunk is one transaction. Returns the seconds spent building
        the indexes.
        """
        dialect = self.engine.dialect
        mark = "?" if dialect.paramstyle == "qmark" else "%s"

        def statement(table: str, columns: Sequence[str]) -> str:
            names = ", ".join(f'"{c}"' for c in columns)
            return f"INSERT INTO {table} ({names}) VALUES ({', '.join(mark for _ in columns)})"

        add_vehicles = statement("vehicle_records", BULK_VEHICLE_COLUMNS)
        add_parties = statement("vehicle_parties", BULK_PARTY_COLUMNS)
        try:
            with self.transaction() as conn:
                for index in INDEXES:
                    index.drop(conn, checkfirst=True)
            done = 0
            for vehicles, parties in chunks:
                with self.transaction() as conn:
                    conn.exec_driver_sql(add_vehicles, list(vehicles))
                    if parties:
                        conn.exec_driver_sql(add_parties, list(parties))
                done += len(vehicles)
                if progress is not None:
                    progress(done)
        finally:
            started = dt.datetime.now()
            with self.transaction() as conn:
                if dialect.name == "sqlite":
                    # Sorting tens of millions of keys: 1 GiB of page cache and a helper
                    # thread make the index build several times faster than the defaults.
                    conn.exec_driver_sql("PRAGMA cache_size=-1048576")
                    conn.exec_driver_sql("PRAGMA threads=2")
                for index in INDEXES:
                    index.create(conn, checkfirst=True)
                if dialect.name == "postgresql":
                    for table, pk in (("vehicle_records", "id"), ("vehicle_parties", "id")):
                        conn.execute(
                            text(
                                f"SELECT setval(pg_get_serial_sequence('{table}', '{pk}'),"
                                f" (SELECT COALESCE(MAX({pk}), 0) + 1 FROM {table}), false)"
                            )
                        )
            if dialect.name == "sqlite":
                with self.engine.connect() as conn:
                    # Statistics from a sample: a full ANALYZE reads every index.
                    conn.exec_driver_sql("PRAGMA analysis_limit=1000")
                    conn.exec_driver_sql("ANALYZE")
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return (dt.datetime.now() - started).total_seconds()

    # --- lookups --------------------------------------------------------------------

    def ids_by_plate(self, key: str, *, limit: int) -> list[int]:
        """Registrations whose normalised plate is ``key`` (see normalise.plate_key)."""
        return self._ids(
            select(vehicle_records.c.id)
            .where(vehicle_records.c.plate_key == key)
            .order_by(vehicle_records.c.id)
            .limit(limit)
        )

    def ids_by_vin(self, vin: str, *, limit: int) -> list[int]:
        return self._ids(
            select(vehicle_records.c.id)
            .where(vehicle_records.c.vin == vin)
            .order_by(vehicle_records.c.id)
            .limit(limit)
        )

    def ids_by_party(
        self,
        surname_key: str,
        *,
        first_names_key: str | None,
        date_of_birth: dt.date | None,
        on: dt.date,
        limit: int,
    ) -> list[int]:
        """Registrations held or owned on ``on`` by the person with these folded names."""
        p = vehicle_parties.c
        query = select(p.vehicle_id).where(
            p.surname_key == surname_key,
            p.since <= on,
            or_(p.until.is_(None), p.until > on),
        )
        if first_names_key is not None:
            query = query.where(p.first_names_key == first_names_key)
        if date_of_birth is not None:
            query = query.where(p.date_of_birth == date_of_birth)
        return self._ids(query.distinct().order_by(p.vehicle_id).limit(limit))

    def _ids(self, query: Any) -> list[int]:
        try:
            with self.engine.connect() as conn:
                return [int(r[0]) for r in conn.execute(query).all()]
        except SQLAlchemyError as exc:
            raise StorageError(f"the vehicle database failed a lookup: {exc}") from exc

    def vehicles(self, ids: Sequence[int]) -> list[StoredVehicle]:
        """The registrations with every holder and owner period, in the order of ``ids``."""
        if not ids:
            return []
        v, p = vehicle_records.c, vehicle_parties.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(vehicle_records).where(v.id.in_(ids))).all()
            party_rows = conn.execute(
                select(vehicle_parties).where(p.vehicle_id.in_(ids)).order_by(p.since)
            ).all()
        parties: dict[int, list[StoredParty]] = {}
        for r in party_rows:
            parties.setdefault(int(r.vehicle_id), []).append(
                StoredParty(
                    role=Role(r.role),
                    surname=r.surname,
                    first_names=r.first_names,
                    date_of_birth=r.date_of_birth,
                    address=r.address,
                    since=r.since,
                    until=r.until,
                )
            )
        found = {
            int(r.id): StoredVehicle(
                id=int(r.id),
                reference=r.reference,
                plate=r.plate,
                vin=r.vin,
                make=r.make,
                model=r.model,
                vehicle_category=r.vehicle_category,
                first_registration=r.first_registration,
                stolen_since=r.stolen_since,
                exported_on=r.exported_on,
                destroyed_on=r.destroyed_on,
                insurer=r.insurer,
                insurance_valid_until=r.insurance_valid_until,
                provenance=r.provenance,
                synthetic=bool(r.synthetic),
                parties=tuple(parties.get(int(r.id), ())),
            )
            for r in rows
        }
        return [found[i] for i in ids if i in found]

    def max_id(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(select(func.coalesce(func.max(vehicle_records.c.id), 0))).scalar_one()
            )
