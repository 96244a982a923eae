"""Versions: numbering, immutability, optimistic concurrency, template errors, diff."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from promptkeeper.config import Settings
from tests.helpers import add_version, chat_content, create_prompt, error_of, text_content


def test_versions_number_up_with_parent_and_author(client: TestClient) -> None:
    create_prompt(client, "p", "v1 {{ a }}")
    v2 = add_version(client, "p", "v2 {{ a }} {{ b }}", message="add b")
    v3 = add_version(client, "p", "v3")
    assert (v2["number"], v2["parent"], v2["message"]) == (2, 1, "add b")
    assert v2["variables"] == ["a", "b"]
    assert (v3["number"], v3["parent"], v3["variables"]) == (3, 2, [])
    listing = client.get("/v1/prompts/p/versions").json()
    assert [v["number"] for v in listing["items"]] == [3, 2, 1]
    assert listing["total"] == 3
    page = client.get("/v1/prompts/p/versions", params={"limit": 1, "offset": 1}).json()
    assert [v["number"] for v in page["items"]] == [2]
    one = client.get("/v1/prompts/p/versions/1").json()
    assert one["content"] == {"type": "text", "template": "v1 {{ a }}", "examples": [], "config": {}}
    assert client.get("/v1/prompts/p").json()["latest_version"] == 3


def test_unknown_version_is_404(client: TestClient) -> None:
    create_prompt(client, "p")
    response = client.get("/v1/prompts/p/versions/7")
    assert response.status_code == 404
    assert "no version 7 (latest is 1)" in error_of(response)["message"]
    assert client.get("/v1/prompts/p/versions/0").status_code == 422


def test_unchanged_content_is_409_unless_allowed(client: TestClient) -> None:
    create_prompt(client, "p", "same")
    response = client.post("/v1/prompts/p/versions", json={"content": text_content("same")})
    assert response.status_code == 409
    error = error_of(response)
    assert "identical to version 1" in error["message"] and error["details"]["head_version"] == 1
    # key order and explicit nulls do not make content different
    reordered = {"config": {}, "template": "same", "type": "text", "response_schema": None}
    assert client.post("/v1/prompts/p/versions", json={"content": reordered}).status_code == 409
    allowed = client.post(
        "/v1/prompts/p/versions", json={"content": text_content("same"), "allow_duplicate": True}
    )
    assert allowed.status_code == 201 and allowed.json()["number"] == 2


def test_base_version_conflict_names_head(client: TestClient) -> None:
    create_prompt(client, "p", "one")
    add_version(client, "p", "two", base_version=1)
    stale = client.post("/v1/prompts/p/versions", json={"content": text_content("three"), "base_version": 1})
    assert stale.status_code == 409
    error = error_of(stale)
    assert error["details"]["head_version"] == 2 and "at version 2" in error["message"]
    assert client.get("/v1/prompts/p").json()["latest_version"] == 2


@pytest.mark.parametrize(
    ("content", "field", "line"),
    [
        (text_content("ok\n{{ broken }"), "content.template", 2),
        (
            chat_content({"role": "system", "content": "fine"}, {"role": "user", "content": "{% if x %}"}),
            "content.messages[1].content",
            1,
        ),
        (text_content("{% include 'x' %}"), "content.template", 1),
    ],
)
def test_template_errors_are_422_with_field_and_line(
    client: TestClient, content: dict[str, object], field: str, line: int
) -> None:
    create_prompt(client, "p")
    response = client.post("/v1/prompts/p/versions", json={"content": content})
    assert response.status_code == 422
    error = error_of(response)
    assert error["details"]["field"] == field and error["details"]["line"] == line
    assert field in error["message"] and f"line {line}" in error["message"]
    assert client.get("/v1/prompts/p").json()["latest_version"] == 1
    # a broken template on create: nothing is stored
    created = client.post("/v1/prompts", json={"name": "broken", "content": content})
    assert created.status_code == 422
    assert client.get("/v1/prompts/broken").status_code == 404


def test_bad_bodies_are_422_naming_the_field(client: TestClient) -> None:
    create_prompt(client, "p")
    cases = [
        ({}, "body.content"),
        ({"content": {"type": "text"}}, "body.content.text.template"),
        (
            {"content": {"type": "chat", "messages": [{"role": "two words", "content": "x"}]}},
            "body.content.chat.messages[0]",
        ),
        ({"content": text_content("x"), "base_version": 0}, "body.base_version"),
        ({"content": text_content("x"), "surprise": 1}, "body.surprise"),
    ]
    for body, field in cases:
        response = client.post("/v1/prompts/p/versions", json=body)
        assert response.status_code == 422, body
        error = error_of(response)
        assert field in error["message"], (field, error)
        assert any(e["field"].startswith(field) for e in error["details"]["errors"])
    not_json = client.post(
        "/v1/prompts/p/versions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422
    assert error_of(not_json)["code"] == "validation_failed"
    assert client.get("/v1/prompts/p").json()["latest_version"] == 1


def test_no_route_modifies_a_version(client: TestClient) -> None:
    create_prompt(client, "p", "original")
    for method in ("PUT", "PATCH", "DELETE"):
        response = client.request(
            method, "/v1/prompts/p/versions/1", json={"content": text_content("changed")}
        )
        assert response.status_code == 405, method
        assert error_of(response)["code"] == "method_not_allowed"
    assert client.get("/v1/prompts/p/versions/1").json()["content"]["template"] == "original"


def test_database_rejects_version_update(client: TestClient, settings: Settings) -> None:
    create_prompt(client, "p", "original")
    engine = create_engine(settings.database_url)
    try:
        with pytest.raises(DBAPIError, match="immutable"):
            with engine.begin() as connection:
                connection.execute(
                    text("UPDATE prompt_versions SET content = :c"),
                    {"c": '{"type":"text","template":"evil"}'},
                )
        with pytest.raises(DBAPIError, match="immutable"):
            with engine.begin() as connection:
                connection.execute(text("UPDATE prompt_versions SET message = 'rewritten'"))
    finally:
        engine.dispose()
    assert client.get("/v1/prompts/p/versions/1").json()["content"]["template"] == "original"


def test_diff_between_versions(client: TestClient) -> None:
    client.post(
        "/v1/prompts",
        json={"name": "d", "content": text_content("Hello {{ name }}\nBye", config={"temperature": 0.2})},
    )
    client.post(
        "/v1/prompts/d/versions",
        json={"content": text_content("Hi {{ name }}\nBye", config={"temperature": 0.7, "model": "m"})},
    )
    response = client.get("/v1/prompts/d/diff", params={"from": 1, "to": 2})
    assert response.status_code == 200, response.text
    diff = response.json()
    assert (diff["from_version"], diff["to_version"]) == (1, 2)
    assert diff["changed_fields"] == ["template", "config"]
    assert {"path": "config.temperature", "kind": "changed", "before": 0.2, "after": 0.7} in diff["changes"]
    assert {"path": "config.model", "kind": "added", "before": None, "after": "m"} in diff["changes"]
    assert "-Hello {{ name }}" in diff["unified"]["template"]
    assert "+Hi {{ name }}" in diff["unified"]["template"]
    assert '+  "temperature": 0.7' in diff["unified"]["config"]
    same = client.get("/v1/prompts/d/diff", params={"from": 2, "to": 2}).json()
    assert same["changes"] == [] and same["unified"] == {}
    assert client.get("/v1/prompts/d/diff", params={"from": 1, "to": 9}).status_code == 404
    missing = client.get("/v1/prompts/d/diff", params={"from": 1})
    assert missing.status_code == 422 and "query.to" in error_of(missing)["message"]
