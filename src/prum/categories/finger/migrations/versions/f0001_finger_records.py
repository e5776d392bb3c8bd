"""finger records

Revision ID: f0001
Revises:
Create Date: 2026-11-26 14:00:00
"""

import sqlalchemy as sa
from alembic import op

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "f0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "finger_records",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("reference", sa.String(length=40), nullable=False),
        sa.Column("collection", sa.String(length=16), nullable=False),
        sa.Column("subject_category", sa.String(length=32), nullable=False),
        sa.Column("date_of_birth", sa.Date(), nullable=True),
        sa.Column("provenance", sa.String(length=200), nullable=False),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.Column("source_key", sa.String(length=500), nullable=True),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("reference"),
        sa.UniqueConstraint("source_key"),
    )
    op.create_index("ix_finger_records_collection", "finger_records", ["collection"])
    op.create_table(
        "finger_templates",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("record_id", BigId, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("template", sa.LargeBinary(), nullable=False),
        sa.Column("image", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(["record_id"], ["finger_records.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_finger_templates_record_id", "finger_templates", ["record_id"])
    op.create_table(
        "finger_deletions",
        sa.Column("seq", BigId, autoincrement=True, nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )


def downgrade() -> None:
    op.drop_table("finger_deletions")
    op.drop_index("ix_finger_templates_record_id", "finger_templates")
    op.drop_table("finger_templates")
    op.drop_index("ix_finger_records_collection", "finger_records")
    op.drop_table("finger_records")
