"""Tables of the national DNA database (the system of record).

Created by the DNA Alembic chain (dna/migrations, version table ``alembic_version_dna``),
which lives beside the face gallery's and the node's in the same database.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

dna_records = Table(
    "dna_records",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    # Opaque and random ("AT-D-..."): names the profile, never the person.
    Column("reference", String(40), nullable=False, unique=True),
    Column("subject_category", String(32), nullable=False),
    Column("identified", Boolean, nullable=False),  # person (True) or trace (False)
    Column("date_of_birth", Date, nullable=True),
    Column("provenance", String(200), nullable=False),
    Column("synthetic", Boolean, nullable=False, default=False),
    Column("source_key", String(500), nullable=True, unique=True),
    Column("profile", Text, nullable=False),  # normalised JSON (prum.categories.dna.profile)
    Column("enrolled_at", DateTime(timezone=True), nullable=False),
)

# Every erasure is logged (not what was erased) so the index catches up after a restart.
dna_deletions = Table(
    "dna_deletions",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("record_id", BigInteger, nullable=False),
    Column("reference", String(40), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=False),
)
