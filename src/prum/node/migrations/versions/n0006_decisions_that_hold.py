"""Decisions that hold: verdict changes countersigned by a second examiner, holds and
refusals in words, cancelled core-data requests, and users' notifications

Revision ID: n0006
Revises: n0005
Create Date: 2026-12-07 16:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "n0006"
down_revision = "n0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("node_verifications") as batch:
        batch.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="effective")
        )
        batch.add_column(sa.Column("countersigned_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("countersigned_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("node_core_requests_out") as batch:
        batch.add_column(sa.Column("hold", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("cancelled_by", sa.String(length=64), nullable=True))
    with op.batch_alter_table("node_core_requests_in") as batch:
        batch.add_column(sa.Column("explanation", sa.Text(), nullable=True))
        batch.add_column(sa.Column("hold_reason", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("hold_note", sa.Text(), nullable=True))
        batch.add_column(sa.Column("cancelled", sa.JSON(), nullable=True))
    op.create_table(
        "node_notifications",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=False),
        sa.Column("link", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_node_notifications_user_read", "node_notifications", ["user", "read_at"])


def downgrade() -> None:
    op.drop_index("ix_node_notifications_user_read", table_name="node_notifications")
    op.drop_table("node_notifications")
    with op.batch_alter_table("node_core_requests_in") as batch:
        for name in ("cancelled", "hold_note", "hold_reason", "explanation"):
            batch.drop_column(name)
    with op.batch_alter_table("node_core_requests_out") as batch:
        for name in ("cancelled_by", "cancelled_at", "hold"):
            batch.drop_column(name)
    with op.batch_alter_table("node_verifications") as batch:
        for name in ("countersigned_at", "countersigned_by", "status"):
            batch.drop_column(name)
