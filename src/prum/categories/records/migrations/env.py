"""Alembic environment of the police-records tables (own version table)."""

from alembic import context

from prum.categories.records.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    version_table="alembic_version_records",
)
with context.begin_transaction():
    context.run_migrations()
