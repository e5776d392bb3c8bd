"""Tables of the national vehicle register (the system of record).

Created by the vehicle Alembic chain (vehicle/migrations, version table
``alembic_version_vehicle``), beside the other stores in the same database. Every
index is a named :class:`Index` (unique ones too), so a bulk load can drop them and
build them once at the end.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    MetaData,
    String,
    Table,
)

from prum.db import BigId

metadata = MetaData()

vehicle_records = Table(
    "vehicle_records",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    # Opaque and random ("AT-V-..."): names the registration, not the vehicle or holder.
    Column("reference", String(40), nullable=False),
    Column("plate", String(20), nullable=False),  # A, as registered
    Column("plate_key", String(20), nullable=False),  # A, normalised (normalise.plate_key)
    Column("vin", String(17), nullable=False),  # E (vin.validate_vin)
    Column("make", String(200), nullable=True),  # D.1
    Column("model", String(200), nullable=True),  # D.3
    Column("vehicle_category", String(8), nullable=True),  # J
    Column("first_registration", Date, nullable=True),  # B
    Column("stolen_since", Date, nullable=True),
    Column("exported_on", Date, nullable=True),
    Column("destroyed_on", Date, nullable=True),
    Column("insurer", String(200), nullable=True),
    Column("insurance_valid_until", Date, nullable=True),
    Column("provenance", String(200), nullable=False),
    Column("synthetic", Boolean, nullable=False, default=False),
    Column("source_key", String(200), nullable=True),
    Column("enrolled_at", DateTime(timezone=True), nullable=False),
)

# Holders (C.1) and owners (C.2), each for a period [since, until).
vehicle_parties = Table(
    "vehicle_parties",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("vehicle_id", BigInteger, nullable=False),
    Column("role", String(8), nullable=False),  # record.Role
    Column("surname", String(200), nullable=False),  # C.1.1 / C.2.1
    Column("first_names", String(200), nullable=True),  # C.1.2 / C.2.2
    Column("date_of_birth", Date, nullable=True),
    Column("address", String(200), nullable=True),  # C.1.3 / C.2.3
    Column("since", Date, nullable=False),
    Column("until", Date, nullable=True),
    Column("surname_key", String(200), nullable=False),  # normalise.name_key
    Column("first_names_key", String(200), nullable=False),  # "" when not known
)

# Every erasure is logged (not what was erased).
vehicle_deletions = Table(
    "vehicle_deletions",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("record_id", BigInteger, nullable=False),
    Column("reference", String(40), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=False),
)

INDEXES = (
    Index("ix_vehicle_records_reference", vehicle_records.c.reference, unique=True),
    Index("ix_vehicle_records_source_key", vehicle_records.c.source_key, unique=True),
    Index("ix_vehicle_records_plate_key", vehicle_records.c.plate_key),
    Index("ix_vehicle_records_vin", vehicle_records.c.vin),
    Index("ix_vehicle_parties_vehicle_id", vehicle_parties.c.vehicle_id),
    Index(
        "ix_vehicle_parties_holder",
        vehicle_parties.c.surname_key,
        vehicle_parties.c.first_names_key,
        vehicle_parties.c.date_of_birth,
    ),
)
