"""Prompts: create, read, list, filter, metadata, names (SQLite and PostgreSQL)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.helpers import chat_content, create_prompt, error_of, quote_name, text_content


def test_create_prompt_returns_prompt_and_version_1(client: TestClient) -> None:
    response = client.post(
        "/v1/prompts",
        json={
            "name": "support/reply",
            "description": "Answer customers",
            "owner": "ada",
            "tags": ["support", "chat", "support"],
            "target_model": "gpt-4o-mini",
            "content": chat_content(
                {"role": "system", "content": "You help with {{ product }}."},
                {"type": "placeholder", "name": "history"},
                {"role": "user", "content": "{{ question }}"},
                config={"temperature": 0.2},
            ),
            "message": "first draft",
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "support/reply"
    assert body["tags"] == ["support", "chat"]
    assert body["latest_version"] == 1
    assert body["created_by"] == "admin"
    assert body["environments"] == {"development": None, "staging": None, "production": None}
    version = body["version"]
    assert version["number"] == 1 and version["parent"] is None
    assert version["variables"] == ["product", "question"]
    assert version["placeholders"] == ["history"]
    assert version["author"] == "admin" and version["message"] == "first draft"
    assert version["status"] == "draft" and version["environments"] == []
    assert len(version["content_hash"]) == 64
    assert version["content"]["config"] == {"temperature": 0.2}


def test_get_prompt_by_encoded_name(client: TestClient) -> None:
    create_prompt(client, "team/sub/greeting")
    response = client.get("/v1/prompts/team%2Fsub%2Fgreeting")
    assert response.status_code == 200
    assert response.json()["name"] == "team/sub/greeting"
    lower = client.get("/v1/prompts/team%2fsub%2fgreeting")
    assert lower.status_code == 200


def test_duplicate_name_is_409(client: TestClient) -> None:
    create_prompt(client, "dup")
    response = client.post("/v1/prompts", json={"name": "dup", "content": text_content("x")})
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "conflict" and "already exists" in error["message"]


def test_unknown_prompt_is_404_with_error_shape(client: TestClient) -> None:
    response = client.get("/v1/prompts/nope")
    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "not_found"
    assert "'nope'" in error["message"]


def test_list_filter_search_and_paginate(client: TestClient) -> None:
    for index in range(5):
        tags = ["even"] if index % 2 == 0 else ["odd"]
        create_prompt(client, f"p{index}", tags=tags, description=f"number {index}")
    create_prompt(client, "special", description="Has a 100%_weird description")
    listing = client.get("/v1/prompts", params={"limit": 2}).json()
    assert listing["total"] == 6 and len(listing["items"]) == 2 and listing["limit"] == 2
    assert [p["name"] for p in listing["items"]] == ["p0", "p1"]
    second = client.get("/v1/prompts", params={"limit": 2, "offset": 2}).json()
    assert [p["name"] for p in second["items"]] == ["p2", "p3"]
    even = client.get("/v1/prompts", params={"tag": "even"}).json()
    assert [p["name"] for p in even["items"]] == ["p0", "p2", "p4"] and even["total"] == 3
    assert client.get("/v1/prompts", params={"tag": "none"}).json()["total"] == 0
    search = client.get("/v1/prompts", params={"search": "NUMBER 3"}).json()
    assert [p["name"] for p in search["items"]] == ["p3"]
    weird = client.get("/v1/prompts", params={"search": "100%_"}).json()
    assert [p["name"] for p in weird["items"]] == ["special"]
    assert client.get("/v1/prompts", params={"search": "%"}).json()["total"] == 1
    assert all("environments" in item for item in listing["items"])


def test_update_metadata(client: TestClient) -> None:
    create_prompt(client, "meta", tags=["a"])
    response = client.patch("/v1/prompts/meta", json={"description": "new", "tags": ["b", "c"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["description"] == "new" and body["tags"] == ["b", "c"] and body["owner"] is None
    assert body["latest_version"] == 1
    again = client.get("/v1/prompts/meta").json()
    assert again["tags"] == ["b", "c"]
    assert client.patch("/v1/prompts/meta", json={"content": text_content("x")}).status_code == 422


def test_invalid_names_are_rejected_with_field(client: TestClient) -> None:
    bad_names = ["a|b", "-dash", "a//b", "a/../b", "a/", "/a", "sp ace", "x" * 129, "", "a/./b", "é"]
    for name in bad_names:
        response = client.post("/v1/prompts", json={"name": name, "content": text_content("x")})
        assert response.status_code == 422, name
        error = error_of(response)
        assert error["code"] == "validation_failed"
        assert "name" in error["message"], error
    assert client.get("/v1/prompts").json()["total"] == 0


def test_path_tricks_in_prompt_name(client: TestClient) -> None:
    create_prompt(client, "safe")
    for path in ["/v1/prompts/..%2Fsafe", "/v1/prompts/a%2F..%2Fsafe", "/v1/prompts/%2Fsafe"]:
        response = client.get(path)
        assert response.status_code == 422, path
        assert "path.name" in error_of(response)["message"]


def test_environments_default_and_custom(client: TestClient) -> None:
    listing = client.get("/v1/environments").json()
    assert [e["name"] for e in listing] == ["development", "staging", "production"]
    assert [e["production"] for e in listing] == [False, False, True]
    created = client.post("/v1/environments", json={"name": "canary", "description": "1% of traffic"})
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "canary"
    assert client.post("/v1/environments", json={"name": "canary"}).status_code == 409
    assert client.post("/v1/environments", json={"name": "Bad Name"}).status_code == 422
    create_prompt(client, "p")
    assert "canary" in client.get("/v1/prompts/p").json()["environments"]


def test_prompt_name_in_folder_roundtrip_in_listing(client: TestClient) -> None:
    create_prompt(client, "a/b")
    assert client.get(f"/v1/prompts/{quote_name('a/b')}/versions").json()["items"][0]["prompt"] == "a/b"


def test_nul_character_is_a_422_naming_the_field(client: TestClient) -> None:
    """PostgreSQL stores no NUL character: a name, filter or template with one was a 500 there
    (found by tests/test_schemathesis.py). Now it is a 422 naming the field on both backends."""
    create_prompt(client, "kept")
    template = {"name": "nul", "content": text_content("Hi\x00{{ x }}")}
    tag = {"name": "nul", "content": text_content("Hi"), "tags": ["ok", "\x00"]}
    cases = [
        (client.post("/v1/prompts", json=template), "body.content.template"),
        (client.post("/v1/prompts", json=tag), "body.tags[1]"),
        (client.get("/v1/prompts/nul%00"), "path.name"),
        (client.get("/v1/prompts", params={"tag": "a\x00"}), "query.tag"),
    ]
    for response, field in cases:
        assert response.status_code == 422, response.text
        error = error_of(response)
        assert error["code"] == "validation_failed", error
        assert error["message"] == f"{field}: must not contain the NUL character (\\u0000)", error
        assert [e["field"] for e in error["details"]["errors"]] == [field]
    assert [p["name"] for p in client.get("/v1/prompts").json()["items"]] == ["kept"]  # nothing stored
