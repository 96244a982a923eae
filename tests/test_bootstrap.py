"""First start: migrations on an empty database, the admin key, `promptkeeper db upgrade`."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect

from promptkeeper.app import create_app
from promptkeeper.db import migrate
from tests.conftest import Backend, make_settings

TABLES = {"projects", "api_keys", "prompts", "prompt_versions", "environments", "releases", "deployments"}


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_server_migrates_an_empty_database_and_generates_a_key(
    empty_backend: Backend, tmp_path: Path
) -> None:
    settings = make_settings(empty_backend, tmp_path, admin_key=None)
    key_file = settings.admin_key_file
    with TestClient(create_app(settings)) as client:
        assert TABLES <= _tables(empty_backend.url)
        secret = key_file.read_text().strip()
        assert secret.startswith("pk_")
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        headers = {"Authorization": f"Bearer {secret}"}
        assert client.get("/v1/environments", headers=headers).status_code == 200
    key_file.unlink()
    with TestClient(create_app(settings)):
        pass  # a database that has a key gets no new one
    assert not key_file.exists()
    engine = create_engine(empty_backend.url)
    assert migrate.current_revision(engine) == migrate.head_revision()
    engine.dispose()


def test_outdated_schema_is_refused_without_auto_migrate(empty_backend: Backend, tmp_path: Path) -> None:
    engine = create_engine(empty_backend.url)
    migrate.upgrade(engine)
    with engine.begin() as connection:  # pretend the database is at an older revision
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'older'")
    engine.dispose()
    settings = make_settings(empty_backend, tmp_path, auto_migrate=False)
    with pytest.raises(migrate.SchemaOutdated, match="promptkeeper db upgrade"):
        with TestClient(create_app(settings)):
            pass


def _cli(*args: str, url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROMPTKEEPER_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "promptkeeper.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_db_upgrade(empty_backend: Backend, tmp_path: Path) -> None:
    first = _cli("db", "upgrade", url=empty_backend.url, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"upgraded from empty to {migrate.head_revision()}" in first.stdout
    assert TABLES <= _tables(empty_backend.url)
    again = _cli("db", "upgrade", url=empty_backend.url, cwd=tmp_path)
    assert again.returncode == 0 and "already at revision" in again.stdout
    current = _cli("db", "current", url=empty_backend.url, cwd=tmp_path)
    assert current.stdout.startswith(migrate.head_revision())


def test_cli_reports_unreachable_database_in_one_line(tmp_path: Path) -> None:
    result = _cli("db", "upgrade", url="postgresql://nobody@127.0.0.1:1/none", cwd=tmp_path)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the database")
    bad = _cli("db", "upgrade", url="mysql://x@y/z", cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.strip().startswith("error: unsupported database URL")
    assert len(bad.stderr.strip().splitlines()) == 1
