"""web sessions of the examiner workbench

Revision ID: n0002
Revises: n0001
Create Date: 2026-11-26 13:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "n0002"
down_revision = "n0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_web_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("user", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id_hash"),
    )
    op.create_index("ix_node_web_sessions_user", "node_web_sessions", ["user"])


def downgrade() -> None:
    op.drop_index("ix_node_web_sessions_user", table_name="node_web_sessions")
    op.drop_table("node_web_sessions")
