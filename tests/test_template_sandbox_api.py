"""Hostile templates through the HTTP API: refused with a 4xx naming the field, nothing stored, quickly."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from promptkeeper.core.templates import RENDER_TIMEOUT
from tests.helpers import chat_content, create_prompt, error_of, text_content

BOUND = RENDER_TIMEOUT + 3.0


@pytest.mark.parametrize(
    ("content", "field", "fragment"),
    [
        (text_content("{% include '/etc/passwd' %}"), "content.template", "'include' is not allowed"),
        (
            chat_content(
                {"role": "system", "content": "hi"}, {"role": "user", "content": "{% extends 'x' %}"}
            ),
            "content.messages[1].content",
            "'extends' is not allowed",
        ),
        # regression: a number literal over Python's int() limit was a 500
        (text_content("{{ 1" + "0" * 5000 + " }}"), "content.template", "integer string conversion"),
        # regression: an unknown filter escaped variable discovery (a 500)
        (text_content("line 1\n{{ name|nosuch }}"), "content.template", "line 2: No filter named 'nosuch'"),
        # regression: deeply nested parentheses overflowed the parser's stack (a 500)
        (
            text_content("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}"),
            "content.template",
            "nested too deeply",
        ),
    ],
)
def test_template_refused_at_save_stores_nothing(
    client: TestClient, content: dict[str, object], field: str, fragment: str
) -> None:
    response = client.post("/v1/prompts", json={"name": "evil", "content": content})
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["details"]["field"] == field
    assert fragment in error["message"]
    assert "root:" not in response.text
    assert client.get("/v1/prompts/evil").status_code == 404
    create_prompt(client, "good", "fine")
    response = client.post("/v1/prompts/good/versions", json={"content": content})
    assert response.status_code == 422
    assert client.get("/v1/prompts/good").json()["latest_version"] == 1


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("{{ [0] * 10**9 }}", "repeated list would be longer than 100000 items"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "'__class__' of 'str' object is unsafe"),
        ("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}", "longer than 2 s"),
    ],
)
def test_hostile_template_saves_quickly_and_fails_to_render(
    client: TestClient, template: str, fragment: str
) -> None:
    started = time.monotonic()
    create_prompt(client, "evil", template)  # saving only parses (it used to evaluate `[0] * 10**9`)
    # evaluating at save took 200 s; 3.3 s was seen for a plain save beside a CPU hog
    assert time.monotonic() - started < BOUND
    started = time.monotonic()
    response = client.post("/v1/render", json={"name": "evil", "version": 1})
    assert time.monotonic() - started < BOUND
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["details"]["field"] == "template"
    assert fragment in error["message"]
    assert "<class" not in response.text and " at 0x" not in response.text
