"""The national face gallery: records, deletion log, calibration, metadata.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "gallery_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "face_records",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("reference", sa.String(40), nullable=False, unique=True),
        sa.Column("subject_category", sa.String(32), nullable=False),
        sa.Column("date_of_birth", sa.Date, nullable=True),
        sa.Column("person_key", sa.String(64), nullable=True),
        sa.Column("provenance", sa.String(200), nullable=False),
        sa.Column("synthetic", sa.Boolean, nullable=False),
        sa.Column("source_key", sa.String(500), nullable=True, unique=True),
        sa.Column("image_sha256", sa.String(64), nullable=True),
        sa.Column("image_format", sa.String(16), nullable=True),
        sa.Column("image", sa.LargeBinary, nullable=True),
        sa.Column("face_box", sa.JSON, nullable=True),
        sa.Column("quality_overall", sa.Float, nullable=True),
        sa.Column("quality", sa.JSON, nullable=True),
        sa.Column("model_id", sa.String(80), nullable=False),
        sa.Column("template", sa.LargeBinary, nullable=False),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "face_deletions",
        sa.Column("seq", BigId, primary_key=True, autoincrement=True),
        sa.Column("record_id", sa.BigInteger, nullable=False),
        sa.Column("reference", sa.String(40), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "face_calibration",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.String(80), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("comparisons", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in ("face_calibration", "face_deletions", "face_records", "gallery_meta"):
        op.drop_table(table)
