"""Alembic environment of prum.node: see prum.db.run_migrations."""

from prum.db import run_migrations
from prum.node.schema import metadata

run_migrations(metadata, version_table="alembic_version_node")
