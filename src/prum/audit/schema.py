"""Tables of the audit log and of the statistics.

The audit Alembic environment (audit/migrations, version table
``alembic_version_audit``) creates them, so they can share a database with the
gallery. Times are stored as fixed-width UTC text (``events.format_time``): it sorts
like time on every back end and round-trips byte for byte, which a hash chain needs.

One database holds several independent hash chains, told apart by ``chain``: router
replicas share one audit store and each writes its own. A node has only ``main``.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, MetaData, String, Table, Text

from prum.db import BigId

MAIN_CHAIN = "main"  # the chain of a log opened without a name, and of every older log

metadata = MetaData()


def _chain(*, primary_key: bool = False) -> Column[str]:
    return Column(
        "chain",
        String(32),
        primary_key=primary_key,
        nullable=False,
        default=MAIN_CHAIN,
        server_default=MAIN_CHAIN,
    )


# One row per chain: its last seq and hash. Appends lock their chain's row (FOR UPDATE
# on PostgreSQL), so seq is gapless under concurrency without one chain waiting for
# another, and a deleted tail leaves a gap instead of being healed.
audit_head = Table(
    "audit_head",
    metadata,
    _chain(primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_entries = Table(
    "audit_entries",
    metadata,
    # Primary key (chain, seq): each chain numbers its entries 1, 2, 3 ...
    _chain(primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("recorded_at", String(27), nullable=False, index=True),
    # Copies of body fields for the log viewer's filters; verify() checks they agree.
    Column("kind", String(32), nullable=False, index=True),
    Column("requesting_party", String(16), nullable=True),
    Column("requested_party", String(16), nullable=True),
    Column("category", String(16), nullable=True),
    Column("outcome", String(16), nullable=True),
    Column("case_reference", String(200), nullable=True, index=True),
    # The canonical JSON {"event", "recorded_at", "seq"} exactly as hashed.
    Column("body", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# Signed checkpoints (kind "checkpoint") and retention anchors (kind "anchor").
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _chain(),
    Column("kind", String(10), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("signed_at", String(27), nullable=False),
    Column("party", String(16), nullable=False),
    Column("signature", Text, nullable=True),  # base64; NULL when the log has no signer
    Index("ix_audit_checkpoints_chain_seq", "chain", "seq"),
)

# Counters without personal data; "none" where a dimension does not apply.
audit_statistics = Table(
    "audit_statistics",
    metadata,
    Column("month", String(7), primary_key=True),  # YYYY-MM (UTC)
    Column("party", String(16), primary_key=True),
    Column("category", String(16), primary_key=True),
    Column("purpose", String(24), primary_key=True),
    Column("counter", String(40), primary_key=True),
    Column("value", BigInteger, nullable=False),
)
