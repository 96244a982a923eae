"""Alembic environment: runs on the connection `promptkeeper.db.migrate` hands over.

`render_as_batch=True` lets the same migration scripts alter tables on SQLite (copy-and-move).
Upgrades need no model metadata; a caller that compares the schema with the models hands it over
as `config.attributes["target_metadata"]` (storage does not import the domains' models).
"""

from alembic import context

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - the alembic CLI without our wrapper
    raise RuntimeError("run migrations with `promptkeeper db upgrade`, which provides the connection")

context.configure(
    connection=connection,
    target_metadata=config.attributes.get("target_metadata"),
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
