#!/usr/bin/env python3
"""Write tests/data/render_corpus.json: templates, variables and what the server renders for them.

The expected output comes from `promptkeeper.core.templates.render_content`, the function behind the
server's `POST /v1/render` (and the Python SDK's `prompt.render`). The TypeScript SDK's tests
(`sdk/typescript/test/shared.test.mjs`) render every case through a real server and check it matches,
and check that its local renderer gives exactly this output for every case marked `local` and declines
(asks the server) for every other one. `tests/core/test_shared_vectors.py` fails when the file is not
what this script writes. Run it after changing the corpus or the template engine:
`python scripts/render_corpus.py`.

`local` says whether the TypeScript SDK is expected to render the case itself: only literal text with
`{{ name }}` substitutions of strings, integers, booleans and null (`sdk/typescript/src/template.ts`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CORPUS = ROOT / "tests" / "data" / "render_corpus.json"


def text(template: str) -> dict[str, Any]:
    return {"type": "text", "template": template}


def chat(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"type": "chat", "messages": list(messages)}


CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    # (id, content, variables, rendered locally by the TypeScript SDK)
    ("plain text", text("Hello there."), {}, True),
    ("empty template", text(""), {}, True),
    ("one variable", text("Hello {{ name }}!"), {"name": "Ada"}, True),
    ("no spaces", text("{{name}}/{{name}}"), {"name": "x"}, True),
    ("tabs and spaces", text("[{{\tname  }}]"), {"name": "t"}, True),
    ("repeated and ordered", text("{{ b }} {{ a }} {{ b }}"), {"a": "1", "b": "2"}, True),
    ("trailing newline kept", text("line {{ n }}\n"), {"n": "one"}, True),
    ("blank lines and indentation", text("  a\n\n\t{{ x }}\n  \n"), {"x": "b"}, True),
    ("no autoescape", text("<b>{{ html }}</b> & co"), {"html": "<i>'\"&amp;</i>"}, True),
    ("unicode", text("¿{{ q }}? — 你好 {{ e }}"), {"q": "Qué", "e": "😀👍🏽"}, True),
    ("a value that looks like a template", text("{{ v }}"), {"v": "{{ other }} {% if x %}"}, True),
    ("literal braces", text("{ a } }} {x} {{ v }} }"), {"v": "ok"}, True),
    ("integer", text("n={{ n }}"), {"n": 42}, True),
    ("negative and zero", text("{{ a }},{{ b }}"), {"a": -7, "b": 0}, True),
    ("booleans print as Python", text("{{ t }}/{{ f }}"), {"t": True, "f": False}, True),
    ("null prints None", text("[{{ nothing }}]"), {"nothing": None}, True),
    ("extra variables ignored", text("{{ a }}"), {"a": "x", "unused": [1, 2]}, True),
    ("newlines inside values", text("> {{ v }}"), {"v": "a\r\nb\rc\n"}, True),
    ("long value", text("{{ v }}"), {"v": "é" * 5000}, True),
    # outside the local subset: the server renders these
    ("float", text("{{ x }}"), {"x": 0.1}, False),
    ("small float", text("{{ x }}"), {"x": 2.5e-7}, False),
    ("large float", text("{{ x }}"), {"x": 1e21}, False),
    # exact as a JavaScript number, but past Number.MAX_SAFE_INTEGER: the SDK declines, the server renders
    ("beyond safe integers", text("{{ x }}"), {"x": 2**53 + 2}, False),
    ("list prints as Python", text("{{ items }}"), {"items": ["a", 1, None, True]}, False),
    ("dict prints as Python", text("{{ d }}"), {"d": {"k": "v", "n": 1}}, False),
    ("attribute access", text("{{ user.name }}"), {"user": {"name": "Ada"}}, False),
    ("item access", text("{{ user['name'] }}"), {"user": {"name": "Ada"}}, False),
    ("filter", text("{{ name | upper }}"), {"name": "ada"}, False),
    ("default filter", text("{{ name | default('you') }}"), {"name": ""}, False),
    ("join filter", text("{{ xs | join(', ') }}"), {"xs": ["a", "b"]}, False),
    (
        "condition",
        text("{% if vip %}Dear {{ name }}{% else %}Hi{% endif %}"),
        {"vip": True, "name": "Bo"},
        False,
    ),
    ("loop", text("{% for x in xs %}- {{ x }}\n{% endfor %}"), {"xs": ["a", "b"]}, False),
    ("whitespace control", text("a  {{- x -}}  b"), {"x": "X"}, False),
    ("comment", text("a{# note #}b{{ x }}"), {"x": "c"}, False),
    ("string literal", text("{{ 'lit' }}{{ x }}"), {"x": "!"}, False),
    ("arithmetic", text("{{ n + 1 }}"), {"n": 1}, False),
    ("concatenation", text("{{ a ~ b }}"), {"a": "x", "b": 2}, False),
    ("carriage returns in the template", text("a\r\nb {{ x }}\r\n"), {"x": "y"}, False),
    (
        "examples variable",
        {**text("{% for e in examples %}{{ e.input }}\n{% endfor %}"), "examples": [{"input": "q1"}]},
        {},
        False,
    ),
    ("examples printed", {**text("{{ examples }}"), "examples": [{"input": "q"}]}, {}, False),
    ("raw block", text("{% raw %}{{ x }}{% endraw %}"), {}, False),
    ("set", text("{% set y = x %}{{ y }}"), {"x": "v"}, False),
    ("jinja literal name", text("{{ none }}|{{ true }}"), {}, False),
    ("range global", text("{{ range(3) | list }}"), {}, False),
    # chat
    (
        "chat",
        chat(
            {"role": "system", "content": "You are {{ persona }}."},
            {"role": "user", "content": "{{ question }}"},
        ),
        {"persona": "helpful", "question": "Where is my order?"},
        True,
    ),
    (
        "chat with a placeholder",
        chat(
            {"role": "system", "content": "Be brief."},
            {"type": "placeholder", "name": "history"},
            {"role": "user", "content": "{{ q }}"},
        ),
        {
            "q": "and now?",
            "history": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello", "name": "bot"},
            ],
        },
        True,
    ),
    (
        "chat with an empty placeholder",
        chat({"type": "placeholder", "name": "history"}, {"role": "user", "content": "{{ q }}"}),
        {"q": "first", "history": []},
        True,
    ),
    (
        "chat with a loop",
        chat({"role": "user", "content": "{% for x in xs %}{{ x }};{% endfor %}"}),
        {"xs": [1, 2]},
        False,
    ),
    # errors: the same error locally and from the server
    ("missing variables", text("{{ a }} {{ b }} {{ c }}"), {"b": "x"}, True),
    (
        "missing in a chat",
        chat({"role": "system", "content": "{{ s }}"}, {"role": "user", "content": "{{ u }}"}),
        {},
        True,
    ),
    (
        "missing placeholder",
        chat({"role": "system", "content": "hi"}, {"type": "placeholder", "name": "history"}),
        {},
        True,
    ),
    (
        "placeholder not a list",
        chat({"type": "placeholder", "name": "history"}),
        {"history": "nope"},
        True,
    ),
    (
        "placeholder item without content",
        chat({"type": "placeholder", "name": "history"}),
        {"history": [{"role": "user"}]},
        True,
    ),
    ("missing with a filter", text("{{ a | upper }}"), {}, False),
]


def expected(content: dict[str, Any], variables: dict[str, Any]) -> dict[str, Any]:
    from promptkeeper.core.templates import MissingVariables, RenderFailed, render_content

    try:
        return {"output": render_content(content, variables)}
    except MissingVariables as exc:
        return {"error": "MissingVariables", "missing": exc.names}
    except RenderFailed as exc:
        return {"error": "RenderFailed", "message": exc.message}


def build() -> str:
    cases = [
        {
            "id": case_id,
            "content": content,
            "variables": variables,
            "local": local,
            **expected(content, variables),
        }
        for case_id, content, variables, local in CASES
    ]
    document = {
        "about": "Generated by scripts/render_corpus.py with promptkeeper.core.templates "
        "(the server's renderer); do not edit.",
        "cases": cases,
    }
    return json.dumps(document, indent=1, ensure_ascii=True) + "\n"


def main() -> None:
    CORPUS.write_text(build())
    print(f"wrote {CORPUS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
