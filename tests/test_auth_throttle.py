"""Failed authentications are rate-limited per client address; working credentials still work."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from promptkeeper.access.throttle import FailureThrottle
from promptkeeper.app import create_app
from tests.conftest import ADMIN_KEY, Backend, make_settings
from tests.helpers import bearer, error_of

BAD = bearer("pk_nothere_" + "x" * 43)


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
