"""Several hash chains in one audit database: a ``chain`` column, "main" for what exists.

audit_head becomes one row per chain (keyed by chain, no more id), audit_entries is
keyed by (chain, seq), and audit_checkpoints is indexed by (chain, seq). Existing rows
become chain "main", whose signed bytes are unchanged (prum.audit.chain), so old
checkpoints and anchors still verify.

SQLite cannot change a primary key in place: batch mode rebuilds audit_head and
audit_entries (copy, drop, rename) inside the migration's transaction. PostgreSQL
alters them in place.

Revision ID: a0002
Revises: a0001
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from prum.errors import InvalidAuditSetup

revision = "a0002"
down_revision = "a0001"
branch_labels = None
depends_on = None

MAIN = "main"


def _chain(*, primary_key: bool = False) -> sa.Column[str]:
    # The server default fills the rows that exist: they all belong to "main".
    return sa.Column(
        "chain", sa.String(32), primary_key=primary_key, nullable=False, server_default=MAIN
    )


def _existing(table: str) -> sa.Table:
    """``table`` as it is, with its primary key named as PostgreSQL names it.

    Batch mode drops a primary key by name, and SQLite reflects it unnamed; given
    this copy, SQLite's rebuild and PostgreSQL's ALTER TABLE run the same operations.
    """
    existing = sa.Table(table, sa.MetaData(), autoload_with=op.get_bind())
    existing.primary_key.name = f"{table}_pkey"
    return existing


def upgrade() -> None:
    with op.batch_alter_table("audit_head", copy_from=_existing("audit_head")) as batch:
        batch.add_column(_chain())
        batch.drop_constraint("audit_head_pkey", type_="primary")
        batch.drop_column("id")
        batch.create_primary_key("audit_head_pkey", ["chain"])
    with op.batch_alter_table("audit_entries", copy_from=_existing("audit_entries")) as batch:
        batch.add_column(_chain())
        batch.drop_constraint("audit_entries_pkey", type_="primary")
        batch.create_primary_key("audit_entries_pkey", ["chain", "seq"])
    # ADD COLUMN with a default needs no rebuild, on SQLite either.
    op.add_column("audit_checkpoints", _chain())
    op.drop_index("ix_audit_checkpoints_seq", table_name="audit_checkpoints")
    op.create_index("ix_audit_checkpoints_chain_seq", "audit_checkpoints", ["chain", "seq"])


def downgrade() -> None:
    # Back to one chain per database: only possible while "main" is the only chain.
    bind = op.get_bind()
    for table in ("audit_head", "audit_entries", "audit_checkpoints"):
        others = bind.execute(
            sa.text(f"SELECT COUNT(*) FROM {table} WHERE chain <> :main"), {"main": MAIN}
        ).scalar_one()
        if others:
            raise InvalidAuditSetup(
                f"cannot downgrade the audit log below a0002: {table} holds {others} rows "
                "of chains other than 'main', which a single-chain log cannot keep"
            )
    op.drop_index("ix_audit_checkpoints_chain_seq", table_name="audit_checkpoints")
    op.create_index("ix_audit_checkpoints_seq", "audit_checkpoints", ["seq"])
    with op.batch_alter_table("audit_checkpoints") as batch:
        batch.drop_column("chain")
    with op.batch_alter_table("audit_entries", copy_from=_existing("audit_entries")) as batch:
        batch.drop_constraint("audit_entries_pkey", type_="primary")
        batch.create_primary_key("audit_entries_pkey", ["seq"])
        batch.drop_column("chain")
    with op.batch_alter_table("audit_head", copy_from=_existing("audit_head")) as batch:
        # The one row of a single-chain log is id 1.
        batch.add_column(sa.Column("id", sa.Integer, nullable=False, server_default="1"))
        batch.drop_constraint("audit_head_pkey", type_="primary")
        batch.create_primary_key("audit_head_pkey", ["id"])
        batch.drop_column("chain")
    with op.batch_alter_table("audit_head") as batch:
        batch.alter_column("id", existing_type=sa.Integer, server_default=None)
