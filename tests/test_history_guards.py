"""The history is append-only in the database itself: DELETE of versions, deployments and audit
entries is refused on both backends, whoever connects (issue 19.5).

The statements run on a plain engine, as an operator's `psql` or a buggy script would, after the
rows were made through the API. The test suite's own cleanup (on PostgreSQL a DELETE with the
session's triggers off, as a superuser may, else TRUNCATE; a fresh file on SQLite) must keep
working: every test after these one starts from empty tables.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError

from tests.conftest import Backend
from tests.helpers import add_version, create_prompt, deploy

STATEMENTS = {
    "deployment": "DELETE FROM deployments",
    "audit entry": "DELETE FROM audit_log",
    "deployed version": "DELETE FROM prompt_versions WHERE number = 1",
    "never-deployed version": "DELETE FROM prompt_versions WHERE number = 2",
    "prompt (cascades to its history)": "DELETE FROM prompts",
}
COUNTS = ("deployments", "audit_log", "prompt_versions", "prompts")


@pytest.fixture
def history(client: TestClient, backend: Backend) -> Iterator[Engine]:
    create_prompt(client, "greet", "Hello {{ name }}")
    add_version(client, "greet", "Hi {{ name }}")
    deploy(client, "greet", "staging", 1)
    engine = create_engine(backend.url)
    yield engine
    engine.dispose()


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {t: int(connection.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in COUNTS}


@pytest.mark.parametrize("what", list(STATEMENTS))
def test_history_rows_cannot_be_deleted(history: Engine, what: str) -> None:
    before = _counts(history)
    assert before["deployments"] == 1 and before["prompt_versions"] == 2 and before["audit_log"] >= 3
    with pytest.raises(DatabaseError, match="never deleted"):
        with history.begin() as connection:
            connection.execute(text(STATEMENTS[what]))
    assert _counts(history) == before


def test_updates_stay_refused_and_the_api_keeps_working(client: TestClient, history: Engine) -> None:
    """The new guards sit beside the old no-UPDATE ones, and normal writes still append."""
    with pytest.raises(DatabaseError, match="append-only"):
        with history.begin() as connection:
            connection.execute(text("UPDATE deployments SET reason = 'x'"))
    deploy(client, "greet", "staging", 2)
    assert _counts(history)["deployments"] == 2
