"""vehicle records, holders and owners over time, deletions

Revision ID: v0001
Revises:
Create Date: 2026-11-26 13:45:00
"""

import sqlalchemy as sa
from alembic import op

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "v0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vehicle_records",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("reference", sa.String(length=40), nullable=False),
        sa.Column("plate", sa.String(length=20), nullable=False),
        sa.Column("plate_key", sa.String(length=20), nullable=False),
        sa.Column("vin", sa.String(length=17), nullable=False),
        sa.Column("make", sa.String(length=200), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("vehicle_category", sa.String(length=8), nullable=True),
        sa.Column("first_registration", sa.Date(), nullable=True),
        sa.Column("stolen_since", sa.Date(), nullable=True),
        sa.Column("exported_on", sa.Date(), nullable=True),
        sa.Column("destroyed_on", sa.Date(), nullable=True),
        sa.Column("insurer", sa.String(length=200), nullable=True),
        sa.Column("insurance_valid_until", sa.Date(), nullable=True),
        sa.Column("provenance", sa.String(length=200), nullable=False),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.Column("source_key", sa.String(length=200), nullable=True),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "vehicle_parties",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("vehicle_id", sa.BigInteger(), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("surname", sa.String(length=200), nullable=False),
        sa.Column("first_names", sa.String(length=200), nullable=True),
        sa.Column("date_of_birth", sa.Date(), nullable=True),
        sa.Column("address", sa.String(length=200), nullable=True),
        sa.Column("since", sa.Date(), nullable=False),
        sa.Column("until", sa.Date(), nullable=True),
        sa.Column("surname_key", sa.String(length=200), nullable=False),
        sa.Column("first_names_key", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "vehicle_deletions",
        sa.Column("seq", BigId, autoincrement=True, nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_vehicle_records_reference", "vehicle_records", ["reference"], unique=True)
    op.create_index("ix_vehicle_records_source_key", "vehicle_records", ["source_key"], unique=True)
    op.create_index("ix_vehicle_records_plate_key", "vehicle_records", ["plate_key"])
    op.create_index("ix_vehicle_records_vin", "vehicle_records", ["vin"])
    op.create_index("ix_vehicle_parties_vehicle_id", "vehicle_parties", ["vehicle_id"])
    op.create_index(
        "ix_vehicle_parties_holder",
        "vehicle_parties",
        ["surname_key", "first_names_key", "date_of_birth"],
    )


def downgrade() -> None:
    op.drop_table("vehicle_deletions")
    op.drop_table("vehicle_parties")
    op.drop_table("vehicle_records")
