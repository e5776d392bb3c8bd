"""police records

Revision ID: r0001
Revises:
Create Date: 2026-11-26 14:00:00
"""

import sqlalchemy as sa
from alembic import op

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "r0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "records_persons",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("reference", sa.String(length=40), nullable=False),
        sa.Column("subject_category", sa.String(length=32), nullable=False),
        sa.Column("person", sa.Text(), nullable=False),
        sa.Column("case_data", sa.Text(), nullable=False),
        sa.Column("birth_year", sa.Integer(), nullable=True),
        sa.Column("date_of_birth", sa.Date(), nullable=True),
        sa.Column("provenance", sa.String(length=200), nullable=False),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.Column("source_key", sa.String(length=500), nullable=True),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("reference"),
        sa.UniqueConstraint("source_key"),
    )
    op.create_table(
        "records_encodings",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("entry", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("encoding", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_records_encodings_record", "records_encodings", ["record_id"])
    op.create_index("ix_records_encodings_key", "records_encodings", ["key_id", "record_id"])
    op.create_table(
        "records_deletions",
        sa.Column("seq", BigId, autoincrement=True, nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )


def downgrade() -> None:
    op.drop_table("records_deletions")
    op.drop_index("ix_records_encodings_key", table_name="records_encodings")
    op.drop_index("ix_records_encodings_record", table_name="records_encodings")
    op.drop_table("records_encodings")
    op.drop_table("records_persons")
