"""Alembic environment of prum.categories.face: see prum.db.run_migrations."""

from prum.categories.face.schema import metadata
from prum.db import run_migrations

run_migrations(metadata)
