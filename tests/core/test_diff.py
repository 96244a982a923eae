"""Structured and unified diffs between content documents (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from promptkeeper.core.diff import diff_contents

TEXT = {"type": "text", "template": "Hello {{ name }}\nBye", "examples": [], "config": {"temperature": 0.2}}


def test_identical_documents_have_no_diff() -> None:
    diff = diff_contents(TEXT, dict(TEXT))
    assert diff.changes == [] and diff.unified == {} and diff.changed_fields == []


@pytest.mark.parametrize(
    ("after", "paths", "fields"),
    [
        ({**TEXT, "config": {"temperature": 0.7}}, [("config.temperature", "changed", 0.2, 0.7)], ["config"]),
        (
            {**TEXT, "config": {"temperature": 0.2, "model": "m"}},
            [("config.model", "added", None, "m")],
            ["config"],
        ),
        ({**TEXT, "config": {}}, [("config.temperature", "removed", 0.2, None)], ["config"]),
        (
            {**TEXT, "template": "Hi {{ name }}\nBye"},
            [("template", "changed", "Hello {{ name }}\nBye", "Hi {{ name }}\nBye")],
            ["template"],
        ),
        ({**TEXT, "examples": [{"q": 1}]}, [("examples[0]", "added", None, {"q": 1})], ["examples"]),
        ({**TEXT, "config": {"temperature": 1}}, [("config.temperature", "changed", 0.2, 1)], ["config"]),
    ],
)
def test_structured_changes(after: dict[str, Any], paths: list[tuple[Any, ...]], fields: list[str]) -> None:
    diff = diff_contents(TEXT, after)
    assert [(c.path, c.kind, c.before, c.after) for c in diff.changes] == paths
    assert diff.changed_fields == fields
    assert set(diff.unified) == set(fields)


def test_unified_template_diff_is_line_based() -> None:
    diff = diff_contents(TEXT, {**TEXT, "template": "Hi {{ name }}\nBye"}, from_label="v1", to_label="v2")
    text = diff.unified["template"]
    assert "--- v1/template" in text and "+++ v2/template" in text
    assert "-Hello {{ name }}\n" in text and "+Hi {{ name }}\n" in text
    assert " Bye" in text


def test_chat_messages_diff_by_index_and_readable() -> None:
    before = {
        "type": "chat",
        "messages": [{"role": "system", "content": "A"}, {"role": "user", "content": "{{ q }}"}],
    }
    after = {
        "type": "chat",
        "messages": [
            {"role": "system", "content": "B"},
            {"role": "user", "content": "{{ q }}"},
            {"type": "placeholder", "name": "history"},
        ],
    }
    diff = diff_contents(before, after)
    assert [(c.path, c.kind) for c in diff.changes] == [
        ("messages[0].content", "changed"),
        ("messages[2]", "added"),
    ]
    unified = diff.unified["messages"]
    assert "-    A\n" in unified and "+    B\n" in unified
    assert "+[2] placeholder: history" in unified


def test_type_change_lists_both_shapes() -> None:
    chat = {"type": "chat", "messages": [{"role": "user", "content": "x"}]}
    diff = diff_contents(TEXT, chat)
    assert diff.changed_fields[:2] == ["type", "template"]
    assert "messages" in diff.changed_fields
