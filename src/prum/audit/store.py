"""Engines, migrations and serialised write transactions for the audit tables.

Appends to one chain must be serialised across threads *and* processes, or two
writers could chain onto the same predecessor. On SQLite every write transaction
starts with ``BEGIN IMMEDIATE`` (the database write lock is taken before the head is
read), so all chains of a database take turns; on PostgreSQL the writer locks only
its chain's ``audit_head`` row with ``SELECT ... FOR UPDATE``, so chains (router
replicas) append side by side. Readers use plain ``BEGIN`` and, in WAL mode, never
block a writer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from prum.db import safe_url
from prum.errors import StorageError

MIGRATIONS = Path(__file__).with_name("migrations")
_WRITE = "prum_audit_write"
# Any fixed 64-bit key: serialises concurrent first-time migrations on PostgreSQL.
_MIGRATION_LOCK = 0x70_72_75_6D_61_75_64  # "prumaud"


def open_engine(url: str) -> Engine:
    """An engine for ``url`` with the audit's transaction control; migrated to head.

    Not ``prum.categories.face.store.make_engine``: the audit needs SQLite's BEGIN under its
    own control (``BEGIN IMMEDIATE`` for writers), and must not depend on the gallery.
    """
    # Alembic is imported here, not at module level: it doubles the start-up time of
    # every process that only appends.
    from alembic import command
    from alembic.config import Config

    try:
        engine = _engine(url)
        with write_transaction(engine) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot open the audit database {safe_url(url)}: {exc}") from exc
    return engine


def _engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # Waiting writers queue on the busy timeout rather than failing at once.
    engine = create_engine(url, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        # WAL: readers (verify, the viewer) never block the appender.
        # FULL: a committed entry survives a crash of the process and of the machine.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()
        # The sqlite3 driver would otherwise BEGIN lazily at the first write, too late.
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One write transaction; on SQLite it holds the database write lock from the start."""
    with engine.connect() as conn:
        conn.execution_options(**{_WRITE: True})
        with conn.begin():
            yield conn


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """One consistent snapshot for reads that span several queries (verification)."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def insert_many(
    conn: Connection,
    insert: str,
    types: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    suffix: str = "",
) -> None:
    """``insert`` (``INSERT INTO t (a, b)``) of ``rows``, then ``suffix`` (an ON CONFLICT
    clause), in one statement whatever the number of rows; ``types`` are the columns'
    PostgreSQL types.

    Straight to the driver: SQLAlchemy's per-row parameter handling cost the router's
    audit writer more than the database did (about 150 rows per search). SQLite gets
    the driver's executemany. PostgreSQL gets COPY for a plain insert (150 rows: 0.3 ms
    of client CPU against 2.5 ms for psycopg's executemany), and for an upsert one array
    per column, unnested by the server, in a statement text that never changes."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        if not suffix:
            table, _, columns = insert.removeprefix("INSERT INTO ").partition(" ")
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            with cursor.copy(f"COPY {table} {columns} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        arrays = ", ".join(f"%s::{kind}[]" for kind in types)
        columns_ = [list(column) for column in zip(*rows, strict=True)]
        conn.exec_driver_sql(f"{insert} SELECT * FROM unnest({arrays}){suffix}", tuple(columns_))
    else:
        marks = ", ".join("?" * len(types))
        conn.exec_driver_sql(f"{insert} VALUES ({marks}){suffix}", list(rows))
