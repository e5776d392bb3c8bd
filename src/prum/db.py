"""Database plumbing shared by every store of a node: engines and migrations.

SQLite (WAL) is the embedded default and PostgreSQL the deployment choice; each store
(gallery, node workflow, audit, DNA, fingerprints, vehicles, police records) keeps its
own Alembic chain with its own version table, so they can share one database.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import BigInteger, Engine, Integer, MetaData, create_engine, event, make_url
from sqlalchemy.exc import SQLAlchemyError

from prum.errors import StorageError

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL wants BIGINT at 30M+.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            # WAL: readers never block the writer; FULL: a committed enrolment
            # survives a crash of the process and of the machine.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def upgrade(engine: Engine, migrations: Path) -> None:
    """Run an Alembic chain to its newest revision (idempotent)."""
    config = Config()
    config.set_main_option("script_location", str(migrations))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def run_migrations(metadata: MetaData, version_table: str = "alembic_version") -> None:
    """The body of every store's Alembic ``env.py``: migrate on the connection that
    :func:`upgrade` hands over, with the store's own version table."""
    from alembic import context

    context.configure(
        connection=context.config.attributes["connection"],
        target_metadata=metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        version_table=version_table,
    )
    with context.begin_transaction():
        context.run_migrations()


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown as a placeholder, never echoed
        return "<unparsable database URL>"


def open_store(url: str, migrations: Path, what: str) -> Engine:
    """An engine on ``url`` with ``migrations`` applied; a StorageError naming ``what``
    (for example "the DNA database") when the database cannot be opened."""
    try:
        engine = make_engine(url)
        upgrade(engine, migrations)
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot open {what} {safe_url(url)}: {exc}") from exc
    return engine


def new_reference(country: str, letter: str) -> str:
    """An opaque reference number: country, category letter, 96 random bits.

    Random rather than sequential so that it reveals nothing about the person, the
    enrolment order or the size of the database.
    """
    return f"{country}-{letter}-{secrets.token_hex(12).upper()}"
