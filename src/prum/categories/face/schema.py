"""Tables of the national face gallery (the system of record).

Alembic migrations (gallery/migrations) create these; the definitions here are what
the code queries. SQLite and PostgreSQL both run them.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL wants BIGINT at 30M+.
BigId = BigInteger().with_variant(Integer(), "sqlite")


metadata = MetaData()

gallery_meta = Table(
    "gallery_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

face_records = Table(
    "face_records",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    # Opaque and random: identifies the record, never the person (Art 2 "reference data").
    Column("reference", String(40), nullable=False, unique=True),
    Column("subject_category", String(32), nullable=False),
    Column("date_of_birth", Date, nullable=True),
    # Links records of one person inside the node (never exchanged); used to keep
    # genuine pairs out of the impostor distribution.
    Column("person_key", String(64), nullable=True),
    Column("provenance", String(200), nullable=False),
    Column("synthetic", Boolean, nullable=False, default=False),
    # Idempotency key of bulk enrolment: the same source is never enrolled twice.
    Column("source_key", String(500), nullable=True, unique=True),
    Column("image_sha256", String(64), nullable=True),
    Column("image_format", String(16), nullable=True),
    Column("image", LargeBinary, nullable=True),
    Column("face_box", JSON, nullable=True),
    Column("quality_overall", Float, nullable=True),
    Column("quality", JSON, nullable=True),
    Column("model_id", String(80), nullable=False),
    Column("template", LargeBinary, nullable=False),
    Column("enrolled_at", DateTime(timezone=True), nullable=False),
)

# Every deletion (erasure, retention) is logged so the vector index can catch up after
# a restart and supervisors can see that it happened; the template is gone.
face_deletions = Table(
    "face_deletions",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("record_id", BigInteger, nullable=False),
    Column("reference", String(40), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=False),
)

face_calibration = Table(
    "face_calibration",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("model_id", String(80), nullable=False),
    Column("source", String(200), nullable=False),
    Column("comparisons", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
