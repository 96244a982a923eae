"""Failed authentications are rate-limited per client address and per credential; working
credentials still work, and X-Forwarded-For counts only from a trusted proxy."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from promptkeeper.access.throttle import FailureThrottle
from promptkeeper.app import create_app
from promptkeeper.config import Settings
from tests.conftest import ADMIN_KEY, Backend, make_settings
from tests.helpers import bearer, error_of
from tests.processes import ServerProcess

BAD = bearer("pk_nothere_" + "x" * 43)
ADA = {"email": "ada@example.com", "role": "editor", "password": "correct horse 1"}


def test_throttle_window_table() -> None:
    throttle = FailureThrottle(limit=3, window=10.0)
    for at in (0.0, 1.0, 2.0):
        throttle.check("a", now=at)
        throttle.failed("a", now=at)
    with pytest.raises(Exception) as refused:
        throttle.check("a", now=3.0)
    assert refused.value.details == {"retry_after": 7}  # type: ignore[attr-defined]
    throttle.check("b", now=3.0)  # other addresses are not affected
    throttle.check("a", now=10.5)  # the first failure left the window
    FailureThrottle(limit=0, window=1.0).failed("a")  # 0: off, nothing counted


def test_bad_keys_from_one_address_get_429(backend: Backend, tmp_path: Path) -> None:
    settings = make_settings(backend, tmp_path, auth_failure_limit=5, auth_failure_window=60)
    with TestClient(create_app(settings)) as client:
        client.get("/v1/prompts", headers=bearer(ADMIN_KEY))  # a key that works, known to this instance
        statuses = [client.get("/v1/prompts", headers=BAD).status_code for _ in range(7)]
        assert statuses == [401] * 5 + [429] * 2
        refused = client.get("/v1/prompts", headers=BAD)
        error = error_of(refused)
        assert error["code"] == "too_many_requests" and "failed authentications" in error["message"]
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        # the resolve hot path and the Langfuse routes are throttled alike
        assert client.get("/v1/resolve/p", headers=BAD).status_code == 429
        basic = {"Authorization": "Basic cGtfeDpwa194X3l5eQ=="}
        assert client.get("/api/public/v2/prompts", headers=basic).status_code == 429
        # a key this instance already verified keeps working from the same address
        assert client.get("/v1/prompts", headers=bearer(ADMIN_KEY)).status_code == 200
        # missing credentials are not guesses: still 401
        assert client.get("/v1/prompts").status_code == 401


def test_password_guessing_is_throttled(backend: Backend, tmp_path: Path) -> None:
    settings = make_settings(backend, tmp_path, auth_failure_limit=3)
    with TestClient(create_app(settings)) as client:
        created = client.post(
            "/v1/users",
            json={"email": "ada@example.com", "role": "editor", "password": "correct horse 1"},
            headers=bearer(ADMIN_KEY),
        )
        assert created.status_code == 201, created.text
        guesses = [
            client.post("/v1/auth/login", json={"email": "ada@example.com", "password": f"guess {i}"})
            for i in range(4)
        ]
        assert [g.status_code for g in guesses] == [401, 401, 401, 429]
        # even the right password waits now: the address is over its limit
        right = client.post(
            "/v1/auth/login", json={"email": "ada@example.com", "password": "correct horse 1"}
        )
        assert right.status_code == 429
        page = client.post(
            "/ui/login",
            data={"email": "ada@example.com", "password": "correct horse 1"},
            follow_redirects=False,
        )
        assert page.status_code == 429 and "failed authentications" in page.text


def _user(client: TestClient, email: str, password: str) -> None:
    created = client.post(
        "/v1/users",
        json={"email": email, "role": "editor", "password": password},
        headers=bearer(ADMIN_KEY),
    )
    assert created.status_code == 201, created.text


def _login(client: TestClient | httpx.Client, email: str, password: str, **headers: str) -> int:
    response = client.post("/v1/auth/login", json={"email": email, "password": password}, headers=headers)
    return response.status_code


def test_verified_and_new_keys_work_from_a_throttled_address(backend: Backend, tmp_path: Path) -> None:
    """The address is over its limit for good: correct keys still work once their remembered check
    has expired (the cache TTL is 0.2 s here), and so does a correct key this instance never saw."""
    settings = make_settings(backend, tmp_path, auth_failure_limit=5, auth_cache_ttl=0.2)
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/prompts", headers=bearer(ADMIN_KEY)).status_code == 200
        created = client.post("/v1/keys", json={"name": "app", "role": "runtime"}, headers=bearer(ADMIN_KEY))
        assert created.status_code == 201
        statuses = [client.get("/v1/prompts", headers=BAD).status_code for _ in range(7)]
        assert statuses == [401] * 5 + [429] * 2
        time.sleep(0.3)  # past the key-check TTL: the admin key is checked against the database again
        assert client.get("/v1/prompts", headers=bearer(ADMIN_KEY)).status_code == 200
        assert client.get("/v1/resolve/p", headers=bearer(created.json()["secret"])).status_code == 404
        assert client.get("/v1/prompts", headers=BAD).status_code == 429  # guesses are still refused


def test_right_password_from_an_address_throttled_by_bad_keys(backend: Backend, tmp_path: Path) -> None:
    settings = make_settings(backend, tmp_path, auth_failure_limit=3)
    with TestClient(create_app(settings)) as client:
        _user(client, "ada@example.com", "correct horse 1")
        assert [client.get("/v1/prompts", headers=BAD).status_code for _ in range(4)] == [401] * 3 + [429]
        assert _login(client, "ada@example.com", "correct horse 1") == 201


def test_password_of_a_user_who_signed_in_from_the_address_before(backend: Backend, tmp_path: Path) -> None:
    """Another user's guesses throttle the address; a user who already signed in from it still can,
    and guesses at that user's password are limited per user and address."""
    settings = make_settings(backend, tmp_path, auth_failure_limit=3)
    with TestClient(create_app(settings)) as client:
        _user(client, "ada@example.com", "correct horse 1")
        _user(client, "bob@example.com", "battery staple 2")
        assert _login(client, "ada@example.com", "correct horse 1") == 201
        assert [_login(client, "bob@example.com", f"guess {i}") for i in range(4)] == [401] * 3 + [429]
        assert _login(client, "ada@example.com", "correct horse 1") == 201
        guesses = [_login(client, "ada@example.com", f"guess {i}") for i in range(4)]
        assert guesses == [401] * 3 + [429]
        assert _login(client, "ada@example.com", "correct horse 1") == 429


def _serve(tmp_path: Path, **env: str) -> ServerProcess:
    settings = {
        "PROMPTKEEPER_ADMIN_KEY": ADMIN_KEY,
        "PROMPTKEEPER_DATABASE_URL": f"sqlite:///{tmp_path / 'throttle.db'}",
        "PROMPTKEEPER_AUTH_FAILURE_LIMIT": "5",
        **env,
    }
    return ServerProcess(settings, tmp_path).start(timeout=90)


@pytest.mark.slow
def test_forwarded_for_from_an_untrusted_peer_is_ignored(tmp_path: Path) -> None:
    """By default no proxy is trusted: a rotating X-Forwarded-For does not make new addresses."""
    server = _serve(tmp_path)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            assert http.post("/v1/users", json=ADA, headers=bearer(ADMIN_KEY)).status_code == 201
            keys = [
                http.get("/v1/prompts", headers={**BAD, "X-Forwarded-For": f"10.0.0.{i}"}).status_code
                for i in range(7)
            ]
            assert keys == [401] * 5 + [429] * 2
            passwords = [
                _login(http, f"user{i}@example.com", "not the password", **{"X-Forwarded-For": f"10.0.1.{i}"})
                for i in range(7)
            ]
            assert passwords == [401] * 5 + [429] * 2
    finally:
        server.stop()


@pytest.mark.slow
def test_forwarded_for_from_a_trusted_proxy_and_guesses_per_credential(tmp_path: Path) -> None:
    """Behind a trusted proxy each client has its own address; guesses at one credential from many
    addresses are still limited, per user and per key."""
    server = _serve(tmp_path, PROMPTKEEPER_FORWARDED_ALLOW_IPS="127.0.0.1")
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            assert http.post("/v1/users", json=ADA, headers=bearer(ADMIN_KEY)).status_code == 201
            assert _login(http, ADA["email"], ADA["password"], **{"X-Forwarded-For": "10.9.9.9"}) == 201
            guesses = [
                _login(http, ADA["email"], f"guess {i}", **{"X-Forwarded-For": f"10.0.1.{i}"})
                for i in range(7)
            ]
            assert guesses == [401] * 5 + [429] * 2
            # other users from other addresses are not affected, and Ada signs in where she did before
            assert _login(http, "eve@example.com", "guess", **{"X-Forwarded-For": "10.0.2.1"}) == 401
            assert _login(http, ADA["email"], ADA["password"], **{"X-Forwarded-For": "10.9.9.9"}) == 201
            # wrong secrets for one key's prefix, from rotating addresses
            prefix_guess = bearer("pk_testadm1_" + "y" * 43)
            keys = [
                http.get(
                    "/v1/prompts", headers={**prefix_guess, "X-Forwarded-For": f"10.0.3.{i}"}
                ).status_code
                for i in range(7)
            ]
            assert keys == [401] * 5 + [429] * 2
            assert http.get("/v1/prompts", headers=bearer(ADMIN_KEY)).status_code == 200
    finally:
        server.stop()


def test_forwarded_allow_ips_must_be_addresses() -> None:
    with pytest.raises(ValidationError) as invalid:
        Settings(forwarded_allow_ips="127.0.0.1, proxy.internal")
    assert "forwarded_allow_ips" in str(invalid.value) and "proxy.internal" in str(invalid.value)
    assert Settings(forwarded_allow_ips=" 10.0.0.0/8 ,::1").forwarded_allow_ips == "10.0.0.0/8,::1"
