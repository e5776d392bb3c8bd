"""Every Alembic chain builds exactly the tables its module declares (SQLite and
PostgreSQL), so a deployment upgraded by migrations equals a fresh one."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData

from prum.db import make_engine, upgrade

CHAINS = [
    "categories.face",
    "categories.dna",
    "categories.finger",
    "categories.vehicle",
    "categories.records",
    "node",
    "audit",
]


@pytest.mark.parametrize("package", CHAINS)
def test_migrations_build_exactly_the_declared_schema(package: str, database_url: str) -> None:
    schema = importlib.import_module(f"prum.{package}.schema")
    metadata: MetaData = schema.metadata
    migrations = Path(schema.__file__).with_name("migrations")
    engine = make_engine(database_url)
    try:
        upgrade(engine, migrations)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn)
            differences = [
                d
                for d in compare_metadata(context, metadata)
                # Other chains' tables share the database: only this module's count.
                if not (d[0] == "remove_table" and d[1].name not in metadata.tables)
                and not (d[0] == "remove_index" and d[1].table.name not in metadata.tables)
            ]
        assert differences == []
    finally:
        engine.dispose()
