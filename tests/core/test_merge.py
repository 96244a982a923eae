"""Three-way merge of content documents and of template text (pure)."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from promptkeeper.core.merge import MergeConflict, MergeResult, merge_documents, merge_text

Range = tuple[int, int]
LinesConflict = tuple[str, str, str, Range, Range, Range]

BASE_TEXT = "a\nb\nc\nd\ne\n"


# --- text ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ours", "theirs", "merged"),
    [
        pytest.param(BASE_TEXT, BASE_TEXT, BASE_TEXT, id="nobody-changed"),
        pytest.param("A\nb\nc\nd\ne\n", BASE_TEXT, "A\nb\nc\nd\ne\n", id="only-ours"),
        pytest.param(BASE_TEXT, "a\nb\nc\nd\nE\n", "a\nb\nc\nd\nE\n", id="only-theirs"),
        pytest.param("A\nb\nc\nd\ne\n", "a\nb\nc\nd\nE\n", "A\nb\nc\nd\nE\n", id="different-lines"),
        pytest.param(
            "A\nb\nc\nd\ne\n", "a\nb\nC\nd\ne\n", "A\nb\nC\nd\ne\n", id="one-unchanged-line-between"
        ),
        pytest.param("a\nB\nc\nd\ne\n", "a\nB\nc\nd\ne\n", "a\nB\nc\nd\ne\n", id="same-edit-both-sides"),
        pytest.param("a\nB\nc\nD\ne\n", "a\nB\nc\nd\ne\n", "a\nB\nc\nD\ne\n", id="same-edit-plus-one-more"),
        pytest.param("new\na\nb\nc\nd\ne\n", "a\nb\nc\nd\nE\n", "new\na\nb\nc\nd\nE\n", id="insert-at-start"),
        pytest.param("A\nb\nc\nd\ne\n", "a\nb\nc\nd\ne\nend\n", "A\nb\nc\nd\ne\nend\n", id="insert-at-end"),
        pytest.param("a\nc\nd\ne\n", "a\nb\nc\nd\nE\n", "a\nc\nd\nE\n", id="delete-vs-far-edit"),
        pytest.param("a\nb\nx\ny\nc\nd\ne\n", BASE_TEXT, "a\nb\nx\ny\nc\nd\ne\n", id="insert-middle"),
    ],
)
def test_merge_text_clean(ours: str, theirs: str, merged: str) -> None:
    text, conflicts = merge_text(BASE_TEXT, ours, theirs)
    assert conflicts == []
    assert text == merged


@pytest.mark.parametrize(
    ("base", "ours", "theirs", "merged"),
    [
        pytest.param("a\nb", "a\nb", "A\nb", "A\nb", id="no-final-newline"),
        pytest.param(
            "a\r\nb\r\nc\r\n", "a\r\nb\r\nC\r\n", "A\r\nb\r\nc\r\n", "A\r\nb\r\nC\r\n", id="crlf-kept"
        ),
        pytest.param("", "x\n", "", "x\n", id="empty-base"),
        pytest.param("a\n", "", "a\n", "", id="emptied"),
    ],
)
def test_merge_text_clean_edges(base: str, ours: str, theirs: str, merged: str) -> None:
    text, conflicts = merge_text(base, ours, theirs)
    assert conflicts == []
    assert text == merged


@pytest.mark.parametrize(
    ("ours", "theirs", "merged", "expected"),
    [
        pytest.param(
            "a\nB1\nc\nd\ne\n",
            "a\nB2\nc\nd\ne\n",
            "a\nB1\nc\nd\ne\n",
            [("b\n", "B1\n", "B2\n", (2, 2), (2, 2), (2, 2))],
            id="same-line-edited-differently",
        ),
        pytest.param(
            "a\nB\nc\nd\ne\n",
            "a\nb\nC\nd\ne\n",
            "a\nB\nc\nd\ne\n",
            [("b\nc\n", "B\nc\n", "b\nC\n", (2, 3), (2, 3), (2, 3))],
            id="adjacent-lines-conflict-like-diff3",
        ),
        pytest.param(
            "a\nB\nC\nd\ne\n",
            "a\nb\nX\nY\nZ\ne\n",
            "a\nB\nC\nd\ne\n",
            [("b\nc\nd\n", "B\nC\nd\n", "b\nX\nY\nZ\n", (2, 4), (2, 4), (2, 5))],
            id="overlapping-ranges-of-different-size",
        ),
        pytest.param(
            "a\nc\nd\ne\n",
            "a\nB\nc\nd\ne\n",
            "a\nc\nd\ne\n",
            [("b\n", "", "B\n", (2, 2), (2, 1), (2, 2))],
            id="delete-vs-edit-same-line",
        ),
        pytest.param(
            BASE_TEXT + "ours\n",
            BASE_TEXT + "theirs\n",
            BASE_TEXT + "ours\n",
            [("", "ours\n", "theirs\n", (6, 5), (6, 6), (6, 6))],
            id="both-insert-at-end",
        ),
        pytest.param(
            "o1\no2\n" + BASE_TEXT,
            "t\n" + BASE_TEXT,
            "o1\no2\n" + BASE_TEXT,
            [("", "o1\no2\n", "t\n", (1, 0), (1, 2), (1, 1))],
            id="both-insert-at-start",
        ),
        pytest.param(
            "A1\nb\nc\nd\nE1\n",
            "A2\nb\nc\nd\nE2\n",
            "A1\nb\nc\nd\nE1\n",
            [
                ("a\n", "A1\n", "A2\n", (1, 1), (1, 1), (1, 1)),
                ("e\n", "E1\n", "E2\n", (5, 5), (5, 5), (5, 5)),
            ],
            id="two-separate-conflicts",
        ),
    ],
)
def test_merge_text_conflicts(ours: str, theirs: str, merged: str, expected: list[LinesConflict]) -> None:
    text, conflicts = merge_text(BASE_TEXT, ours, theirs, path="template")
    assert text == merged
    assert [
        (c.base, c.ours, c.theirs, c.base_lines, c.ours_lines, c.theirs_lines) for c in conflicts
    ] == expected
    assert all(c.path == "template" and c.kind == "lines" for c in conflicts)


# --- documents -----------------------------------------------------------------------------------------

TEXT_DOC: dict[str, Any] = {
    "type": "text",
    "template": BASE_TEXT,
    "examples": [{"input": "1", "output": "one"}],
    "config": {"model": "m", "temperature": 0.2},
}


def _with(doc: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """A copy of `doc` with the value at `path` replaced (or removed when `value` is `...`)."""
    out = copy.deepcopy(doc)
    target: Any = out
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


EDIT_TEMPERATURE = _with(TEXT_DOC, ("config", "temperature"), 0.7)
EDIT_MODEL = _with(TEXT_DOC, ("config", "model"), "m2")
EDIT_EXAMPLE = _with(TEXT_DOC, ("examples", 0, "input"), "2")
EDIT_TEMPLATE = _with(TEXT_DOC, ("template",), "A\nb\nc\nd\ne\n")


@pytest.mark.parametrize(
    ("ours", "theirs", "merged"),
    [
        pytest.param(TEXT_DOC, TEXT_DOC, TEXT_DOC, id="nothing"),
        pytest.param(EDIT_TEMPERATURE, TEXT_DOC, EDIT_TEMPERATURE, id="ours-nested-scalar"),
        pytest.param(TEXT_DOC, EDIT_TEMPERATURE, EDIT_TEMPERATURE, id="theirs-nested-scalar"),
        pytest.param(EDIT_TEMPERATURE, EDIT_TEMPERATURE, EDIT_TEMPERATURE, id="both-same-scalar"),
        pytest.param(EDIT_EXAMPLE, TEXT_DOC, EDIT_EXAMPLE, id="ours-list-item-field"),
        pytest.param(TEXT_DOC, EDIT_EXAMPLE, EDIT_EXAMPLE, id="theirs-list-item-field"),
        pytest.param(EDIT_TEMPLATE, TEXT_DOC, EDIT_TEMPLATE, id="ours-top-level"),
        pytest.param(
            EDIT_TEMPERATURE,
            EDIT_MODEL,
            _with(EDIT_TEMPERATURE, ("config", "model"), "m2"),
            id="different-config-keys",
        ),
        pytest.param(
            EDIT_TEMPLATE,
            EDIT_EXAMPLE,
            _with(EDIT_TEMPLATE, ("examples", 0, "input"), "2"),
            id="different-top-level-fields",
        ),
        pytest.param(
            _with(TEXT_DOC, ("config", "max_tokens"), 100),
            _with(TEXT_DOC, ("config", "top_p"), 0.9),
            _with(_with(TEXT_DOC, ("config", "max_tokens"), 100), ("config", "top_p"), 0.9),
            id="both-add-different-keys",
        ),
        pytest.param(
            _with(TEXT_DOC, ("config", "max_tokens"), 100),
            _with(TEXT_DOC, ("config", "max_tokens"), 100),
            _with(TEXT_DOC, ("config", "max_tokens"), 100),
            id="both-add-same-key-same-value",
        ),
        pytest.param(
            _with(TEXT_DOC, ("config", "model"), ...),
            EDIT_TEMPERATURE,
            _with(EDIT_TEMPERATURE, ("config", "model"), ...),
            id="ours-deletes-key-theirs-edits-other",
        ),
        pytest.param(
            EDIT_TEMPERATURE,
            _with(TEXT_DOC, ("config", "model"), ...),
            _with(EDIT_TEMPERATURE, ("config", "model"), ...),
            id="theirs-deletes-key-ours-edits-other",
        ),
        pytest.param(
            _with(TEXT_DOC, ("config", "model"), ...),
            _with(TEXT_DOC, ("config", "model"), ...),
            _with(TEXT_DOC, ("config", "model"), ...),
            id="both-delete-same-key",
        ),
        pytest.param(
            _with(TEXT_DOC, ("response_schema",), {"type": "object"}),
            EDIT_MODEL,
            _with(EDIT_MODEL, ("response_schema",), {"type": "object"}),
            id="ours-adds-top-level-field",
        ),
    ],
)
def test_merge_documents_clean(ours: dict[str, Any], theirs: dict[str, Any], merged: dict[str, Any]) -> None:
    result = merge_documents(TEXT_DOC, ours, theirs)
    assert result.clean and result.conflicts == []
    assert result.merged == merged


@pytest.mark.parametrize(
    ("ours", "theirs", "expected"),
    [
        pytest.param(
            EDIT_TEMPERATURE,
            _with(TEXT_DOC, ("config", "temperature"), 1.0),
            ("config.temperature", 0.2, 0.7, 1.0),
            id="config-scalar",
        ),
        pytest.param(
            _with(TEXT_DOC, ("config", "temperature"), ...),
            EDIT_TEMPERATURE,
            ("config.temperature", 0.2, None, 0.7),
            id="ours-deletes-theirs-edits",
        ),
        pytest.param(
            EDIT_TEMPERATURE,
            _with(TEXT_DOC, ("config", "temperature"), ...),
            ("config.temperature", 0.2, 0.7, None),
            id="ours-edits-theirs-deletes",
        ),
        pytest.param(
            _with(TEXT_DOC, ("config", "seed"), 1),
            _with(TEXT_DOC, ("config", "seed"), 2),
            ("config.seed", None, 1, 2),
            id="both-add-same-key-differently",
        ),
        pytest.param(
            _with(TEXT_DOC, ("config", "temperature"), 1),
            _with(TEXT_DOC, ("config", "temperature"), True),
            ("config.temperature", 0.2, 1, True),
            id="json-types-are-distinct",
        ),
        pytest.param(
            _with(TEXT_DOC, ("config",), {"model": "x"}),
            _with(TEXT_DOC, ("config",), "oops"),
            ("config", {"model": "m", "temperature": 0.2}, {"model": "x"}, "oops"),
            id="type-change",
        ),
        pytest.param(
            _with(TEXT_DOC, ("examples", 0, "input"), "2"),
            _with(TEXT_DOC, ("examples", 0, "input"), "3"),
            ("examples[0].input", "1", "2", "3"),
            id="single-line-string-is-a-value",
        ),
    ],
)
def test_merge_documents_value_conflicts(
    ours: dict[str, Any], theirs: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    result = merge_documents(TEXT_DOC, ours, theirs)
    assert not result.clean
    assert [(c.path, c.base, c.ours, c.theirs) for c in result.conflicts] == [expected]
    conflict = result.conflicts[0]
    assert conflict.kind == "value"
    assert conflict.base_lines is None and conflict.ours_lines is None and conflict.theirs_lines is None
    assert result.merged == ours  # the draft wins at the conflicting spot


def test_merge_keeps_key_order_ours_then_theirs_only() -> None:
    base = {"a": 1, "b": 2}
    ours = {"b": 3, "a": 1, "x": 0}
    theirs = {"a": 1, "b": 2, "y": 0, "z": 0}
    assert list(merge_documents(base, ours, theirs).merged) == ["b", "a", "x", "y", "z"]


def test_merge_does_not_modify_or_alias_inputs() -> None:
    base, ours, theirs = copy.deepcopy(TEXT_DOC), copy.deepcopy(EDIT_MODEL), copy.deepcopy(EDIT_EXAMPLE)
    result = merge_documents(base, ours, theirs)
    result.merged["config"]["model"] = "changed"
    result.merged["examples"][0]["input"] = "changed"
    assert (base, ours, theirs) == (TEXT_DOC, EDIT_MODEL, EDIT_EXAMPLE)


def test_conflict_as_dict_is_json_ready() -> None:
    conflict = MergeConflict("template", "lines", "b\n", "", "B\n", (2, 2), (2, 1), (2, 2))
    assert conflict.as_dict() == {
        "path": "template",
        "kind": "lines",
        "base": "b\n",
        "ours": "",
        "theirs": "B\n",
        "base_lines": [2, 2],
        "ours_lines": [2, 1],
        "theirs_lines": [2, 2],
    }
    value = MergeConflict("config.temperature", "value", 0.2, 0.7, 1.0, None, None, None)
    assert value.as_dict()["base_lines"] is None and value.as_dict()["theirs"] == 1.0
    assert MergeResult(merged={}, conflicts=[]).clean and not MergeResult({}, [value]).clean


# --- chat messages -------------------------------------------------------------------------------------

SYSTEM = {"role": "system", "content": "You are helpful.\nBe brief.\nAnswer in English."}
HISTORY = {"type": "placeholder", "name": "history"}
USER = {"role": "user", "content": "{{ q }}"}
CHAT_DOC: dict[str, Any] = {"type": "chat", "messages": [SYSTEM, HISTORY, USER], "examples": [], "config": {}}
EXTRA = {"role": "assistant", "content": "Sure."}
OTHER = {"role": "user", "content": "Thanks"}


def _chat(*messages: dict[str, Any]) -> dict[str, Any]:
    return {**CHAT_DOC, "messages": list(messages)}


def _system(content: str) -> dict[str, Any]:
    return {"role": "system", "content": content}


@pytest.mark.parametrize(
    ("ours", "theirs", "merged"),
    [
        pytest.param(
            _chat(_system("Hi.\nBe brief.\nAnswer in English."), HISTORY, USER),
            _chat(SYSTEM, HISTORY, {"role": "user", "content": "Q: {{ q }}"}),
            _chat(
                _system("Hi.\nBe brief.\nAnswer in English."),
                HISTORY,
                {"role": "user", "content": "Q: {{ q }}"},
            ),
            id="edit-different-messages",
        ),
        pytest.param(
            _chat(_system("Hi.\nBe brief.\nAnswer in English."), HISTORY, USER),
            _chat(_system("You are helpful.\nBe brief.\nAnswer in French."), HISTORY, USER),
            _chat(_system("Hi.\nBe brief.\nAnswer in French."), HISTORY, USER),
            id="edit-different-lines-of-one-message",
        ),
        pytest.param(
            _chat(SYSTEM, HISTORY, USER, EXTRA),
            _chat(_system("Hi.\nBe brief.\nAnswer in English."), HISTORY, USER),
            _chat(_system("Hi.\nBe brief.\nAnswer in English."), HISTORY, USER, EXTRA),
            id="append-vs-edit-first",
        ),
        pytest.param(
            _chat(SYSTEM, HISTORY, USER, EXTRA),
            _chat(SYSTEM, HISTORY, USER, EXTRA),
            _chat(SYSTEM, HISTORY, USER, EXTRA),
            id="both-append-same-message",
        ),
        pytest.param(
            _chat(SYSTEM, EXTRA, HISTORY, USER),
            _chat(SYSTEM, EXTRA, HISTORY, USER),
            _chat(SYSTEM, EXTRA, HISTORY, USER),
            id="both-insert-same-message",
        ),
        pytest.param(
            _chat(SYSTEM, USER),
            _chat(SYSTEM, HISTORY, USER, EXTRA),
            _chat(SYSTEM, USER, EXTRA),
            id="delete-one-vs-append",
        ),
        pytest.param(
            _chat(SYSTEM, EXTRA, HISTORY, {"role": "user", "content": "A\n{{ q }}"}),
            _chat(SYSTEM, HISTORY, {"role": "assistant", "content": "{{ q }}"}),
            _chat(SYSTEM, EXTRA, HISTORY, {"role": "assistant", "content": "A\n{{ q }}"}),
            id="insert-vs-edit-then-both-edit-one-message-in-place",
        ),
    ],
)
def test_merge_chat_clean(ours: dict[str, Any], theirs: dict[str, Any], merged: dict[str, Any]) -> None:
    result = merge_documents(CHAT_DOC, ours, theirs)
    assert result.conflicts == []
    assert result.merged == merged


@pytest.mark.parametrize(
    ("ours", "theirs", "expected"),
    [
        pytest.param(
            _chat(SYSTEM, HISTORY, USER, EXTRA),
            _chat(SYSTEM, HISTORY, USER, OTHER),
            ("messages", "lines", [], [EXTRA], [OTHER], (3, 2), (3, 3), (3, 3)),
            id="both-append-different",
        ),
        pytest.param(
            _chat(SYSTEM, HISTORY, {"role": "user", "content": "Q: {{ q }}"}),
            _chat(SYSTEM, HISTORY, USER, EXTRA),
            (
                "messages",
                "lines",
                [USER],
                [{"role": "user", "content": "Q: {{ q }}"}],
                [USER, EXTRA],
                (2, 2),
                (2, 2),
                (2, 3),
            ),
            id="edit-last-vs-append-is-adjacent-like-diff3",
        ),
        pytest.param(
            _chat(SYSTEM, {"type": "placeholder", "name": "past"}, USER),
            _chat(SYSTEM, {"type": "placeholder", "name": "chat"}, USER),
            ("messages[1].name", "value", "history", "past", "chat", None, None, None),
            id="same-length-lists-merge-by-index",
        ),
        pytest.param(
            _chat(HISTORY, USER),
            _chat(_system("Hi.\nBe brief.\nAnswer in English."), HISTORY, USER),
            (
                "messages",
                "lines",
                [SYSTEM],
                [],
                [_system("Hi.\nBe brief.\nAnswer in English.")],
                (0, 0),
                (0, -1),
                (0, 0),
            ),
            id="delete-vs-edit-message",
        ),
        pytest.param(
            _chat(_system("Hi.\nBe brief.\nAnswer in English."), HISTORY, USER),
            _chat(_system("Hello.\nBe brief.\nAnswer in English."), HISTORY, USER),
            (
                "messages[0].content",
                "lines",
                "You are helpful.\n",
                "Hi.\n",
                "Hello.\n",
                (1, 1),
                (1, 1),
                (1, 1),
            ),
            id="same-line-of-one-message",
        ),
        pytest.param(
            _chat(SYSTEM, HISTORY, {"role": "assistant", "content": "{{ q }}"}),
            _chat(SYSTEM, HISTORY, {"role": "tool", "content": "{{ q }}"}),
            ("messages[2].role", "value", "user", "assistant", "tool", None, None, None),
            id="role-changed-both-sides",
        ),
    ],
)
def test_merge_chat_conflicts(
    ours: dict[str, Any], theirs: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    result = merge_documents(CHAT_DOC, ours, theirs)
    assert [
        (c.path, c.kind, c.base, c.ours, c.theirs, c.base_lines, c.ours_lines, c.theirs_lines)
        for c in result.conflicts
    ] == [expected]
    if expected[1] == "lines" and expected[0] == "messages":
        assert result.merged == ours  # ours' items stand at the conflicting spot


def test_same_length_edit_inside_diff3_chunk_is_reported_at_merged_index() -> None:
    ours = _chat(SYSTEM, HISTORY, {"role": "user", "content": "O"})
    theirs = _chat(OTHER, SYSTEM, HISTORY, {"role": "user", "content": "T"})
    result = merge_documents(CHAT_DOC, ours, theirs)
    assert [(c.path, c.kind, c.base, c.ours, c.theirs) for c in result.conflicts] == [
        ("messages[3].content", "value", "{{ q }}", "O", "T")
    ]
    assert result.merged["messages"] == [OTHER, SYSTEM, HISTORY, {"role": "user", "content": "O"}]


def test_realistic_document() -> None:
    base: dict[str, Any] = {
        "type": "chat",
        "messages": [
            {
                "role": "system",
                "content": "You are a support agent for {{ product }}.\nBe polite.\nBe brief.\n",
            },
            {"type": "placeholder", "name": "history"},
            {"role": "user", "content": "{{ question }}"},
        ],
        "examples": [{"input": {"question": "reset password?"}, "output": "Use the link."}],
        "config": {"model": "gpt-x", "temperature": 0.2, "max_tokens": 256},
        "response_schema": {"type": "object", "properties": {"answer": {"type": "string"}}},
    }
    draft = copy.deepcopy(base)
    draft["messages"][0]["content"] = (
        "You are a support agent for {{ product }}.\nBe polite.\nBe brief.\nNever share internal links.\n"
    )
    draft["messages"].append({"role": "assistant", "content": "How can I help?"})
    draft["config"]["temperature"] = 0.3
    draft["examples"].append({"input": {"question": "refund?"}, "output": "Within 30 days."})
    head = copy.deepcopy(base)
    head["messages"][0]["content"] = "You are a support agent for {{ product }}.\nBe kind.\nBe brief.\n"
    head["config"]["model"] = "gpt-y"
    del head["config"]["max_tokens"]
    head["response_schema"]["required"] = ["answer"]
    head["config"]["temperature"] = 0.5

    result = merge_documents(base, draft, head)

    assert [(c.path, c.kind, c.base, c.ours, c.theirs) for c in result.conflicts] == [
        ("config.temperature", "value", 0.2, 0.3, 0.5)
    ]
    assert result.merged == {
        "type": "chat",
        "messages": [
            {
                "role": "system",
                "content": "You are a support agent for {{ product }}.\nBe kind.\nBe brief.\n"
                "Never share internal links.\n",
            },
            {"type": "placeholder", "name": "history"},
            {"role": "user", "content": "{{ question }}"},
            {"role": "assistant", "content": "How can I help?"},
        ],
        "examples": draft["examples"],
        "config": {"model": "gpt-y", "temperature": 0.3},
        "response_schema": {
            "type": "object",
            "properties": {"answer": {"type": "string"}},
            "required": ["answer"],
        },
    }
    assert list(result.merged) == list(draft)

    head["config"]["temperature"] = 0.2
    clean = merge_documents(base, draft, head)
    assert clean.clean and clean.merged["config"] == {"model": "gpt-y", "temperature": 0.3}


# --- properties ----------------------------------------------------------------------------------------


def _random_lines(rng: random.Random, n: int) -> list[str]:
    return [f"{rng.choice('abc')}{rng.randrange(3)}\n" for _ in range(n)]


def _random_text_edit(rng: random.Random, text: str) -> str:
    lines = text.splitlines(keepends=True)
    for _ in range(rng.randrange(1, 4)):
        start = rng.randrange(len(lines) + 1)
        end = min(len(lines), start + rng.randrange(3))
        lines[start:end] = _random_lines(rng, rng.randrange(3))
    return "".join(lines)


def _random_doc_edit(rng: random.Random, doc: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    for _ in range(rng.randrange(1, 4)):
        action = rng.randrange(6)
        messages = out["messages"]
        if action == 0:
            out["template"] = _random_text_edit(rng, out["template"])
        elif action == 1:
            out["config"][rng.choice(["model", "temperature", "top_p"])] = rng.choice(
                [0.1, 0.5, "m", None, 1]
            )
        elif action == 2 and out["config"]:
            del out["config"][rng.choice(sorted(out["config"]))]
        elif action == 3:
            messages.insert(rng.randrange(len(messages) + 1), {"role": "user", "content": f"n{rng.random()}"})
        elif action == 4 and messages:
            del messages[rng.randrange(len(messages))]
        elif messages:
            message = messages[rng.randrange(len(messages))]
            message["content"] = _random_text_edit(rng, message["content"])
    return out


@pytest.mark.parametrize("seed", range(4))
def test_random_one_sided_and_identical_edits_merge_to_the_edit(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(100):
        base_text = "".join(_random_lines(rng, rng.randrange(8)))
        edited = _random_text_edit(rng, base_text)
        for ours, theirs in ((edited, base_text), (base_text, edited), (edited, edited)):
            assert merge_text(base_text, ours, theirs) == (edited, [])

        base: dict[str, Any] = {
            "type": "text",
            "template": base_text,
            "messages": [{"role": "user", "content": "".join(_random_lines(rng, 3))} for _ in range(3)],
            "config": {"model": "m", "temperature": 0.2},
        }
        changed = _random_doc_edit(rng, base)
        for ours_doc, theirs_doc in ((changed, base), (base, changed), (changed, changed)):
            result = merge_documents(base, ours_doc, theirs_doc)
            assert result.clean and result.merged == changed
        other = _random_doc_edit(rng, base)
        result = merge_documents(base, changed, other)
        swapped = merge_documents(base, other, changed)
        assert len(result.conflicts) == len(swapped.conflicts)
        if result.clean:  # a clean merge does not depend on which side is the draft
            assert result.merged == swapped.merged


@pytest.mark.parametrize("seed", range(4))
def test_random_edits_separated_by_an_unchanged_line_both_apply(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(75):
        n = rng.randrange(3, 12)
        base = [f"line {i}\n" for i in range(n)]
        keep = rng.randrange(1, n - 1)  # this line stays; ours edits before it, theirs after it
        o1 = rng.randrange(keep + 1)
        o2 = rng.randrange(o1, keep + 1)
        t1 = rng.randrange(keep + 1, n + 1)
        t2 = rng.randrange(t1, n + 1)
        ours_new = [f"ours {i}\n" for i in range(rng.randrange(3))]
        theirs_new = [f"theirs {i}\n" for i in range(rng.randrange(3))]
        ours = base[:o1] + ours_new + base[o2:]
        theirs = base[:t1] + theirs_new + base[t2:]
        expected = "".join(base[:o1] + ours_new + base[o2:t1] + theirs_new + base[t2:])
        base_text, ours_text, theirs_text = "".join(base), "".join(ours), "".join(theirs)
        assert merge_text(base_text, ours_text, theirs_text) == (expected, [])
        assert merge_text(base_text, theirs_text, ours_text) == (expected, [])
