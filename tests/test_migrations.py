"""The migrations build exactly the schema the models declare, on both backends."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from promptkeeper.db.migrate import upgrade
from promptkeeper.tables import metadata
from tests.conftest import Backend


def _significant(diff: Any) -> bool:
    """Differences that matter: tables, columns, indexes, constraints, nullability. Type rendering
    differences between a model's type and the migration's spelling of it are not schema drift
    (both say JSON, or DateTime with a time zone) and autogenerate does not compare them here."""
    kind = diff[0] if isinstance(diff, tuple) else diff[0][0]
    return kind not in ("modify_type", "modify_default", "modify_comment")


# SQLAlchemy cannot reflect SQLite's expression indexes (it warns and skips them), so on SQLite the
# lower(name) index is compared by behaviour instead: tests/test_prompt_names.py.
@pytest.mark.filterwarnings(
    "ignore:Skipped unsupported reflection of expression-based index prompts_project_name_ci"
)
@pytest.mark.filterwarnings(
    "ignore:autogenerate skipping metadata-specified expression-based index 'prompts_project_name_ci'"
)
def test_migrations_match_the_models(empty_backend: Backend) -> None:
    engine = create_engine(empty_backend.url)
    try:
        upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": False})
            diffs = [d for d in compare_metadata(context, metadata) if _significant(d)]
    finally:
        engine.dispose()
    assert diffs == [], diffs


@pytest.mark.parametrize("empty_backend", ["postgresql"], indirect=True)  # a PostgreSQL storage parameter
def test_the_rollup_leaves_room_for_updates_in_place(empty_backend: Backend) -> None:
    """Autogenerate does not compare storage parameters: every ingested outcome updates its unit's
    rollup row, and at PostgreSQL's default fillfactor half of those updates also wrote an index
    entry (migration 0014)."""
    engine = create_engine(empty_backend.url)
    try:
        upgrade(engine)
        with engine.connect() as connection:
            options = connection.execute(
                text("SELECT reloptions FROM pg_class WHERE oid = 'experiment_units'::regclass")
            ).scalar_one()
    finally:
        engine.dispose()
    assert options == ["fillfactor=70"]
