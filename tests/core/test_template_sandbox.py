"""Server-side template injection: a table of hostile templates and what the sandbox makes of them.

Each payload must be refused when the version is saved (`InvalidTemplate`), refused when rendered
(`RenderFailed` / `MissingVariables`), or render harmlessly, and always quickly: saving within
`SAVE_BOUND` seconds (saving only parses), rendering within the deadline plus slack. Nothing that
looks like a file's content, an object's repr or a memory address may come back, in the output or
in the error message. The bounds are safety properties, not benchmarks.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from promptkeeper.core.templates import (
    RENDER_TIMEOUT,
    InvalidTemplate,
    MissingVariables,
    RenderFailed,
    TemplateError,
    render_content,
    template_variables,
)

SAVE_BOUND = 1.0
RENDER_BOUND = RENDER_TIMEOUT + 3.0
LEAKS = (
    "root:",
    "<function",
    "<class",
    "<module",
    " at 0x",
    "__builtins__",
    "<built-in",
    "Popen",
    "<Template",
)
VARIABLES: dict[str, Any] = {"x": "s", "items": [1, 2]}

# (payload, outcome, fragment): outcome "invalid" = refused at save, "failed" = RenderFailed at render,
# "missing" = MissingVariables naming `fragment`, "ok" = renders to exactly `fragment`.
PAYLOADS: list[tuple[str, str, str]] = [
    # Python internals
    ("{{ ''.__class__.__mro__ }}", "failed", "access to attribute '__class__' of 'str' object is unsafe"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "failed", "'__class__' of 'str' object is unsafe"),
    ("{{ [].__class__.__base__.__subclasses__() }}", "failed", "'__class__' of 'list' object is unsafe"),
    ("{{ cycler.__init__.__globals__ }}", "failed", "'__init__' of 'type' object is unsafe"),
    ("{{ joiner.__init__.__globals__.os }}", "failed", "'__init__' of 'type' object is unsafe"),
    ("{{ lipsum.__globals__ }}", "failed", "'__globals__' of 'function' object is unsafe"),
    ("{{ lipsum.__globals__['os'].popen('id').read() }}", "failed", "'__globals__' of 'function'"),
    ("{{ namespace.__init__.__globals__ }}", "failed", "'__init__' of 'type' object is unsafe"),
    ("{{ self.__dict__ }}", "failed", "'__dict__' of 'TemplateReference' object is unsafe"),
    ("{{ self._TemplateReference__context }}", "failed", "is unsafe"),
    ("{{ x|attr('__class__') }}", "failed", "'__class__' of 'str' object is unsafe"),
    ("{{ '{0.__class__}'.format(x) }}", "failed", "'__class__' of 'str' object is unsafe"),
    ("{{ '{a.__class__.__mro__}'.format_map({'a': x}) }}", "failed", "is unsafe"),
    ("{{ '%s' % x.__class__ }}", "failed", "'__class__' of 'str' object is unsafe"),
    ("{{ items.append(1) }}", "failed", "'append' of 'list' object is unsafe"),
    ("{% set x = [] %}{% for i in range(10) %}{{ x.append(i) }}{% endfor %}", "failed", "'append'"),
    # Names a web framework would offer: nothing of the kind exists here
    ("{{ config }}", "missing", "config"),
    ("{{ request }}", "missing", "request"),
    ("{{ config.__class__.__init__.__globals__['os'] }}", "failed", "of 'StrictUndefined' object is unsafe"),
    # Objects whose text is a memory address
    ("{{ self }}", "failed", "a TemplateReference cannot be printed"),
    ("{{ lipsum }}", "failed", "a function cannot be printed"),
    ("{{ ''.format }}", "failed", "cannot be printed"),
    ("{{ cycler(1, 2) }}", "failed", "a Cycler cannot be printed"),
    ("{% macro m() %}{% endmacro %}{{ m }}", "failed", "a Macro cannot be printed"),
    # Other templates and modules
    ("{% import os %}", "invalid", "expected token 'as'"),
    ("{% import 'os' as os %}", "invalid", "'import' is not allowed"),
    ("{% include '/etc/passwd' %}", "invalid", "'include' is not allowed"),
    ("{% extends 'x' %}", "invalid", "'extends' is not allowed"),
    ("{% from 'os' import path %}", "invalid", "'from ... import' is not allowed"),
    # Time
    ("{% for i in range(10**9) %}x{% endfor %}", "failed", "Range too big"),
    ("{% for i in range(10**7) %}{{ i }}{% endfor %}", "failed", "Range too big"),
    (
        "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
        "failed",
        "longer than",
    ),
    ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "failed", "RecursionError"),
    ("{% for i in [[1]] recursive %}{{ loop([i]) }}{% endfor %}", "failed", "RecursionError"),
    (
        "{% macro f(n) %}{% if n < 40 %}{{ f(n+1) }}{{ f(n+1) }}{% endif %}{% endmacro %}{{ f(0) }}",
        "failed",
        "longer than",
    ),
    ("{{ ([[1]] * 100000)|sum(start=[])|length }}", "failed", "longer than"),
    # Memory: strings and lists
    ("{{ 'a' * 10**9 }}", "failed", "repeated text would be longer than 1000000 characters"),
    ("{{ (('a'*1000)*1000)*1000 }}", "failed", "repeated text would be longer than 1000000 characters"),
    ("{{ [0] * 10**9 }}", "failed", "repeated list would be longer than 100000 items"),
    ("{{ range(100000)|list * 100000 }}", "failed", "repeated list would be longer than 100000 items"),
    ("{% set a = 'x' * 1000000 %}{% set b = a ~ a %}{{ b|length }}", "failed", "text is longer than"),
    ("{% set a = 'x' * 600000 %}{{ a + a }}", "failed", "joined text would be longer"),
    (
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "failed",
        "text is longer than",
    ),
    ("{{ 'x'|center(10**9) }}", "failed", "padded text would be longer"),
    ("{{ 'x'.ljust(10**9) }}", "failed", "padded text would be longer"),
    ("{{ '\t'.expandtabs(10**9) }}", "failed", "expanded text would be longer"),
    ("{{ 'x'|indent(10**9) }}", "failed", "indented text would be longer"),
    ("{{ ('a' * 100000)|replace('', 'x' * 100000) }}", "failed", "replaced text would be longer"),
    ("{{ range(100000)|join('x' * 100000) }}", "failed", "joined text would be longer"),
    ("{{ [1]|batch(10**9, 'x')|list }}", "failed", "batch result would be longer"),
    ("{{ '%0999999999d'|format(1) }}", "failed", "formatted field would be longer"),
    ("{{ '%*d' % (10**9, 1) }}", "failed", "formatted field would be longer"),
    ("{{ '{:>1000000000}'.format(1) }}", "failed", "formatted field would be longer"),
    ("{{ '{:{}}'.format(1, 10**9) }}", "failed", "formatted field would be longer"),
    ("{{ ('a' * 1000000)|wordwrap(1) }}", "failed", "would take too long"),
    ("{{ ('a. ' * 300000)|urlize }}", "failed", "would take too long"),
    ("{{ lipsum(10**6) }}", "failed", "lorem ipsum would be longer"),
    # Memory and time: integers
    ("{{ 9**9**9 }}", "ok", str((9**9) ** 9)),  # Jinja's ** is left-associative: (9**9)**9
    ("{{ 9**(9**9) }}", "failed", "more than 4300 digits"),
    ("{{ 10**1000000 }}", "failed", "more than 4300 digits"),
    ("{{ (10**4000) * (10**4000) }}", "failed", "more than 4300 digits"),
    ("{{ 1" + "0" * 5000 + " }}", "invalid", "integer string conversion"),
    ("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}", "invalid", "nested too deeply"),
    # Found by the property tests (tests/core/test_properties.py): each escaped as a non-template error
    ("{{ a|nosuch }}", "invalid", "No filter named 'nosuch'"),
    ("{% for v in items|upper.name %}{% endfor %}", "invalid", "No filter named 'upper.name'"),
    ("{{ (1).name ~ 'x' }}", "failed", "'int object' has no attribute 'name'"),
    ("{{ 1[1:] }}", "failed", "TypeError"),
    ("{{ [1, 2]|unique }}", "failed", "cannot be printed (add '|list')"),
    # Harmless look-alikes render as text
    ("{{ '{{ 7*7 }}' }}", "ok", "{{ 7*7 }}"),
    ("{% raw %}{{ ''.__class__ }}{% endraw %}", "ok", "{{ ''.__class__ }}"),
    (
        "{{ '%s'|format(x) }} {{ '{:,}'.format(1234567) }} {{ 2**64 }}",
        "ok",
        "s 1,234,567 18446744073709551616",
    ),
]


def _check_no_leak(text: str) -> None:
    for marker in LEAKS:
        assert marker not in text, f"{marker!r} leaked: {text[:300]!r}"


@pytest.mark.parametrize(("payload", "outcome", "fragment"), PAYLOADS, ids=[p[0][:60] for p in PAYLOADS])
def test_hostile_template(payload: str, outcome: str, fragment: str) -> None:
    started = time.monotonic()
    try:
        template_variables(payload, field="template")
    except InvalidTemplate as exc:
        saved = time.monotonic() - started
        assert outcome == "invalid", f"refused at save: {exc.message}"
        assert fragment in exc.message
        _check_no_leak(exc.message)
        assert saved < SAVE_BOUND
        return
    saved = time.monotonic() - started
    assert saved < SAVE_BOUND, f"saving took {saved:.2f} s: the template was evaluated while parsed"
    assert outcome != "invalid", "should have been refused when saved"

    started = time.monotonic()
    try:
        output = render_content({"type": "text", "template": payload}, VARIABLES)
    except TemplateError as exc:
        elapsed = time.monotonic() - started
        expected = MissingVariables if outcome == "missing" else RenderFailed
        assert type(exc) is expected, f"{type(exc).__name__}: {exc.message}"
        assert exc.field == "template"
        assert fragment in exc.message
        _check_no_leak(exc.message)
    else:
        elapsed = time.monotonic() - started
        assert outcome == "ok", f"rendered instead of failing: {str(output)[:200]!r}"
        assert output == fragment
        _check_no_leak(str(output))
    assert elapsed < RENDER_BOUND, f"render took {elapsed:.2f} s"


def test_saving_does_not_evaluate() -> None:
    """Regression: Jinja folded constants at compile time, so saving this took minutes and gigabytes."""
    started = time.monotonic()
    assert template_variables("{{ [0] * 10**9 }}{{ 'x'|center(10**9) }}{{ 10**100000 }}") == []
    assert time.monotonic() - started < SAVE_BOUND


def test_limits_leave_ordinary_templates_alone() -> None:
    source = (
        "{% for row in rows %}{{ loop.index }}. {{ row.name|title|center(12) }} "
        "{{ '%5.1f'|format(row.score) }}{{ ', ' if not loop.last }}{% endfor %}"
        " | {{ (rows|map(attribute='score')|sum) * 2 }}"
        " | {{ ([1, 2] + [3]) * 2 }} | {{ [[1], [2]]|sum(start=[]) }} | {{ 'ab' * 3 }} | {{ 2**100 }}"
    )
    rows = [{"name": "ada", "score": 9.5}, {"name": "bob", "score": 7}]
    assert render_content({"type": "text", "template": source}, {"rows": rows}) == (
        "1.     Ada        9.5, 2.     Bob        7.0 | 33.0 | [1, 2, 3, 1, 2, 3] | [1, 2] | ababab"
        " | 1267650600228229401496703205376"
    )


def test_values_at_the_limits_still_render() -> None:
    assert render_content({"type": "text", "template": "{{ ('a' * 1000000)|length }}"}, {}) == "1000000"
    assert render_content({"type": "text", "template": "{{ (range(100000)|list)|length }}"}, {}) == "100000"
    assert len(render_content({"type": "text", "template": "{{ 10**4299 }}"}, {})) == 4300
