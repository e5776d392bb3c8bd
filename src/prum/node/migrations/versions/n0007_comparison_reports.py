"""Comparison reports (PDF) of examiners' decisions, kept with the case

Revision ID: n0007
Revises: n0006
Create Date: 2026-12-07 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "n0007"
down_revision = "n0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_reports",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("verification_id", sa.BigInteger(), nullable=False),
        sa.Column("search_id", sa.BigInteger(), nullable=False),
        sa.Column("party", sa.String(length=8), nullable=False),
        sa.Column("reference", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("verification_id"),
    )
    op.create_index("ix_node_reports_search_id", "node_reports", ["search_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_node_reports_search_id", table_name="node_reports")
    op.drop_table("node_reports")
