"""References sent to other parties as candidates, and changes by reference
(withdrawal notices on erasure)

Revision ID: n0005
Revises: n0004
Create Date: 2026-12-07 14:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "n0005"
down_revision = "n0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_references_sent",
        sa.Column("reference", sa.String(length=40), nullable=False),
        sa.Column("party", sa.String(length=8), nullable=False),
        sa.Column("first_sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("reference", "party"),
    )
    op.create_index(
        "ix_node_record_changes_reference", "node_record_changes", ["reference"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_node_record_changes_reference", table_name="node_record_changes")
    op.drop_table("node_references_sent")
