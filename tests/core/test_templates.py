"""Sandboxed templates: variables, rendering, errors, hostile input (pure, no database)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from promptkeeper.core.templates import (
    MAX_OUTPUT_CHARS,
    InvalidTemplate,
    MissingVariables,
    RenderFailed,
    content_placeholders,
    content_variables,
    render_content,
    render_template,
    template_variables,
)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Hello", []),
        ("Hello {{ name }}", ["name"]),
        ("{{b}} {{ a }} {{ b }}", ["b", "a"]),
        ("{% for item in items %}{{ item }} {{ loop.index }}{% endfor %}", ["items"]),
        ("{% if tier == 'premium' %}{{ perk }}{% endif %}", ["tier", "perk"]),
        ("{% set x = 1 %}{{ x }} {{ y | upper }}", ["y"]),
        ("{{ user.name }} {{ range(3) | list }}", ["user"]),
        ("{{ name | default('friend') }}", ["name"]),
        ("{% for ex in examples %}{{ ex.q }}{% endfor %}", []),  # examples come from the content
    ],
)
def test_variables_in_order_of_first_use(source: str, expected: list[str]) -> None:
    assert template_variables(source) == expected


@pytest.mark.parametrize(
    ("source", "line", "fragment"),
    [
        ("Hello {{ name }", 1, "unexpected '}'"),
        ("line one\nline two {% if x %}\nno end", 2, "endif"),
        ("{% for x in %}{% endfor %}", 1, "Expected an expression"),
        ("ok\n{{ }}", 2, "Expected an expression"),
        ("{% include 'other.txt' %}", 1, "'include' is not allowed"),
        ("{% import 'macros' as m %}", 1, "'import' is not allowed"),
        ("a\n{% extends 'base' %}", 2, "'extends' is not allowed"),
        ("{% from 'x' import y %}", 1, "'from ... import' is not allowed"),
        ("{% import os %}", 1, "expected token 'as'"),
    ],
)
def test_invalid_templates_name_the_line(source: str, line: int, fragment: str) -> None:
    with pytest.raises(InvalidTemplate) as info:
        template_variables(source, field="template")
    assert info.value.line == line
    assert info.value.field == "template"
    assert fragment in info.value.message
    assert info.value.message.startswith(f"line {line}:")


@pytest.mark.parametrize(
    ("source", "variables", "expected"),
    [
        ("Hello {{ name }}!", {"name": "Ada"}, "Hello Ada!"),
        ("{% for i in items %}[{{ i }}]{% endfor %}", {"items": [1, 2]}, "[1][2]"),
        ("{{ name | default('friend') }}", {}, "friend"),
        ("{% if x is defined %}{{ x }}{% else %}none{% endif %}", {}, "none"),
        ("{{ n * 2 }}", {"n": 21}, "42"),
        ("{{ data.key }}", {"data": {"key": "v"}}, "v"),
        ("trailing\n", {}, "trailing\n"),
        ("{{ '<b>' }}", {}, "<b>"),  # no HTML escaping: prompts are not HTML
    ],
)
def test_render_template(source: str, variables: dict[str, Any], expected: str) -> None:
    assert render_template(source, variables) == expected


def test_missing_variables_are_named_never_empty() -> None:
    content = {"type": "text", "template": "Hi {{ name }}, about {{ topic }} and {{ name }}"}
    with pytest.raises(MissingVariables) as info:
        render_content(content, {})
    assert info.value.names == ["name", "topic"]
    assert "name" in str(info.value) and "topic" in str(info.value)
    with pytest.raises(MissingVariables) as partial:
        render_content(content, {"name": "x"})
    assert partial.value.names == ["topic"]


def test_missing_variable_inside_condition() -> None:
    content = {"type": "text", "template": "{% if flag %}{{ detail }}{% endif %}"}
    assert render_content(content, {"flag": False}) == ""
    with pytest.raises(MissingVariables) as info:
        render_content(content, {"flag": True})
    assert info.value.names == ["detail"]


def test_chat_render_with_placeholder_and_examples() -> None:
    content = {
        "type": "chat",
        "messages": [
            {
                "role": "system",
                "content": "Be brief. {% for e in examples %}Q:{{ e.q }} A:{{ e.a }} {% endfor %}",
            },
            {"type": "placeholder", "name": "history"},
            {"role": "user", "content": "{{ question }}"},
        ],
        "examples": [{"q": "1+1", "a": "2"}],
    }
    assert content_variables(content) == ["question"]
    assert content_placeholders(content) == ["history"]
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert render_content(content, {"question": "why?", "history": history}) == [
        {"role": "system", "content": "Be brief. Q:1+1 A:2 "},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "why?"},
    ]
    assert render_content(content, {"question": "q", "history": []})[1] == {"role": "user", "content": "q"}


def test_chat_missing_placeholder_and_variable_reported_together() -> None:
    content = {
        "type": "chat",
        "messages": [{"type": "placeholder", "name": "history"}, {"role": "user", "content": "{{ q }}"}],
    }
    with pytest.raises(MissingVariables) as info:
        render_content(content, {})
    assert info.value.names == ["q", "history"]
    with pytest.raises(MissingVariables) as only_placeholder:
        render_content(content, {"q": "x"})
    assert only_placeholder.value.names == ["history"]


@pytest.mark.parametrize("bad", ["not a list", [{"content": "no role"}], [1, 2]])
def test_placeholder_needs_messages(bad: Any) -> None:
    content = {"type": "chat", "messages": [{"type": "placeholder", "name": "history"}]}
    with pytest.raises(RenderFailed, match="placeholder 'history'"):
        render_content(content, {"history": bad})


@pytest.mark.parametrize(
    "payload",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__.os }}",
        "{{ lipsum.__globals__['os'].popen('id').read() }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ x.__class__ }}",
        "{{ items.append(1) }}",
        "{{ config.__class__.__base__.__subclasses__() }}",
        "{{ (x|attr('__class__')) }}",
        "{{ self.__init__.__globals__ }}",
    ],
)
def test_template_injection_is_neutralised(payload: str) -> None:
    content = {"type": "text", "template": payload}
    with pytest.raises((RenderFailed, MissingVariables)):
        render_content(content, {"x": "s", "items": [], "config": {}})


def test_range_and_output_size_are_bounded() -> None:
    started = time.monotonic()
    with pytest.raises(RenderFailed, match="(?i)range too big"):
        render_template("{% for i in range(10**9) %}x{% endfor %}", {})
    with pytest.raises(RenderFailed, match="exceeds"):
        render_template("{% for i in range(99999) %}{{ 'x' * 1000 }}{% endfor %}", {})
    assert MAX_OUTPUT_CHARS == 1_000_000
    assert time.monotonic() - started < 5


def test_slow_template_hits_the_deadline() -> None:
    started = time.monotonic()
    with pytest.raises(RenderFailed, match="longer than"):
        render_template(
            "{% for i in range(99999) %}{% for j in range(99999) %}"
            "{% if j.real %}{% endif %}{% endfor %}{% endfor %}",
            {},
        )
    assert time.monotonic() - started < 10


def test_deep_recursion_is_an_error() -> None:
    source = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"
    with pytest.raises(RenderFailed):
        render_template(source, {})


def test_type_errors_become_render_errors() -> None:
    with pytest.raises(RenderFailed, match="TypeError|unsupported"):
        render_template("{{ a + b }}", {"a": 1, "b": "x"})
    with pytest.raises(RenderFailed):
        render_template("{{ a / 0 }}", {"a": 1})


def test_compiled_templates_kept_are_bounded() -> None:
    """Every saved version is parsed once; a server saving versions all day must not keep them all
    (the soak's RSS growth: 4,096 compiled templates are about 12 MB)."""
    import gc
    import tracemalloc

    from promptkeeper.core.templates import PARSE_CACHE_SIZE, template_variables

    def parse(first: int, count: int) -> int:
        for i in range(first, first + count):
            template_variables(f"version {i}: {{{{ name }}}} {{% if x %}}{i}{{% endif %}}")
        gc.collect()
        return tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    try:
        full = parse(0, 2 * PARSE_CACHE_SIZE)  # the cache is full: from here entries are replaced
        later = parse(2 * PARSE_CACHE_SIZE, 2 * PARSE_CACHE_SIZE)
    finally:
        tracemalloc.stop()
    assert later - full < 256 * 1024, f"{later - full:,} bytes more after {2 * PARSE_CACHE_SIZE} templates"
