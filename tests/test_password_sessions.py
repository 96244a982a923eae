"""A password change ends the user's other sessions; an operator's reset ends all of them.

Whoever learnt the old password and signed in with it must not keep a working session after its
owner changed it (or an operator reset it). Two real login sessions per test, both backends.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from promptkeeper.app import create_app
from promptkeeper.cli import app as cli_app
from promptkeeper.config import Settings
from tests.conftest import ADMIN_KEY
from tests.helpers import bearer, error_of

OLD, NEW = "the old password, leaked", "a brand new passphrase"


@pytest.fixture
def uncached(settings: Settings) -> Iterator[TestClient]:
    """No in-process memory of credentials: a reset made by another process shows at once."""
    with TestClient(create_app(settings.model_copy(update={"auth_cache_ttl": 0}))) as client:
        yield client


def _login(client: TestClient, password: str) -> str:
    response = client.post("/v1/auth/login", json={"email": "ann@example.com", "password": password})
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def _me(client: TestClient, token: str) -> int:
    return client.get("/v1/auth/me", headers=bearer(token)).status_code


def _ann(client: TestClient) -> None:
    created = client.post(
        "/v1/users",
        json={"email": "ann@example.com", "role": "editor", "password": OLD},
        headers=bearer(ADMIN_KEY),
    )
    assert created.status_code == 201, created.text


def test_changing_the_password_ends_the_other_sessions(client: TestClient) -> None:
    _ann(client)
    mine, theirs = _login(client, OLD), _login(client, OLD)
    assert _me(client, mine) == _me(client, theirs) == 200  # both used: both remembered
    changed = client.post(
        "/v1/auth/password",
        json={"current_password": OLD, "new_password": NEW},
        headers=bearer(mine),
    )
    assert changed.status_code == 204, changed.text
    assert _me(client, theirs) == 401
    assert "revoked" in error_of(client.get("/v1/auth/me", headers=bearer(theirs)))["message"]
    assert _me(client, mine) == 200  # the session that changed it goes on
    assert (
        client.post("/v1/auth/login", json={"email": "ann@example.com", "password": OLD}).status_code == 401
    )
    assert _me(client, _login(client, NEW)) == 200
    actions = [e["action"] for e in client.get("/v1/audit", headers=bearer(ADMIN_KEY)).json()["items"]]
    assert "user.password_changed" in actions


def test_a_wrong_current_password_ends_nothing(client: TestClient) -> None:
    _ann(client)
    mine, theirs = _login(client, OLD), _login(client, OLD)
    refused = client.post(
        "/v1/auth/password",
        json={"current_password": "wrong guess!", "new_password": NEW},
        headers=bearer(mine),
    )
    assert refused.status_code == 401
    assert _me(client, theirs) == _me(client, mine) == 200


def test_an_operator_reset_ends_every_session(uncached: TestClient, settings: Settings) -> None:
    _ann(uncached)
    first, second = _login(uncached, OLD), _login(uncached, OLD)
    assert _me(uncached, first) == _me(uncached, second) == 200
    env = {"PROMPTKEEPER_DATABASE_URL": settings.database_url}
    same = CliRunner().invoke(
        cli_app,
        ["users", "add", "ann@example.com", "--project", "default", "--role", "editor", "--password-stdin"],
        input=OLD + "\n",
        env=env,
    )
    assert same.exit_code == 0, same.output
    assert _me(uncached, first) == 200  # the same password again (a role change): sessions stay
    reset = CliRunner().invoke(
        cli_app,
        ["users", "add", "ann@example.com", "--project", "default", "--role", "editor", "--password-stdin"],
        input=NEW + "\n",
        env=env,
    )
    assert reset.exit_code == 0, reset.output
    assert _me(uncached, first) == _me(uncached, second) == 401
    assert _me(uncached, _login(uncached, NEW)) == 200
