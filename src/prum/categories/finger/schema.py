"""Tables of the national fingerprint database (the system of record).

Created by the fingerprint Alembic chain (finger/migrations, version table
``alembic_version_finger``). One record is one enrolled sample (a tenprint card or an
unsolved latent) under one opaque reference; it holds one template per finger.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Date,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)

from prum.categories.schema import deletions_table, record_table
from prum.db import BigId

metadata = MetaData()

finger_records = record_table(
    "finger_records",
    metadata,
    # "tenprint" (searched by TP/TP, LT/TP) or "latent" (unsolved, by TP/UL, LT/UL).
    Column("collection", String(16), nullable=False, index=True),
    Column("date_of_birth", Date, nullable=True),
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
finger_deletions = deletions_table("finger_deletions", metadata)
