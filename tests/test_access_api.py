"""Users, login sessions, API keys and members over HTTP; the operator CLI for projects, keys, users."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from promptkeeper.access import users
from promptkeeper.app import create_app
from promptkeeper.cli import app as cli_app
from promptkeeper.config import Settings
from promptkeeper.db.base import utcnow
from tests.conftest import ADMIN_KEY, Backend
from tests.helpers import bearer, create_prompt, error_of
from tests.route_catalog import PASSWORD


def _member(client: TestClient, email: str, role: str, password: str | None = PASSWORD) -> dict[str, object]:
    body: dict[str, object] = {"email": email, "role": role}
    if password is not None:
        body["password"] = password
    response = client.post("/v1/users", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, object] = response.json()
    return result


def _login(client: TestClient, email: str, password: str = PASSWORD, **extra: str) -> dict[str, str]:
    response = client.post("/v1/auth/login", json={"email": email, "password": password, **extra}, headers={})
    assert response.status_code == 201, response.text
    return bearer(response.json()["token"])


def test_production_password_hashing_is_argon2id() -> None:
    # The suite swaps in a cheap hasher (conftest); the module's own is RFC 9106's second choice.
    from argon2 import PasswordHasher

    stored = PasswordHasher().hash(PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert users._DUMMY_HASH.startswith("$argon2id$")


def test_login_me_logout_and_password_change(client: TestClient) -> None:
    created = _member(client, "Ada@Example.COM", "editor")
    assert created["email"] == "ada@example.com" and "password" not in json.dumps(created)
    session = _login(client, "ada@example.com")
    me = client.get("/v1/auth/me", headers=session).json()
    assert me["kind"] == "session" and me["role"] == "editor" and me["user"]["email"] == "ada@example.com"
    # The user is the author of what they create.
    created_prompt = client.post(
        "/v1/prompts", json={"name": "mine", "content": {"type": "text", "template": "x"}}, headers=session
    )
    assert created_prompt.json()["version"]["author"] == "ada@example.com"
    # Wrong password and unknown email answer alike.
    for email, password in (("ada@example.com", "wrong password!"), ("nobody@example.com", PASSWORD)):
        refused = client.post("/v1/auth/login", json={"email": email, "password": password}, headers={})
        assert refused.status_code == 401 and error_of(refused)["message"] == "wrong email or password"
    # Change the password: the old one stops working.
    weak = client.post(
        "/v1/auth/password", json={"current_password": PASSWORD, "new_password": "short"}, headers=session
    )
    assert weak.status_code == 422 and "at least 10" in error_of(weak)["message"]
    wrong = client.post(
        "/v1/auth/password",
        json={"current_password": "nope nope nope", "new_password": "x" * 12},
        headers=session,
    )
    assert wrong.status_code == 401
    changed = client.post(
        "/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "a new passphrase"},
        headers=session,
    )
    assert changed.status_code == 204
    assert (
        client.post("/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}).status_code
        == 401
    )
    _login(client, "ada@example.com", "a new passphrase")
    # An API key has no password and cannot log out.
    assert (
        client.post("/v1/auth/password", json={"current_password": "a", "new_password": "b" * 12}).status_code
        == 422
    )
    assert client.post("/v1/auth/logout").status_code == 422
    assert client.post("/v1/auth/logout", headers=session).status_code == 204
    gone = client.get("/v1/auth/me", headers=session)
    assert gone.status_code == 401 and "revoked" in error_of(gone)["message"]
    actions = [e["action"] for e in client.get("/v1/audit", params={"limit": 500}).json()["items"]]
    for action in ("member.added", "session.created", "user.password_changed", "session.ended"):
        assert action in actions


def test_session_follows_membership(client: TestClient, settings: Settings) -> None:
    bob = _member(client, "bob@example.com", "viewer")
    session = _login(client, "bob@example.com")
    create_prompt(client, "p")
    assert client.get("/v1/prompts/p", headers=session).status_code == 200
    body = {"content": {"type": "text", "template": "changed"}}
    assert client.post("/v1/prompts/p/versions", json=body, headers=session).status_code == 403
    promoted = client.patch(f"/v1/users/{bob['id']}", json={"role": "editor"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "editor"
    assert client.post("/v1/prompts/p/versions", json=body, headers=session).status_code == 201
    assert client.delete(f"/v1/users/{bob['id']}").status_code == 200
    gone = client.get("/v1/prompts", headers=session)
    assert gone.status_code == 401
    assert (
        client.post("/v1/auth/login", json={"email": "bob@example.com", "password": PASSWORD}).status_code
        == 401
    )
    assert client.delete(f"/v1/users/{bob['id']}").status_code == 404


def test_members(client: TestClient) -> None:
    _member(client, "ada@example.com", "editor")
    again = client.post("/v1/users", json={"email": "ada@example.com", "role": "viewer"})
    assert again.status_code == 409 and "already a member" in error_of(again)["message"]
    no_password = client.post("/v1/users", json={"email": "new@example.com", "role": "viewer"})
    assert no_password.status_code == 422 and "password" in error_of(no_password)["message"]
    bad_email = client.post(
        "/v1/users", json={"email": "not-an-email", "role": "viewer", "password": PASSWORD}
    )
    assert bad_email.status_code == 422 and "email" in error_of(bad_email)["message"]
    bad_role = client.post("/v1/users", json={"email": "x@example.com", "role": "boss", "password": PASSWORD})
    assert bad_role.status_code == 422 and "body.role" in error_of(bad_role)["message"]
    listed = client.get("/v1/users").json()
    assert [(m["email"], m["role"]) for m in listed] == [("ada@example.com", "editor")]


def test_last_admin_cannot_be_removed(client: TestClient) -> None:
    admin = _member(client, "root@example.com", "admin")
    session = _login(client, "root@example.com")
    # The bootstrap admin key is revoked by the member admin; then that member is the last admin.
    keys = client.get("/v1/keys", headers=session).json()
    bootstrap = next(k for k in keys if k["role"] == "admin")
    assert client.delete(f"/v1/keys/{bootstrap['prefix']}", headers=session).status_code == 200
    assert client.get("/v1/keys", headers=bearer(ADMIN_KEY)).status_code == 401
    demote = client.patch(f"/v1/users/{admin['id']}", json={"role": "viewer"}, headers=session)
    assert demote.status_code == 409 and "no admin left" in error_of(demote)["message"]
    remove = client.delete(f"/v1/users/{admin['id']}", headers=session)
    assert remove.status_code == 409


def test_api_keys(client: TestClient) -> None:
    created = client.post("/v1/keys", json={"name": "app-prod", "role": "runtime"})
    assert created.status_code == 201
    key = created.json()
    assert key["secret"].startswith(f"pk_{key['prefix']}_") and key["role"] == "runtime"
    listed = client.get("/v1/keys").json()
    assert all("secret" not in k and "key_hash" not in k for k in listed)
    assert key["prefix"] in {k["prefix"] for k in listed}
    runtime = bearer(key["secret"])
    me = client.get("/v1/auth/me", headers=runtime).json()
    assert me == {
        "name": "app-prod",
        "role": "runtime",
        "project": "default",
        "kind": "key",
        "key_prefix": key["prefix"],
        "user": None,
    }
    used = next(k for k in client.get("/v1/keys").json() if k["prefix"] == key["prefix"])
    assert used["last_used_at"] is not None
    past = (utcnow() - timedelta(minutes=1)).isoformat()
    expired = client.post("/v1/keys", json={"name": "old", "role": "viewer", "expires_at": past})
    assert expired.status_code == 422 and "expires_at" in error_of(expired)["message"]
    revoked = client.delete(f"/v1/keys/{key['prefix']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert client.get("/v1/resolve/x", headers=runtime).status_code == 401
    assert client.delete(f"/v1/keys/{key['prefix']}").status_code == 409
    assert client.delete("/v1/keys/nosuchkey").status_code == 404
    assert key["prefix"] not in {k["prefix"] for k in client.get("/v1/keys").json()}
    assert key["prefix"] in {
        k["prefix"] for k in client.get("/v1/keys", params={"include_revoked": True}).json()
    }
    own = next(k for k in client.get("/v1/keys").json() if k["name"] == "admin")
    assert client.delete(f"/v1/keys/{own['prefix']}").status_code == 409  # a key cannot revoke itself
    audit = client.get("/v1/audit", params={"action": "key.*"}).json()["items"]
    assert [e["action"] for e in audit] == ["key.revoked", "key.created"]
    assert key["secret"] not in json.dumps(audit)


def test_login_picks_the_project(client: TestClient, settings: Settings) -> None:
    _member(client, "ada@example.com", "viewer")
    runner = CliRunner()
    env = {"PROMPTKEEPER_DATABASE_URL": settings.database_url}
    assert runner.invoke(cli_app, ["projects", "create", "second"], env=env).exit_code == 0
    result = runner.invoke(
        cli_app,
        ["users", "add", "ada@example.com", "--project", "second", "--role", "editor", "--password-stdin"],
        input=PASSWORD + "\n",
        env=env,
    )
    assert result.exit_code == 0, result.output
    several = client.post("/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert several.status_code == 422 and "default, second" in error_of(several)["message"]
    second = client.post(
        "/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD, "project": "second"}
    )
    assert second.status_code == 201 and second.json()["role"] == "editor"
    assert second.json()["project"] == "second"
    elsewhere = client.post(
        "/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD, "project": "x"}
    )
    assert elsewhere.status_code == 401


@pytest.mark.parametrize("as_json", [False, True])
def test_cli_keys_projects_users(backend: Backend, tmp_path: Path, settings: Settings, as_json: bool) -> None:
    runner = CliRunner()
    env = {"PROMPTKEEPER_DATABASE_URL": settings.database_url}
    flag = ["--json"] if as_json else []
    # No authentication cache: a key revoked through the database is refused at once (servers
    # otherwise stop accepting it within PROMPTKEEPER_AUTH_CACHE_TTL seconds).
    with TestClient(create_app(settings.model_copy(update={"auth_cache_ttl": 0}))) as client:
        created = runner.invoke(cli_app, ["projects", "create", "acme"], env=env)
        assert created.exit_code == 0, created.output
        duplicate = runner.invoke(cli_app, ["projects", "create", "acme"], env=env)
        assert duplicate.exit_code == 1 and "already exists" in duplicate.output
        bad = runner.invoke(cli_app, ["projects", "create", "Bad Name"], env=env)
        assert bad.exit_code == 2  # bad usage, like an invalid option value
        made = runner.invoke(
            cli_app,
            ["keys", "create", "--project", "acme", "--role", "runtime", "--name", "app-prod", *flag],
            env=env,
        )
        assert made.exit_code == 0, made.output
        secret = json.loads(made.stdout)["secret"] if as_json else made.stdout.strip().splitlines()[-1]
        assert secret.startswith("pk_")
        me = client.get("/v1/auth/me", headers=bearer(secret)).json()
        assert me["project"] == "acme" and me["role"] == "runtime"
        listed = runner.invoke(cli_app, ["keys", "list", "--project", "acme", *flag], env=env)
        assert listed.exit_code == 0 and "app-prod" in listed.stdout and secret not in listed.stdout
        prefix = secret.split("_")[1]
        revoked = runner.invoke(cli_app, ["keys", "revoke", prefix, "--project", "acme"], env=env)
        assert revoked.exit_code == 0, revoked.output
        assert client.get("/v1/auth/me", headers=bearer(secret)).status_code == 401
        wrong_role = runner.invoke(
            cli_app, ["keys", "create", "--project", "acme", "--role", "boss", "--name", "x"], env=env
        )
        assert wrong_role.exit_code == 2 and "not a role" in wrong_role.output
        missing = runner.invoke(cli_app, ["keys", "list", "--project", "nope"], env=env)
        assert missing.exit_code == 1 and "project 'nope' not found" in missing.output
        added = runner.invoke(
            cli_app,
            ["users", "add", "Ops@Example.com", "--project", "acme", "--role", "admin", "--password-stdin"],
            input=PASSWORD + "\n",
            env=env,
        )
        assert added.exit_code == 0, added.output
        members = runner.invoke(cli_app, ["users", "list", "--project", "acme", *flag], env=env)
        assert "ops@example.com" in members.stdout
        short = runner.invoke(
            cli_app,
            ["users", "add", "x@example.com", "--project", "acme", "--role", "viewer", "--password-stdin"],
            input="short\n",
            env=env,
        )
        assert short.exit_code == 1 and "at least 10" in short.output
        token = client.post(
            "/v1/auth/login", json={"email": "ops@example.com", "password": PASSWORD}, headers={}
        ).json()["token"]
        audit = client.get("/v1/audit", params={"action": "key.*"}, headers=bearer(token)).json()["items"]
        assert {e["action"] for e in audit} == {"key.created", "key.revoked"}
        assert all(e["actor"].startswith("cli:") for e in audit)


def test_out_of_range_ids_and_unicode_digits_are_client_errors(client: TestClient) -> None:
    """Found by tests/test_schemathesis.py: an id past 2**63 was an OverflowError (500) on SQLite,
    and a key reference of Unicode digits ("²" passes str.isdigit, not int()) a ValueError (500)."""
    member = _member(client, "kept@example.com", "viewer")
    for user_id in (2**31, 2**63):
        response = client.delete(f"/v1/users/{user_id}")
        assert response.status_code == 422, response.text
        assert error_of(response)["details"]["errors"][0]["field"] == "path.user_id"
    key = client.post("/v1/keys", json={"name": "kept", "role": "viewer"}).json()
    response = client.delete("/v1/keys/²")
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    assert [m["id"] for m in client.get("/v1/users").json()] == [member["id"]]  # nothing removed
    assert key["prefix"] in {k["prefix"] for k in client.get("/v1/keys").json()}  # nothing revoked
