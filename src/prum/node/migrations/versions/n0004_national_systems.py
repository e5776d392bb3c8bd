"""The national-systems interface: system accounts, national records, change sequence

Revision ID: n0004
Revises: n0003
Create Date: 2026-12-07 13:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "n0004"
down_revision = "n0003"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "node_system_accounts",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
        sa.UniqueConstraint("token_sha256"),
    )
    op.create_table(
        "node_national_records",
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("national_id", sa.String(length=128), nullable=False),
        sa.Column("reference", sa.String(length=40), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("record_hash", sa.String(length=64), nullable=False),
        sa.Column("origin_country", sa.String(length=2), nullable=True),
        sa.Column("retention_until", sa.Date(), nullable=True),
        sa.Column("system", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("category", "national_id"),
        sa.UniqueConstraint("reference"),
    )
    op.create_table(
        "node_record_changes",
        sa.Column("seq", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("national_id", sa.String(length=128), nullable=False),
        sa.Column("operation", sa.String(length=16), nullable=False),
        sa.Column("reference", sa.String(length=40), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("system", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )


def downgrade() -> None:
    op.drop_table("node_record_changes")
    op.drop_table("node_national_records")
    op.drop_table("node_system_accounts")
