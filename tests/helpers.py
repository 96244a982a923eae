"""Helpers shared by the API tests."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import httpx
from fastapi.testclient import TestClient

Client = TestClient | httpx.Client


def text_content(template: str, **extra: Any) -> dict[str, Any]:
    return {"type": "text", "template": template, **extra}


def chat_content(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "chat", "messages": list(messages), **extra}


def create_prompt(
    client: Client, name: str, template: str = "Hello {{ name }}", **extra: Any
) -> dict[str, Any]:
    response = client.post("/v1/prompts", json={"name": name, "content": text_content(template), **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def add_version(client: Client, name: str, template: str, **extra: Any) -> dict[str, Any]:
    response = client.post(
        f"/v1/prompts/{quote_name(name)}/versions", json={"content": text_content(template), **extra}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def deploy(client: Client, name: str, environment: str, version: int, **extra: Any) -> dict[str, Any]:
    response = client.post(
        f"/v1/prompts/{quote_name(name)}/deployments",
        json={"environment": environment, "version": version, **extra},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def start_experiment(client: Client, prompt: str, name: str, treatment_version: int = 2) -> int:
    """A running A/B test of `prompt`: the live version as control, `treatment_version` as
    `treatment` (even weights, latency as the primary metric); returns its id."""
    created = client.post(
        "/v1/experiments",
        json={
            "prompt": prompt,
            "name": name,
            "candidates": [{"version": treatment_version, "weight": 1, "key": "treatment"}],
            "primary_metric": "latency_ms",
            "std_dev": 100,
            "mde": 50,
        },
    )
    assert created.status_code == 201, created.text
    experiment_id = int(created.json()["id"])
    started = client.post(f"/v1/experiments/{experiment_id}/start", json={})
    assert started.status_code == 200, started.text
    return experiment_id


def quote_name(name: str) -> str:
    return name.replace("/", "%2F")


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The error object of a response, asserting the shared error shape."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


def app_routes(app: Any) -> set[tuple[str, str]]:
    """Every `(METHOD, path)` the app serves, from its OpenAPI document.

    FastAPI 0.165 keeps included routers as `_IncludedRouter` entries in `app.routes`, so walking
    `app.routes` for `APIRoute`s finds none; the OpenAPI document is the public, complete list
    (no route of ours is excluded from it).
    """
    found: set[tuple[str, str]] = set()
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            if method in ("get", "post", "put", "patch", "delete"):
                found.add((method.upper(), path))
    assert len(found) > 20, f"suspiciously few routes found: {sorted(found)}"
    return found


def bearer(secret: str) -> dict[str, str]:
    """The Authorization header of a key or session token."""
    return {"Authorization": f"Bearer {secret}"}


def run_cli(url: str, *args: str) -> tuple[int, str, str]:
    """`promptkeeper ARGS` in-process against the server at `url`: (exit code, stdout, stderr)."""
    from typer.testing import CliRunner

    from promptkeeper.cli import app as cli_app
    from tests.conftest import ADMIN_KEY

    result = CliRunner().invoke(
        cli_app, [*args], env={"PROMPTKEEPER_URL": url, "PROMPTKEEPER_API_KEY": ADMIN_KEY}
    )
    return result.exit_code, result.stdout, result.stderr


def ui_routes() -> list[tuple[str, str]]:
    """Every `(METHOD, path)` of the admin UI, from the router of each `promptkeeper.ui` module.

    The UI's routes are left out of the OpenAPI document that `app_routes` reads; walking the
    package finds a page module added later without anyone listing it here.
    """
    import promptkeeper.ui

    found: set[tuple[str, str]] = set()
    for module in pkgutil.iter_modules(promptkeeper.ui.__path__):
        router = getattr(importlib.import_module(f"promptkeeper.ui.{module.name}"), "router", None)
        for route in getattr(router, "routes", []):
            found.update((method, route.path) for method in getattr(route, "methods", ()))
    assert len(found) > 30, f"suspiciously few UI routes found: {sorted(found)}"
    return sorted(found)
