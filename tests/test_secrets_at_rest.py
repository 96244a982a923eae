"""No secret a route hands out is readable from the database or from Redis afterwards.

After each secret-issuing call (API key, webhook, login, UI sign-in, the UI's key and webhook
forms), with and without `Idempotency-Key`, every column of every table is dumped (both backends)
and every Redis key and value is read: the secret must occur in none of them. A replayed answer
still carries the secret, and it still works.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import create_engine, inspect, text

from promptkeeper.app import create_app
from promptkeeper.config import Settings
from promptkeeper.idempotency import service as idempotency
from tests.conftest import ADMIN_KEY
from tests.helpers import bearer

PASSWORD = "a long and secret passphrase"
OWN_WEBHOOK_SECRET = "my-own-signing-secret-" + "x7" * 12
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
SHOWN = re.compile(r'data-testid="secret">([^<]+)<')


def dump_database(url: str) -> str:
    """Every value of every column of every table, as text."""
    engine = create_engine(url)
    try:
        out: list[str] = []
        with engine.connect() as connection:
            for table in inspect(connection).get_table_names():
                for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                    out.extend(f"{table}:{value!s}" for value in row)
        return "\n".join(out)
    finally:
        engine.dispose()


def dump_redis(url: str) -> str:
    """Every key and value in the Redis database the tests use (strings, hashes, lists, sets)."""
    client = redis.Redis.from_url(url)
    out: list[str] = []
    try:
        for key in client.scan_iter(count=1000):
            out.append(repr(key))
            kind = client.type(key)
            if kind == b"string":
                out.append(repr(client.get(key)))
            elif kind == b"hash":
                out.append(repr(client.hgetall(key)))
            elif kind == b"list":
                out.append(repr(client.lrange(key, 0, -1)))
            elif kind in (b"set", b"zset"):
                out.append(repr(client.smembers(key) if kind == b"set" else client.zrange(key, 0, -1)))
    finally:
        client.close()
    return "\n".join(out)


class Scanner:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.scans = 0

    def assert_nowhere(self, *secrets: str) -> None:
        stored = dump_database(self.settings.database_url)
        cached = dump_redis(self.settings.redis_url) if self.settings.redis_url else ""
        for secret in secrets:
            assert len(secret) >= 16
            assert secret not in stored, f"{secret[:6]}… is stored in the database"
            assert secret not in cached, f"{secret[:6]}… is stored in Redis"
        self.scans += 1


@pytest.fixture
def scanner(settings: Settings) -> Scanner:
    return Scanner(settings)


@pytest.fixture
def app_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _tail(secret: str) -> str:
    """The random part of a `pk_<prefix>_<random>` key (the prefix is stored in clear by design)."""
    return secret.split("_", 2)[2] if secret.startswith("pk_") else secret


def _post(client: TestClient, path: str, idem: bool, replays: bool = True, **kwargs: Any) -> tuple[Any, Any]:
    """The answer, and with a key the replay of it (which must carry the same answer)."""
    headers = dict(kwargs.pop("headers", {}))
    if idem:
        headers["Idempotency-Key"] = f"k-{uuid.uuid4()}"
    first = client.post(path, headers=headers, **kwargs)
    if not idem or not replays:
        return first, None
    again = client.post(path, headers=headers, **kwargs)
    assert again.headers.get("idempotent-replayed") == "true", again.text
    assert again.status_code == first.status_code and again.content == first.content
    return first, again


@pytest.mark.parametrize("idem", [False, True], ids=["plain", "idempotency-key"])
def test_no_issued_secret_is_readable_from_the_database_or_redis(
    app_client: TestClient, scanner: Scanner, idem: bool
) -> None:
    admin = bearer(ADMIN_KEY)
    created = app_client.post(
        "/v1/users",
        json={"email": "ann@example.com", "role": "admin", "password": PASSWORD},
        headers=admin,
    )
    assert created.status_code == 201, created.text

    key, _ = _post(app_client, "/v1/keys", idem, json={"name": "ci", "role": "editor"}, headers=admin)
    assert key.status_code == 201, key.text
    secret = key.json()["secret"]
    scanner.assert_nowhere(secret, _tail(secret))
    assert app_client.get("/v1/auth/me", headers=bearer(secret)).status_code == 200  # (also replayed)

    hook, _ = _post(
        app_client, "/v1/webhooks", idem, json={"url": "http://127.0.0.1:9/h", "events": ["*"]}, headers=admin
    )
    assert hook.status_code == 201, hook.text
    scanner.assert_nowhere(hook.json()["secret"])

    own, _ = _post(
        app_client,
        "/v1/webhooks",
        idem,
        json={"url": "http://127.0.0.1:9/own", "events": ["*"], "secret": OWN_WEBHOOK_SECRET},
        headers=admin,
    )
    assert own.status_code == 201 and own.json()["secret"] == OWN_WEBHOOK_SECRET
    scanner.assert_nowhere(OWN_WEBHOOK_SECRET)

    login, _ = _post(
        app_client, "/v1/auth/login", idem, json={"email": "ann@example.com", "password": PASSWORD}
    )
    assert login.status_code == 201, login.text
    token = login.json()["token"]
    scanner.assert_nowhere(token, _tail(token), PASSWORD)
    assert app_client.get("/v1/auth/me", headers=bearer(token)).status_code == 200

    # the UI: sign-in (the token travels in a cookie), then the key and webhook forms
    app_client.cookies.clear()
    form = app_client.get("/ui/login")
    fields = {"email": "ann@example.com", "password": PASSWORD, "next": "/ui/settings"}
    fields.update(dict(re.findall(r'name="(login_csrf)" value="([^"]+)"', form.text)))
    signed, _ = _post(app_client, "/ui/login", idem, replays=False, data=fields, follow_redirects=False)
    assert signed.status_code == 303, signed.text
    cookie = app_client.cookies["pk_session"]
    scanner.assert_nowhere(cookie, _tail(cookie), PASSWORD)
    csrf = CSRF.findall(app_client.get("/ui/settings").text)[0]
    for what, data in (
        ("key", {"name": "ui-key", "role": "viewer"}),
        ("webhook", {"url": "http://127.0.0.1:9/ui", "events": "*"}),
    ):
        shown, _ = _post(app_client, f"/ui/settings/{what}", idem, data={"csrf": csrf, **data})
        assert shown.status_code == 200, shown.text
        ui_secret = SHOWN.findall(shown.text)[0]
        scanner.assert_nowhere(ui_secret, _tail(ui_secret))
    assert scanner.scans == 7


def test_the_secret_routes_are_the_ones_scanned(app_client: TestClient) -> None:
    """A new route whose answer carries a secret or a token must join the scan above."""
    document = app_client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    issuing = set()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation.get("responses", {}).items():
                ref = answer.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
                fields = schemas[ref.rsplit("/", 1)[1]].get("properties", {}) if ref else {}
                if status.startswith("2") and {"secret", "token"} & set(fields):
                    issuing.add((path, (method.upper(),)))
    assert issuing == {
        ("/v1/keys", ("POST",)),
        ("/v1/webhooks", ("POST",)),
        ("/v1/auth/login", ("POST",)),
    }


def test_a_dump_is_no_oracle_for_the_password_or_a_chosen_webhook_secret(
    app_client: TestClient, settings: Settings
) -> None:
    """A request's fingerprint is kept for 24 h to recognise its retries. A plain SHA-256 of a
    login body would let whoever holds a dump test password guesses at SHA-256 speed (Argon2id's
    cost bypassed); it is keyed with the secret key, which is not in the database."""
    admin = bearer(ADMIN_KEY)
    app_client.post(
        "/v1/users", json={"email": "bo@example.com", "role": "viewer", "password": PASSWORD}, headers=admin
    )
    body = b'{"email":"bo@example.com","password":"' + PASSWORD.encode() + b'"}'
    headers = {"Idempotency-Key": "login-1", "Content-Type": "application/json"}
    first = app_client.post("/v1/auth/login", content=body, headers=headers)
    again = app_client.post("/v1/auth/login", content=body, headers=headers)
    assert first.status_code == again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    guess = idempotency.digest(b"POST", b"/v1/auth/login", b"", body)
    assert guess not in dump_database(settings.database_url)


def test_a_retry_across_a_secret_key_rotation_is_still_replayed(settings: Settings) -> None:
    old, new = "old-key-" + "a" * 40, "new-key-" + "b" * 40
    request = {"json": {"name": "ci", "role": "viewer"}, "headers": {"Idempotency-Key": "rotate-1"}}
    before = settings.model_copy(update={"secret_key": SecretStr(old)})
    with TestClient(create_app(before), headers=bearer(ADMIN_KEY)) as client:
        first = client.post("/v1/keys", **request)
        assert first.status_code == 201
    after = settings.model_copy(update={"secret_key": SecretStr(f"{new},{old}")})
    with TestClient(create_app(after), headers=bearer(ADMIN_KEY)) as client:
        again = client.post("/v1/keys", **request)
        assert again.headers.get("idempotent-replayed") == "true" and again.json() == first.json()
        assert len(client.get("/v1/keys").json()) == 2  # the admin key and one new key, not two
