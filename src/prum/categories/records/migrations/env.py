"""Alembic environment of prum.categories.records: see prum.db.run_migrations."""

from prum.categories.records.schema import metadata
from prum.db import run_migrations

run_migrations(metadata, version_table="alembic_version_records")
