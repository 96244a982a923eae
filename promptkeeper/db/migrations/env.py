"""Alembic environment: runs on the connection `promptkeeper.db.migrate` hands over.

`render_as_batch=True` lets the same migration scripts alter tables on SQLite (copy-and-move).
"""

from alembic import context

from promptkeeper.db.models import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - the alembic CLI without our wrapper
    raise RuntimeError("run migrations with `promptkeeper db upgrade`, which provides the connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
