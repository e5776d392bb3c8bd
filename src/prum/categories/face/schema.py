"""Tables of the national face gallery (the system of record).

Alembic migrations (gallery/migrations) create these; the definitions here are what
the code queries. SQLite and PostgreSQL both run them.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from prum.categories.schema import deletions_table, record_table
from prum.db import BigId

metadata = MetaData()

gallery_meta = Table(
    "gallery_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

face_records = record_table(
    "face_records",
    metadata,
    Column("date_of_birth", Date, nullable=True),
    # Links records of one person inside the node (never exchanged); used to keep
    # genuine pairs out of the impostor distribution.
    Column("person_key", String(64), nullable=True),
    Column("image_sha256", String(64), nullable=True),
    Column("image_format", String(16), nullable=True),
    Column("image", LargeBinary, nullable=True),
    Column("face_box", JSON, nullable=True),
    Column("quality_overall", Float, nullable=True),
    Column("quality", JSON, nullable=True),
    Column("model_id", String(80), nullable=False),
    Column("template", LargeBinary, nullable=False),
)

# Every deletion (erasure, retention) is logged so the vector index can catch up after
# a restart and supervisors can see that it happened; the template is gone.
face_deletions = deletions_table("face_deletions", metadata)

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
