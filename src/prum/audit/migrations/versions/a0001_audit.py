"""Audit log (hash chain, checkpoints, anchors) and statistics counters.

Revision ID: a0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "a0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
GENESIS = "0" * 64


def upgrade() -> None:
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS}])
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("recorded_at", sa.String(27), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("requesting_party", sa.String(16), nullable=True),
        sa.Column("requested_party", sa.String(16), nullable=True),
        sa.Column("category", sa.String(16), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("case_reference", sa.String(200), nullable=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_entries_recorded_at", "audit_entries", ["recorded_at"])
    op.create_index("ix_audit_entries_kind", "audit_entries", ["kind"])
    op.create_index("ix_audit_entries_case_reference", "audit_entries", ["case_reference"])
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("signed_at", sa.String(27), nullable=False),
        sa.Column("party", sa.String(16), nullable=False),
        sa.Column("signature", sa.Text, nullable=True),
    )
    op.create_index("ix_audit_checkpoints_seq", "audit_checkpoints", ["seq"])
    op.create_table(
        "audit_statistics",
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("party", sa.String(16), primary_key=True),
        sa.Column("category", sa.String(16), primary_key=True),
        sa.Column("purpose", sa.String(24), primary_key=True),
        sa.Column("counter", sa.String(40), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("audit_statistics", "audit_checkpoints", "audit_entries", "audit_head"):
        op.drop_table(table)
