"""API keys: missing, malformed, unknown, revoked, expired; roles on routes; bootstrap keys."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from promptkeeper.access.models import ApiKey
from promptkeeper.access.service import DEFAULT_PROJECT, Role, create_api_key, get_project
from promptkeeper.app import create_app
from promptkeeper.config import Settings
from promptkeeper.db.base import utcnow
from promptkeeper.db.engine import Database
from tests.conftest import ADMIN_KEY, Backend, make_settings
from tests.helpers import create_prompt, deploy, error_of, text_content


def _key(settings: Settings, role: Role, **kwargs: object) -> str:
    database = Database(settings)
    try:
        with database.write_session() as session:
            project = get_project(session=session, name=DEFAULT_PROJECT)
            secret = create_api_key(
                session=session, project=project, name=f"{role.value}-key", role=role, **kwargs
            ).secret  # type: ignore[arg-type]
            session.commit()
        return secret
    finally:
        database.dispose()


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        (None, "missing API key"),
        ("Basic abc", "expected 'Bearer <key>'"),
        ("Bearer ", "expected 'Bearer <key>'"),
        ("Bearer pk_deadbeef_nothing", "invalid API key"),
        ("Bearer something-else-entirely", "invalid API key"),
    ],
)
def test_rejected_credentials(client: TestClient, header: str | None, fragment: str) -> None:
    headers = {"Authorization": header} if header is not None else {}
    client.headers.pop("Authorization")
    response = client.get("/v1/prompts", headers=headers)
    assert response.status_code == 401
    error = error_of(response)
    assert error["code"] == "unauthorized" and fragment in error["message"]


def test_revoked_and_expired_keys(client: TestClient, settings: Settings) -> None:
    expired = _key(settings, Role.viewer, expires_at=utcnow() - timedelta(seconds=1))
    response = client.get("/v1/prompts", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401 and "expired" in error_of(response)["message"]
    revoked = _key(settings, Role.viewer)
    database = Database(settings)
    with database.write_session() as session:
        for key in session.query(ApiKey).filter(ApiKey.name == "viewer-key"):
            key.revoked_at = utcnow()
        session.commit()
    database.dispose()
    response = client.get("/v1/prompts", headers={"Authorization": f"Bearer {revoked}"})
    assert response.status_code == 401 and "revoked" in error_of(response)["message"]


def test_key_is_refused_from_its_expiry_even_while_remembered(client: TestClient, settings: Settings) -> None:
    """The key check is remembered for `auth_cache_ttl` (10 s here), far past the key's expiry."""
    expires_at = utcnow() + timedelta(seconds=5)
    key = _key(settings, Role.viewer, expires_at=expires_at)
    assert client.get("/v1/prompts", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    time.sleep(max(0.0, (expires_at - utcnow()).total_seconds()))
    response = client.get("/v1/prompts", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 401 and "expired" in error_of(response)["message"]


def test_roles_on_registry_routes(client: TestClient, settings: Settings) -> None:
    create_prompt(client, "p")
    deploy(client, "p", "production", 1)
    runtime = {"Authorization": f"Bearer {_key(settings, Role.runtime)}"}
    viewer = {"Authorization": f"Bearer {_key(settings, Role.viewer)}"}
    editor = {"Authorization": f"Bearer {_key(settings, Role.editor)}"}
    body = {"content": text_content("new")}
    # runtime: resolve and render only
    assert client.get("/v1/resolve/p", headers=runtime).status_code == 200
    assert (
        client.post("/v1/render", json={"name": "p", "variables": {"name": "x"}}, headers=runtime).status_code
        == 200
    )
    denied = client.get("/v1/prompts", headers=runtime)
    assert denied.status_code == 403
    assert "a 'runtime' key cannot read the registry" in error_of(denied)["message"]
    # viewer: reads, no writes
    assert client.get("/v1/prompts/p/versions", headers=viewer).status_code == 200
    assert client.get("/v1/resolve/p", headers=viewer).status_code == 200
    assert client.post("/v1/prompts/p/versions", json=body, headers=viewer).status_code == 403
    assert (
        client.post("/v1/prompts/p/rollback", json={"environment": "production"}, headers=viewer).status_code
        == 403
    )
    # editor: writes, but not environment administration
    created = client.post("/v1/prompts/p/versions", json=body, headers=editor)
    assert created.status_code == 201 and created.json()["author"] == "editor-key"
    assert client.post("/v1/environments", json={"name": "qa"}, headers=editor).status_code == 403
    assert client.post("/v1/environments", json={"name": "qa"}).status_code == 201


def test_health_needs_no_key(client: TestClient, backend: Backend) -> None:
    client.headers.pop("Authorization")
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    expected = {"database": "ok", "redis": "ok"} if backend.is_postgres else {"database": "ok"}
    assert ready.status_code == 200 and ready.json()["checks"] == expected


def test_configured_admin_key(backend: Backend, tmp_path: Path) -> None:
    chosen = "my-own-admin-secret-1234"
    settings = make_settings(backend, tmp_path, admin_key=chosen)
    with TestClient(create_app(settings)) as client:
        ok = client.get("/v1/prompts", headers={"Authorization": f"Bearer {chosen}"})
        assert ok.status_code == 200
        assert (
            client.get(
                "/v1/prompts", headers={"Authorization": "Bearer my-own-admin-secret-1235"}
            ).status_code
            == 401
        )
    assert not settings.admin_key_file.exists()
    with pytest.raises(ValueError, match="at least 16"):
        with TestClient(create_app(make_settings(backend, tmp_path, admin_key="short"))):
            pass


def test_secrets_never_reach_the_logs_or_the_audit_log(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    created = client.post("/v1/keys", json={"name": "ci", "role": "editor"})
    secret = created.json()["secret"]
    password = "a password nobody should see 42"
    client.post("/v1/users", json={"email": "ada@example.com", "role": "viewer", "password": password})
    guessed = "pk_" + secret.split("_")[1] + "_" + "g" * 43  # a real prefix with a wrong secret
    for key in (secret, guessed, "not-even-a-key"):
        client.get("/v1/prompts", headers={"Authorization": f"Bearer {key}"})
        client.get("/v1/resolve/nope", headers={"Authorization": f"Bearer {key}"})
    client.post("/v1/auth/login", json={"email": "ada@example.com", "password": password}, headers={})
    client.post("/v1/auth/login", json={"email": "ada@example.com", "password": password + "x"}, headers={})
    audit = client.get("/v1/audit", params={"limit": 200}).text
    for value in (secret, secret.split("_")[-1], guessed, password, ADMIN_KEY):
        assert value not in caplog.text
        assert value not in audit
