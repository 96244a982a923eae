"""Schema migrations (Alembic) driven from code: `promptkeeper db upgrade` and server start-up.

Several server instances may start at once against an empty PostgreSQL; a transaction-scoped
advisory lock makes the first one migrate while the others wait and then find nothing to do.
"""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

MIGRATIONS = Path(__file__).parent / "migrations"
_ADVISORY_LOCK_ID = 0x504B_4D49  # "PKMI"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def head_revision() -> str:
    """The newest migration this code ships, read once per process: reading it loads every
    migration script (~10 ms of CPU), and every app start asks (the suite starts one per test)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate to `revision`.

    On SQLite, foreign keys are off while migrating (and checked afterwards): a batch migration
    rebuilds a table by DROP and RENAME, and dropping a referenced table with foreign keys on would
    cascade-delete the rows that reference it. The pragma only takes effect outside a transaction.
    """
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        raw = connection.connection.dbapi_connection if sqlite else None
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                if not sqlite:
                    connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
                command.upgrade(alembic_config(connection), revision)
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left broken foreign keys: {broken[:5]}")
        finally:
            if raw is not None:
                raw.execute("PRAGMA foreign_keys=ON")


class SchemaOutdated(RuntimeError):
    pass


def ensure_schema(engine: Engine, *, auto_migrate: bool) -> None:
    """Migrate an empty database; migrate an outdated one only when `auto_migrate` allows it."""
    current = current_revision(engine)
    if current == head_revision():
        return
    if current is None or auto_migrate:
        upgrade(engine)
        return
    raise SchemaOutdated(
        f"database schema is at revision {current}, this release needs {head_revision()}: "
        "run `promptkeeper db upgrade`"
    )
