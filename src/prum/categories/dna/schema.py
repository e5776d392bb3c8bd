"""Tables of the national DNA database (the system of record).

Created by the DNA Alembic chain (dna/migrations, version table ``alembic_version_dna``),
which lives beside the face gallery's and the node's in the same database.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    MetaData,
    Text,
)

from prum.categories.schema import deletions_table, record_table

metadata = MetaData()

dna_records = record_table(
    "dna_records",
    metadata,
    Column("identified", Boolean, nullable=False),  # person (True) or trace (False)
    Column("date_of_birth", Date, nullable=True),
    Column("profile", Text, nullable=False),  # normalised JSON (prum.categories.dna.profile)
)

# Every erasure is logged (not what was erased) so the index catches up after a restart.
dna_deletions = deletions_table("dna_deletions", metadata)
