"""Hostile input: oversized and deeply nested bodies, invalid UTF-8, path tricks, SQL-injection
strings. Each gets a 4xx with a message naming the problem, and nothing is stored; free text that
merely looks like SQL is stored verbatim (queries are parameterised) and changes nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from promptkeeper.app import create_app
from tests.conftest import ADMIN_KEY, Backend, make_settings
from tests.helpers import bearer, create_prompt, error_of, text_content

SQL_STRINGS = [
    "'; DROP TABLE prompts; --",
    '" OR 1=1 --',
    "x' UNION SELECT secret_hash FROM api_keys --",
    "1; DELETE FROM deployments",
    "$$; TRUNCATE audit_log; $$",
    "\\'; SELECT pg_sleep(10); --",
]
PATH_TRICKS = ["..%2F..%2Fetc%2Fpasswd", "%2E%2E%2Fx", "a%2F..%2Fb", "a%2F%2Fb", "%2Fabs", "a%00b", "con%0Ab"]


@pytest.fixture
def small_client(backend: Backend, tmp_path: Path) -> TestClient:
    settings = make_settings(backend, tmp_path, max_body_bytes=64 * 1024)
    with TestClient(create_app(settings), headers=bearer(ADMIN_KEY)) as client:
        yield client  # type: ignore[misc]


def _count(client: TestClient) -> int:
    total: int = client.get("/v1/prompts").json()["total"]
    return total


def test_oversized_bodies_are_refused_before_reading(small_client: TestClient) -> None:
    big = {"name": "big", "content": text_content("x" * 100_000)}
    response = small_client.post("/v1/prompts", json=big)
    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "payload_too_large" and "PROMPTKEEPER_MAX_BODY_BYTES" in error["message"]

    def chunks() -> object:  # no Content-Length: counted while it streams
        for _ in range(20):
            yield b"x" * 8192

    streamed = small_client.post(
        "/v1/prompts",
        content=chunks(),
        headers={"Content-Type": "application/json"},  # type: ignore[arg-type]
    )
    assert streamed.status_code == 413 and error_of(streamed)["code"] == "payload_too_large"
    bad_length = small_client.post("/v1/prompts", content=b"{}", headers={"Content-Length": "-5"})
    assert bad_length.status_code == 400
    assert _count(small_client) == 0


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_json(client: TestClient, depth: int) -> None:
    body = '{"name": "deep", "content": ' + "[" * depth + "]" * depth + "}"
    response = client.post("/v1/prompts", content=body, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    assert "body" in error_of(response)["message"]
    assert _count(client) == 0


def test_invalid_utf8_and_bad_json(client: TestClient) -> None:
    for raw in (b'{"name": "\xff\xfe", "content": 1}', b'{"name": "x", "content": ', b"\x00\x01", b"[]"):
        response = client.post("/v1/prompts", content=raw, headers={"Content-Type": "application/json"})
        assert response.status_code in (400, 422), (raw, response.text)
        assert error_of(response)["message"]
    surrogate = b'{"name": "s", "content": {"type": "text", "template": "\\ud800"}}'
    response = client.post("/v1/prompts", content=surrogate, headers={"Content-Type": "application/json"})
    assert response.status_code in (201, 400, 422), response.text  # a lone surrogate: refused or kept
    if response.status_code == 201:
        assert client.get("/v1/prompts/s/versions/1").status_code == 200
    assert client.post(
        "/v1/prompts", content=b"name=x", headers={"Content-Type": "text/plain"}
    ).status_code in (
        400,
        415,
        422,
    )


@pytest.mark.parametrize("trick", PATH_TRICKS)
def test_path_tricks_in_names(client: TestClient, trick: str) -> None:
    create_prompt(client, "safe", "hello")
    for method, path in (
        ("GET", f"/v1/prompts/{trick}"),
        ("POST", f"/v1/prompts/{trick}/versions"),
        ("GET", f"/v1/resolve/{trick}"),
    ):
        response = client.request(method, path, json={"content": text_content("x")})
        assert response.status_code in (404, 405, 422), (method, path, response.text)
        assert response.status_code == 404 or error_of(response)["message"]
    from urllib.parse import unquote

    created = client.post("/v1/prompts", json={"name": unquote(trick), "content": text_content("x")})
    assert created.status_code == 422, created.text
    assert "body.name" in error_of(created)["message"]
    assert _count(client) == 1


@pytest.mark.parametrize("payload", SQL_STRINGS)
def test_sql_strings(client: TestClient, payload: str) -> None:
    # where the field has a grammar (names, tags, environments), they are refused
    for body in (
        {"name": payload, "content": text_content("x")},
        {"name": "ok", "tags": [payload], "content": text_content("x")},
    ):
        response = client.post("/v1/prompts", json=body)
        assert response.status_code == 422, response.text
        assert "body." in error_of(response)["message"]
    assert _count(client) == 0
    # free text is data: stored verbatim, read back verbatim, nothing else touched
    created = client.post(
        "/v1/prompts",
        json={
            "name": "free-text",
            "description": payload,
            "owner": payload[:128],
            "content": text_content(f"Say: {json.dumps(payload)}"),
            "message": payload,
        },
    )
    assert created.status_code == 201, created.text
    read = client.get("/v1/prompts/free-text").json()
    assert read["description"] == payload
    version = client.get("/v1/prompts/free-text/versions/1").json()
    assert version["message"] == payload and json.dumps(payload) in version["content"]["template"]
    search = client.get("/v1/prompts", params={"search": payload})
    assert search.status_code == 200 and search.json()["total"] in (0, 1)
    assert client.get("/v1/prompts", params={"tag": payload}).status_code in (200, 422)
    deploy = client.post("/v1/prompts/free-text/deployments", json={"environment": payload, "version": 1})
    assert deploy.status_code == 422 and "body.environment" in error_of(deploy)["message"]
    audit = client.get("/v1/audit", params={"prompt": payload})
    assert audit.status_code in (200, 422)
    assert _count(client) == 1 and client.get("/v1/keys").status_code == 200  # tables intact


def test_ui_forms_refuse_nul_and_unicode_digits(client: TestClient) -> None:
    from promptkeeper.ui.web import is_count

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    response = client.post("/ui/login", content=b"email=a%00b&password=x", headers=form)
    assert response.status_code == 422 and error_of(response)["details"]["field"] == "form.email"
    assert [is_count(v) for v in ("12", "\u00b2", "\u0663", "", "-1", "9" * 10, "999999999")] == [
        True,
        False,
        False,
        False,
        False,
        False,
        True,
    ]
