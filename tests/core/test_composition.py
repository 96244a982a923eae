"""The pure composition module: tag parsing and expansion with tables of known values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from promptkeeper.core.composition import (
    CompositionError,
    Reference,
    Target,
    Unresolvable,
    expand,
    references,
)
from promptkeeper.core.templates import render_content


def _text(template: str) -> dict[str, Any]:
    return {"type": "text", "template": template}


@pytest.mark.parametrize(
    ("tag", "name", "label", "version"),
    [
        ("@@@prompt:name=base|label=production@@@", "base", "production", None),
        ("@@@langfusePrompt:name=base|version=3@@@", "base", None, 3),
        ("@@@langfusePrompt:name=Support/ReplyDraft|label=staging@@@", "Support/ReplyDraft", "staging", None),
        ("@@@prompt: name = team/a.b_c-d | label = prod-eu @@@", "team/a.b_c-d", "prod-eu", None),
        ("@@@prompt:label=production|name=movieCritic@@@", "movieCritic", "production", None),
    ],
)
def test_references_parse(tag: str, name: str, label: str | None, version: int | None) -> None:
    (ref,) = references(_text(f"before {tag} after"))
    assert (ref.name, ref.label, ref.version, ref.field) == (name, label, version, "template")
    assert ref.start == len("before ") and ref.end == len("before ") + len(tag)


@pytest.mark.parametrize(
    "text",
    [
        "@@prompt:name=a|label=b@@",
        "@@@other:name=a|label=b@@@",
        "{{ '@@@' }}",
        "email@@@example",
        "@@@prompt:\n@@@",
    ],
)
def test_text_that_is_not_a_reference_is_left_alone(text: str) -> None:
    assert references(_text(text)) == []
    assert expand(_text(text), _no_fetch, root="p").content["template"] == text


def _no_fetch(ref: Reference) -> Target:
    raise AssertionError("nothing to fetch")


def _store(prompts: Mapping[tuple[str, str], str]) -> Any:
    def fetch(ref: Reference) -> Target:
        key = (ref.name, ref.label or f"v{ref.version}")
        if key not in prompts:
            raise Unresolvable(f"no {key}", reason="missing_prompt")
        number = int(ref.version or 1)
        return Target(name=ref.name, version=number, content=_text(prompts[key]), label=ref.label, revision=7)

    return fetch


def test_expansion_is_recursive_and_the_raw_text_renders_unchanged() -> None:
    fetch = _store(
        {
            ("mid", "production"): "mid[@@@prompt:name=leaf|version=2@@@]",
            ("leaf", "v2"): "leaf {{ x }}",
        }
    )
    raw = _text("top @@@prompt:name=mid|label=production@@@ and again @@@prompt:name=mid|label=production@@@")
    expansion = expand(raw, fetch, root="top")
    assert expansion.content["template"] == "top mid[leaf {{ x }}] and again mid[leaf {{ x }}]"
    assert [(i.name, i.label, i.version, i.revision) for i in expansion.includes] == [
        ("mid", "production", 1, 7),
        ("leaf", None, 2, 7),
    ]
    # the tag is plain text to Jinja: the raw prompt still renders, with the tag as it is
    assert render_content(raw, {}) == raw["template"]


def test_a_cycle_names_its_path() -> None:
    fetch = _store({("b", "production"): "@@@prompt:name=a|label=production@@@", ("a", "production"): "x"})
    with pytest.raises(CompositionError) as caught:
        expand(_text("@@@prompt:name=b|label=production@@@"), fetch, root="a", forbid_label_of="a")
    assert caught.value.reason == "cycle"
    assert caught.value.details() == {
        "field": "content.template",
        "reason": "cycle",
        "path": "a → b@production → a@production",
    }


def test_a_chat_reference_expands_in_its_message() -> None:
    content = {
        "type": "chat",
        "messages": [
            {"role": "system", "content": "S @@@prompt:name=base|label=production@@@"},
            {"type": "placeholder", "name": "history"},
        ],
    }
    expansion = expand(content, _store({("base", "production"): "B"}), root="c")
    assert expansion.content["messages"][0] == {"role": "system", "content": "S B"}
    assert expansion.content["messages"][1] == {"type": "placeholder", "name": "history"}
    assert content["messages"][0]["content"].startswith("S @@@")  # the stored document is not touched
