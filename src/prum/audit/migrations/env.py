"""Alembic environment of the audit tables: runs on the connection handed over by
prum.audit.store, with its own version table so it can share a database."""

from alembic import context

from prum.audit.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    version_table="alembic_version_audit",
)
with context.begin_transaction():
    context.run_migrations()
