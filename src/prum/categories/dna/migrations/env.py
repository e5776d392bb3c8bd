"""Alembic environment of prum.categories.dna: see prum.db.run_migrations."""

from prum.categories.dna.schema import metadata
from prum.db import run_migrations

run_migrations(metadata, version_table="alembic_version_dna")
