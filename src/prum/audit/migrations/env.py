"""Alembic environment of prum.audit: see prum.db.run_migrations."""

from prum.audit.schema import metadata
from prum.db import run_migrations

run_migrations(metadata, version_table="alembic_version_audit")
