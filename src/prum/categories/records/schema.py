"""Tables of the national police-records index (the system of record).

Created by the records Alembic chain (records/migrations, version table
``alembic_version_records``), beside the other stores of the node in one database.
The clear record stays here (it is national data, needed for core data after a
confirmed match); only its pseudonymised encodings are ever compared.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

records_persons = Table(
    "records_persons",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    # Opaque and random ("AT-R-..."): names the record, never the person.
    Column("reference", String(40), nullable=False, unique=True),
    Column("subject_category", String(32), nullable=False),
    Column("person", Text, nullable=False),  # clear JSON (prum.categories.records.person)
    Column("case_data", Text, nullable=False),  # offence, case number, authority (JSON)
    Column("birth_year", Integer, nullable=True),  # for the exposure rules on age
    Column("date_of_birth", Date, nullable=True),  # when complete
    Column("provenance", String(200), nullable=False),
    Column("synthetic", Boolean, nullable=False, default=False),
    Column("source_key", String(500), nullable=True, unique=True),
    Column("enrolled_at", DateTime(timezone=True), nullable=False),
)

# One row per name of a person (entry 0 the name, 1.. the aliases) and federation key:
# during a key rotation both keys' encodings are kept until the switch.
records_encodings = Table(
    "records_encodings",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("record_id", BigInteger, nullable=False),
    Column("entry", Integer, nullable=False),
    Column("key_id", String(40), nullable=False),
    Column("encoding", Text, nullable=False),  # JSON of prum.federation.messages.RecordsQuery
    Index("ix_records_encodings_record", "record_id"),
    Index("ix_records_encodings_key", "key_id", "record_id"),
)

# Every erasure is logged (not what was erased).
records_deletions = Table(
    "records_deletions",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("record_id", BigInteger, nullable=False),
    Column("reference", String(40), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=False),
)
