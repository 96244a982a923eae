"""A lone UTF-16 surrogate (`"\\ud800"` in JSON) anywhere in a body: 422 naming the field, nothing stored.

JSON may spell one; Python decodes it to a string that UTF-8 cannot encode. Stored as-is it made
PostgreSQL's jsonb refuse the insert (a 500), or SQLite keep it so that every later read of the
object failed to serialise (a suite whose cases list answered 500 for good). Both backends.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import create_prompt, deploy, error_of

JSON = "application/json"
HIGH, LOW = "\\ud800", "\\udfff"  # as they travel: JSON escapes, since UTF-8 cannot carry them


def _raw(
    client: TestClient, method: str, path: str, body: str, content_type: str = "application/json"
) -> Any:
    return client.request(method, path, content=body.encode(), headers={"Content-Type": content_type})


CASES = [
    # (route, method, path, body with a lone surrogate, the field the 422 must name)
    (
        "render variables",
        "POST",
        "/v1/render",
        '{"name": "p", "variables": {"name": "x' + HIGH + '"}}',
        "body.variables.name",
    ),
    (
        "render variable name",
        "POST",
        "/v1/render",
        '{"name": "p", "variables": {"n' + LOW + '": "x"}}',
        "body.variables.n\\udfff",
    ),
    (
        "outcome metric key",
        "POST",
        "/v1/events",
        '{"events": [{"type": "outcome", "request_id": "r1", "metrics": {"m' + HIGH + '": 1}}]}',
        "body.events[0].metrics.m\\ud800",
    ),
    (
        "suite case variables",
        "POST",
        "/v1/suites",
        '{"name": "s2", "scorers": [{"name": "exact_match"}], "cases": [{"key": "a", "variables": {"q": "'
        + HIGH
        + '"}}]}',
        "body.cases[0].variables.q",
    ),
    (
        "suite version case",
        "POST",
        "/v1/suites/s/versions",
        '{"cases": [{"key": "a", "expected": "' + LOW + '"}]}',
        "body.cases[0].expected",
    ),
    (
        "config key",
        "POST",
        "/v1/prompts",
        '{"name": "q", "content": {"type": "text", "template": "t", "config": {"k' + HIGH + '": 1}}}',
        "body.content.config.k\\ud800",
    ),
    (
        "config value of a version",
        "POST",
        "/v1/prompts/p/versions",
        '{"content": {"type": "text", "template": "t2", "config": {"model": "' + HIGH + '"}}}',
        "body.content.config.model",
    ),
    (
        "template",
        "POST",
        "/v1/prompts/p/versions",
        '{"content": {"type": "text", "template": "' + LOW + '"}}',
        "body.content.template",
    ),
    (
        "a pair split by another escape",
        "PATCH",
        "/v1/prompts/p",
        '{"description": "\\ud83d\\u0041\\ude00"}',
        "body.description",
    ),
]


@pytest.mark.parametrize(("route", "method", "path", "body", "field"), CASES, ids=[c[0] for c in CASES])
def test_lone_surrogate_in_a_json_body_is_a_422_naming_the_field(
    client: TestClient, route: str, method: str, path: str, body: str, field: str
) -> None:
    create_prompt(client, "p", "Hi {{ name }}")
    deploy(client, "p", "production", 1)
    suite = client.post("/v1/suites", json={"name": "s", "scorers": [{"name": "exact_match"}]})
    assert suite.status_code == 201, suite.text
    audit_before = client.get("/v1/audit", params={"limit": 1}).json()["total"]

    response = _raw(client, method, path, body)
    assert response.status_code == 422, (route, response.status_code, response.text)
    error = error_of(response)
    assert field in error["message"], error
    assert [e["field"] for e in error["details"]["errors"]] == [field]

    # nothing stored, and everything still reads
    assert client.get("/v1/audit", params={"limit": 1}).json()["total"] == audit_before
    assert client.get("/v1/prompts/p/versions").json()["total"] == 1
    assert client.get("/v1/prompts/q").status_code == 404
    assert client.get("/v1/prompts/p").json()["description"] == ""
    assert client.get("/v1/suites/s/cases").status_code == 200
    assert [s["name"] for s in client.get("/v1/suites").json()] == ["s"]


EMOJI = '{"name": "e", "content": {"type": "text", "template": "\\ud83d\\ude00"}}'


def test_a_valid_surrogate_pair_is_an_ordinary_character(client: TestClient) -> None:
    response = _raw(
        client,
        "POST",
        "/v1/prompts",
        EMOJI,
    )
    assert response.status_code == 201, response.text
    assert client.get("/v1/prompts/e/versions/1").json()["content"]["template"] == "\U0001f600"


@pytest.mark.parametrize(
    ("fmt", "body", "line"),
    [
        (
            "jsonl",
            '{"key": "a", "variables": {"q": "ok"}}\n{"key": "b", "variables": {"q": "' + HIGH + '"}}\n',
            2,
        ),
        ("csv", 'key,q,scorers\na,ok,\nb,x,"[{""name"": ""exact' + LOW + '""}]"\n', 3),
    ],
)
def test_lone_surrogate_in_an_imported_case_is_a_422_naming_the_line(
    client: TestClient, fmt: str, body: str, line: int
) -> None:
    assert (
        client.post("/v1/suites", json={"name": "s", "scorers": [{"name": "exact_match"}]}).status_code == 201
    )
    response = _raw(client, "POST", f"/v1/suites/s/import?format={fmt}", body, "text/plain")
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert f"line {line}" in error["message"] and error["details"]["line"] == line
    assert client.get("/v1/suites/s").json()["version"] == 1  # no new version
    assert client.get("/v1/suites/s/cases").status_code == 200


def test_invalid_utf8_in_a_ui_form_is_a_422_not_replacement_characters(client: TestClient) -> None:
    """Browsers send UTF-8; bytes that are not (a surrogate's encoding, a stray 0xFF) were stored as
    U+FFFD in place of what was typed."""
    import re

    assert (
        client.post("/v1/users", json={"email": "ed@example.com", "role": "editor", "password": "p" * 12})
    ).status_code == 201
    create_prompt(client, "p", "v1")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    refused = client.post("/ui/login", content=b"email=a%ED%A0%80b&password=x", headers=form)
    assert refused.status_code == 422 and error_of(refused)["details"]["field"] == "form.email"
    page = client.get("/ui/login").text
    token = dict(re.findall(r'name="(login_csrf)" value="([^"]+)"', page))
    signed = client.post(
        "/ui/login",
        data={"email": "ed@example.com", "password": "p" * 12, **token},
        follow_redirects=False,
    )
    assert signed.status_code == 303, signed.text
    csrf = re.findall(r'name="csrf" value="([^"]+)"', client.get("/ui/prompts/p").text)[0]
    for raw in (b"a%FFb", b"a\xffb", b"%ED%B0%80"):
        posted = client.post(
            "/ui/prompts/p/versions",
            content=b"csrf=" + csrf.encode() + b"&type=text&message=m&template=" + raw,
            headers=form,
        )
        assert posted.status_code == 422 and "form.template" in posted.text, (raw, posted.text)
    assert client.get("/v1/prompts/p/versions").json()["total"] == 1
