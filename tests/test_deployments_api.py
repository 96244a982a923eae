"""Deployments, rollback, history, derived status, resolution, time travel, render."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi.testclient import TestClient

from tests.helpers import add_version, chat_content, create_prompt, deploy, error_of


def _three_versions(client: TestClient, name: str = "p") -> None:
    create_prompt(client, name, "one {{ x }}")
    add_version(client, name, "two {{ x }}")
    add_version(client, name, "three {{ x }}")


def test_deploy_and_history(client: TestClient) -> None:
    _three_versions(client)
    first = deploy(client, "p", "production", 1, reason="launch")
    assert first["version"] == 1 and first["previous_version"] is None
    assert first["action"] == "deploy" and first["actor"] == "admin" and first["revision"] == 1
    assert first["reason"] == "launch" and first["environment"] == "production"
    second = deploy(client, "p", "production", 3)
    assert (second["previous_version"], second["revision"]) == (1, 2)
    deploy(client, "p", "staging", 2)
    history = client.get("/v1/prompts/p/deployments").json()
    assert [(d["environment"], d["version"]) for d in history["items"]] == [
        ("staging", 2),
        ("production", 3),
        ("production", 1),
    ]
    assert history["total"] == 3
    only_prod = client.get("/v1/prompts/p/deployments", params={"environment": "production"}).json()
    assert [d["version"] for d in only_prod["items"]] == [3, 1] and only_prod["total"] == 2
    prompt = client.get("/v1/prompts/p").json()
    assert prompt["environments"]["production"]["version"] == 3
    assert prompt["environments"]["production"]["previous_version"] == 1
    assert prompt["environments"]["staging"]["version"] == 2
    assert prompt["environments"]["development"] is None


def test_deploy_errors(client: TestClient) -> None:
    _three_versions(client)
    deploy(client, "p", "production", 2)
    cases = [
        ({"environment": "production", "version": 9}, 404, "no version 9"),
        ({"environment": "nowhere", "version": 1}, 404, "environment 'nowhere' not found"),
        ({"environment": "production", "version": 2}, 409, "already live"),
        ({"environment": "production", "version": 1, "expected_revision": 0}, 409, "revision 1, not 0"),
        ({"environment": "production"}, 422, "body.version"),
        ({"environment": "PROD", "version": 1}, 422, "body.environment"),
    ]
    for body, status, fragment in cases:
        response = client.post("/v1/prompts/p/deployments", json=body)
        assert response.status_code == status, (body, response.text)
        assert fragment in error_of(response)["message"], (fragment, response.text)
    assert (
        client.post(
            "/v1/prompts/nope/deployments", json={"environment": "production", "version": 1}
        ).status_code
        == 404
    )
    assert client.get("/v1/prompts/p/deployments").json()["total"] == 1
    ok = client.post(
        "/v1/prompts/p/deployments", json={"environment": "production", "version": 1, "expected_revision": 1}
    )
    assert ok.status_code == 201


def test_rollback_to_previous_and_to_named_version(client: TestClient) -> None:
    _three_versions(client)
    deploy(client, "p", "production", 1)
    deploy(client, "p", "production", 2)
    deploy(client, "p", "production", 3)
    back = client.post("/v1/prompts/p/rollback", json={"environment": "production", "reason": "bad answers"})
    assert back.status_code == 201, back.text
    body = back.json()
    assert (body["version"], body["previous_version"], body["action"]) == (2, 3, "rollback")
    assert body["reason"] == "bad answers" and body["revision"] == 4
    named = client.post("/v1/prompts/p/rollback", json={"environment": "production", "version": 1})
    assert named.status_code == 201
    assert (named.json()["version"], named.json()["previous_version"]) == (1, 2)
    assert client.get("/v1/resolve/p", params={"environment": "production"}).json()["version"] == 1
    history = client.get("/v1/prompts/p/deployments", params={"environment": "production"}).json()["items"]
    assert [(d["action"], d["version"]) for d in history] == [
        ("rollback", 1),
        ("rollback", 2),
        ("deploy", 3),
        ("deploy", 2),
        ("deploy", 1),
    ]
    # the history is a clean chain: each row's previous version is the row before it
    chronological = list(reversed(history))
    for before, after in zip(chronological, chronological[1:], strict=False):
        assert after["previous_version"] == before["version"]
        assert after["revision"] == before["revision"] + 1


def test_rollback_errors(client: TestClient) -> None:
    _three_versions(client)
    nothing = client.post("/v1/prompts/p/rollback", json={"environment": "production"})
    assert nothing.status_code == 409 and "nothing to roll back" in error_of(nothing)["message"]
    deploy(client, "p", "production", 2)
    single = client.post("/v1/prompts/p/rollback", json={"environment": "production"})
    assert single.status_code == 409 and "name a version" in error_of(single)["message"]
    same = client.post("/v1/prompts/p/rollback", json={"environment": "production", "version": 2})
    assert same.status_code == 409
    missing = client.post("/v1/prompts/p/rollback", json={"environment": "production", "version": 8})
    assert missing.status_code == 404
    assert client.get("/v1/prompts/p/deployments").json()["total"] == 1


def test_status_is_derived_from_history(client: TestClient) -> None:
    create_prompt(client, "s", "1")
    for template in ("2", "3", "4"):
        add_version(client, "s", template)
    deploy(client, "s", "production", 1)
    deploy(client, "s", "production", 2)
    deploy(client, "s", "staging", 3)
    statuses = {
        v["number"]: (v["status"], v["environments"])
        for v in client.get("/v1/prompts/s/versions").json()["items"]
    }
    assert statuses == {
        4: ("draft", []),
        3: ("testing", ["staging"]),
        2: ("production", ["production"]),
        1: ("archived", []),
    }
    deploy(client, "s", "staging", 2)
    assert client.get("/v1/prompts/s/versions/2").json()["environments"] == ["staging", "production"]
    assert client.get("/v1/prompts/s/versions/3").json()["status"] == "archived"


def test_resolve_with_etag(client: TestClient) -> None:
    create_prompt(client, "r", "Hello {{ name }}")
    missing = client.get("/v1/resolve/r", params={"environment": "production"})
    assert missing.status_code == 404
    assert error_of(missing)["message"] == "prompt 'r' has no version deployed to 'production'"
    deploy(client, "r", "production", 1)
    response = client.get("/v1/resolve/r")  # production is the default
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "r" and body["version"] == 1 and body["environment"] == "production"
    assert body["variables"] == ["name"] and body["revision"] == 1
    assert body["content"]["template"] == "Hello {{ name }}"
    etag = response.headers["etag"]
    assert etag.startswith('"')
    not_modified = client.get("/v1/resolve/r", headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    add_version(client, "r", "Hi {{ name }}")
    deploy(client, "r", "production", 2)
    changed = client.get("/v1/resolve/r", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.json()["version"] == 2
    assert changed.headers["etag"] != etag


def test_resolve_names_what_is_missing(client: TestClient) -> None:
    assert "prompt 'ghost' not found" in error_of(client.get("/v1/resolve/ghost"))["message"]
    create_prompt(client, "r")
    unknown_env = client.get("/v1/resolve/r", params={"environment": "moon"})
    assert unknown_env.status_code == 404 and "environment 'moon'" in error_of(unknown_env)["message"]
    bad_env = client.get("/v1/resolve/r", params={"environment": "../x"})
    assert bad_env.status_code == 422


def test_resolve_folder_names_encoded_or_not(client: TestClient) -> None:
    create_prompt(client, "team/greet")
    deploy(client, "team/greet", "production", 1)
    assert client.get("/v1/resolve/team%2Fgreet").json()["name"] == "team/greet"
    assert client.get("/v1/resolve/team/greet").json()["name"] == "team/greet"


def test_time_travel(client: TestClient) -> None:
    _three_versions(client, "t")
    d1 = deploy(client, "t", "production", 1)
    d2 = deploy(client, "t", "production", 2)
    d3 = client.post("/v1/prompts/t/rollback", json={"environment": "production"}).json()
    t1, t2, t3 = (datetime.fromisoformat(d["at"]) for d in (d1, d2, d3))
    assert t1 <= t2 <= t3

    def at(instant: datetime) -> dict[str, object]:
        response = client.get(
            "/v1/resolve/t", params={"environment": "production", "at": instant.isoformat()}
        )
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    assert at(t1)["version"] == 1
    assert at(t2)["version"] == 2
    assert at(t3)["version"] == 1
    assert at(t3 + timedelta(days=1))["version"] == 1
    assert at(t2)["at"] is not None
    naive = t2.replace(tzinfo=None).isoformat()  # naive instants are UTC
    assert client.get("/v1/resolve/t", params={"at": naive}).json()["version"] == 2
    before = client.get("/v1/resolve/t", params={"at": (t1 - timedelta(seconds=5)).isoformat()})
    assert before.status_code == 404 and " at " in error_of(before)["message"]
    other_zone = (t2 + timedelta(microseconds=1)).astimezone().isoformat()
    assert client.get("/v1/resolve/t", params={"at": other_zone}).json()["version"] == 2
    assert client.get("/v1/resolve/t", params={"at": "yesterday"}).status_code == 422


def test_render_text_and_chat(client: TestClient) -> None:
    create_prompt(client, "txt", "Hello {{ name }}, {{ topic }}")
    deploy(client, "txt", "production", 1)
    ok = client.post("/v1/render", json={"name": "txt", "variables": {"name": "Ada", "topic": "math"}})
    assert ok.status_code == 200, ok.text
    assert ok.json() == {
        "name": "txt",
        "version": 1,
        "environment": "production",
        "type": "text",
        "text": "Hello Ada, math",
        "messages": None,
        "config": {},
    }
    missing = client.post("/v1/render", json={"name": "txt", "variables": {"name": "Ada"}})
    assert missing.status_code == 422
    error = error_of(missing)
    assert error["details"]["missing"] == ["topic"] and "topic" in error["message"]
    client.post(
        "/v1/prompts",
        json={
            "name": "chat",
            "content": chat_content(
                {"role": "system", "content": "You are {{ persona }}."},
                {"type": "placeholder", "name": "history"},
                {"role": "user", "content": "{{ q }}"},
                config={"model": "m"},
            ),
        },
    )
    by_version = client.post(
        "/v1/render",
        json={
            "name": "chat",
            "version": 1,
            "variables": {"persona": "kind", "q": "hi", "history": [{"role": "user", "content": "before"}]},
        },
    )
    assert by_version.status_code == 200, by_version.text
    assert by_version.json()["messages"] == [
        {"role": "system", "content": "You are kind."},
        {"role": "user", "content": "before"},
        {"role": "user", "content": "hi"},
    ]
    assert by_version.json()["environment"] is None and by_version.json()["config"] == {"model": "m"}
    both = client.post("/v1/render", json={"name": "chat", "version": 1, "environment": "staging"})
    assert both.status_code == 422 and "not both" in error_of(both)["message"]
    undeployed = client.post("/v1/render", json={"name": "chat", "environment": "staging"})
    assert undeployed.status_code == 404
    unsafe = client.post(
        "/v1/prompts", json={"name": "unsafe", "content": {"type": "text", "template": "{{ x.__class__ }}"}}
    )
    assert unsafe.status_code == 201
    rendered = client.post("/v1/render", json={"name": "unsafe", "version": 1, "variables": {"x": 1}})
    assert rendered.status_code == 422 and "unsafe" in error_of(rendered)["message"]


def test_out_of_range_and_unicode_version_numbers_are_422(client: TestClient) -> None:
    """Found by tests/test_schemathesis.py: a version past 2**63 overflowed SQLite, and `?version=²`
    passed str.isdigit() but not int(): both were 500s."""
    create_prompt(client, "big")
    response = client.post(
        "/v1/prompts/big/deployments", json={"environment": "production", "version": 2**63}
    )
    assert response.status_code == 422 and "body.version" in error_of(response)["message"]
    assert client.get("/v1/prompts/big/deployments").json()["total"] == 0  # nothing stored
    for version in ("²", str(2**63), str(2**31)):
        response = client.get("/v1/resolve/big", params={"version": version})
        assert response.status_code == 422, response.text
        assert error_of(response)["message"].startswith("query.version: "), response.text
    response = client.get(f"/v1/prompts/big/versions/{2**63}")
    assert response.status_code == 422 and "path.number" in error_of(response)["message"]
