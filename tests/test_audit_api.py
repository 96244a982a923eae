"""`GET /v1/audit`: what the services record, and the filters that find it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from promptkeeper.access.service import DEFAULT_PROJECT, Role, create_api_key, get_project
from promptkeeper.bootstrap import create_project
from promptkeeper.config import Settings
from promptkeeper.db.engine import Database
from tests.helpers import add_version, create_prompt, deploy, error_of, text_content


def make_key(settings: Settings, role: Role, name: str, project: str = DEFAULT_PROJECT) -> dict[str, str]:
    """Authorization headers of a new key (in a new project when `project` is not the default)."""
    database = Database(settings)
    try:
        with database.write_session() as session:
            owner = (
                get_project(session=session, name=project)
                if project == DEFAULT_PROJECT
                else create_project(session=session, name=project)
            )
            secret = create_api_key(session=session, project=owner, name=name, role=role).secret
            session.commit()
    finally:
        database.dispose()
    return {"Authorization": f"Bearer {secret}"}


def audit(client: TestClient, headers: dict[str, str] | None = None, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/audit", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def actions(client: TestClient, **params: Any) -> list[str]:
    return [e["action"] for e in audit(client, **params)["items"]]


@pytest.fixture
def history(client: TestClient) -> TestClient:
    """alpha: created, v2, deployed to staging; beta: created."""
    create_prompt(client, "alpha")
    add_version(client, "alpha", "Hi {{ name }}")
    deploy(client, "alpha", "staging", 2)
    create_prompt(client, "beta")
    return client


def test_entries_newest_first(history: TestClient) -> None:
    body = audit(history)
    assert body["total"] == 6 and body["limit"] == 50 and body["offset"] == 0
    assert [(e["action"], e["target"]) for e in body["items"]] == [
        ("version.created", "beta@1"),
        ("prompt.created", "beta"),
        ("deployment.created", "alpha@staging"),
        ("version.created", "alpha@2"),
        ("version.created", "alpha@1"),
        ("prompt.created", "alpha"),
    ]
    ids = [e["id"] for e in body["items"]]
    assert ids == sorted(ids, reverse=True)
    deployment = body["items"][2]
    assert deployment["prompt"] == "alpha" and deployment["environment"] == "staging"
    assert deployment["actor"] == "admin" and deployment["severity"] == "info"
    assert deployment["summary"]["before"] == {"version": None}
    assert deployment["summary"]["after"]["version"] == 2
    assert set(deployment) == {
        "id",
        "at",
        "actor",
        "action",
        "target_type",
        "target",
        "prompt",
        "environment",
        "summary",
        "request_id",
        "severity",
    }


def test_filter_by_prompt_and_action(history: TestClient) -> None:
    assert actions(history, prompt="alpha") == [
        "deployment.created",
        "version.created",
        "version.created",
        "prompt.created",
    ]
    assert actions(history, prompt="nothing") == []
    assert audit(history, action="version.created")["total"] == 3
    assert actions(history, action="version.*") == ["version.created"] * 3
    assert actions(history, action="deployment.*") == ["deployment.created"]
    assert actions(history, action="deploy*") == ["deployment.created"]
    assert actions(history, action="version") == []  # no implicit prefix match
    assert actions(history, prompt="beta", action="prompt.*") == ["prompt.created"]
    assert audit(history, action="*")["total"] == 6


def test_filter_by_time(history: TestClient) -> None:
    entries = audit(history)["items"]
    middle = entries[2]  # deployment.created
    at = middle["at"]
    since = audit(history, since=at)["items"]
    assert [e["id"] for e in since] == [e["id"] for e in entries[:3]]
    until = audit(history, until=at)["items"]
    assert [e["id"] for e in until] == [e["id"] for e in entries[3:]]
    window = audit(history, since=entries[4]["at"], until=entries[1]["at"])["items"]
    assert [e["id"] for e in window] == [e["id"] for e in entries[2:5]]
    # A time without a zone is UTC.
    naive = datetime.fromisoformat(at).replace(tzinfo=None).isoformat()
    assert audit(history, since=naive)["total"] == 3
    assert audit(history, since="2000-01-01T00:00:00Z", until="2000-01-02T00:00:00+02:00")["total"] == 0


def test_filter_by_actor(history: TestClient, settings: Settings) -> None:
    bob = make_key(settings, Role.editor, name="bob")
    response = history.post("/v1/prompts", json={"name": "bobs", "content": text_content("x")}, headers=bob)
    assert response.status_code == 201
    assert actions(history, actor="bob") == ["version.created", "prompt.created"]
    assert audit(history, actor="admin")["total"] == 6
    assert audit(history, actor="nobody")["total"] == 0


def test_filter_by_request_id(client: TestClient) -> None:
    response = client.post(
        "/v1/prompts",
        json={"name": "traced", "content": text_content("x")},
        headers={"X-Request-ID": "abc-123"},
    )
    assert response.status_code == 201
    assert response.headers["X-Request-ID"] == "abc-123"
    create_prompt(client, "other")
    found = audit(client, request_id="abc-123")["items"]
    assert [(e["action"], e["target"], e["request_id"]) for e in found] == [
        ("version.created", "traced@1", "abc-123"),
        ("prompt.created", "traced", "abc-123"),
    ]
    # Without a header every request still gets an id, echoed and recorded.
    response = client.post("/v1/prompts", json={"name": "untraced", "content": text_content("x")})
    generated = response.headers["X-Request-ID"]
    assert actions(client, request_id=generated) == ["version.created", "prompt.created"]


def test_pagination(history: TestClient) -> None:
    everything = [e["id"] for e in audit(history)["items"]]
    first = audit(history, limit=4)
    second = audit(history, limit=4, offset=4)
    assert (first["total"], second["total"]) == (6, 6)
    assert [e["id"] for e in first["items"] + second["items"]] == everything
    assert audit(history, limit=4, offset=6)["items"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "query.limit"),
        ({"limit": 501}, "query.limit"),
        ({"offset": -1}, "query.offset"),
        ({"since": "yesterday"}, "query.since"),
        ({"until": "2026-13-01T00:00:00"}, "query.until"),
        ({"action": "Version.Created"}, "query.action"),
        ({"action": "version.*.created"}, "query.action"),
        ({"request_id": "x" * 65}, "query.request_id"),
    ],
)
def test_bad_queries(client: TestClient, params: dict[str, Any], field: str) -> None:
    response = client.get("/v1/audit", params=params)
    assert response.status_code == 422, response.text
    assert error_of(response)["details"]["errors"][0]["field"] == field


def test_readers_only(history: TestClient, settings: Settings) -> None:
    viewer = make_key(settings, Role.viewer, name="viewer-key")
    assert audit(history, headers=viewer)["total"] == 6
    runtime = make_key(settings, Role.runtime, name="runtime-key")
    response = history.get("/v1/audit", headers=runtime)
    assert response.status_code == 403 and error_of(response)["code"] == "permission_denied"
    history.headers.pop("Authorization")
    assert history.get("/v1/audit").status_code == 401


def test_projects_see_only_their_own_entries(history: TestClient, settings: Settings) -> None:
    other = make_key(settings, Role.admin, name="other-admin", project="other")
    response = history.post(
        "/v1/prompts", json={"name": "alpha", "content": text_content("x")}, headers=other
    )
    assert response.status_code == 201
    theirs = audit(history, headers=other)
    assert [(e["action"], e["actor"]) for e in theirs["items"]] == [
        ("version.created", "other-admin"),
        ("prompt.created", "other-admin"),
    ]
    assert audit(history, prompt="alpha")["total"] == 4
    assert audit(history, actor="other-admin")["total"] == 0
