"""Tables of the national fingerprint database (the system of record).

Created by the fingerprint Alembic chain (finger/migrations, version table
``alembic_version_finger``). One record is one enrolled sample (a tenprint card or an
unsolved latent) under one opaque reference; it holds one template per finger.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)

BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

finger_records = Table(
    "finger_records",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    # Opaque and random ("AT-F-..."): names the sample, never the person.
    Column("reference", String(40), nullable=False, unique=True),
    # "tenprint" (searched by TP/TP, LT/TP) or "latent" (unsolved, by TP/UL, LT/UL).
    Column("collection", String(16), nullable=False, index=True),
    Column("subject_category", String(32), nullable=False),
    Column("date_of_birth", Date, nullable=True),
    Column("provenance", String(200), nullable=False),
    Column("synthetic", Boolean, nullable=False, default=False),
    Column("source_key", String(500), nullable=True, unique=True),
    Column("enrolled_at", DateTime(timezone=True), nullable=False),
)

finger_templates = Table(
    "finger_templates",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "record_id",
        BigId,
        ForeignKey("finger_records.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("position", Integer, nullable=False),  # ANSI/NIST-ITL finger position, 0 unknown
    Column("template", LargeBinary, nullable=False),  # prum.categories.finger.minutiae.Template
    Column("image", LargeBinary, nullable=True),  # PNG as enrolled, for verification
)

# Every erasure is logged (not what was erased) so the index catches up after a restart.
finger_deletions = Table(
    "finger_deletions",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("record_id", BigInteger, nullable=False),
    Column("reference", String(40), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=False),
)
