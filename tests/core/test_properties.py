"""Property tests (Hypothesis) of the pure core: diff, three-way merge and template rendering.

The tables in test_diff.py, test_merge.py and test_templates.py pin known cases; these check the
documented guarantees over generated content documents and templates. Example counts are fixed and
the profile in conftest.py derandomizes, so every run checks the same examples.
"""

from __future__ import annotations

import re
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from promptkeeper.core.diff import diff_contents
from promptkeeper.core.merge import merge_documents, merge_text
from promptkeeper.core.templates import (
    RENDER_TIMEOUT,
    InvalidTemplate,
    TemplateError,
    render_content,
    template_variables,
)

# --- content documents ---------------------------------------------------------------------------

_LINE_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\n")
_line = st.text(_LINE_CHARS, max_size=6)
_template = st.lists(_line, max_size=5).map(lambda lines: "\n".join(lines))
_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(allow_nan=False, allow_infinity=False, width=16)
    | st.text(max_size=3)
)
_config = st.dictionaries(
    st.sampled_from(["model", "temperature", "max_tokens", "stop"]), _scalar, max_size=4
)
_examples = st.lists(st.fixed_dictionaries({"q": st.text(max_size=3), "a": _scalar}), max_size=2)
_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant"]), "content": _template}
) | st.fixed_dictionaries({"type": st.just("placeholder"), "name": st.sampled_from(["history", "docs"])})

text_documents = st.fixed_dictionaries(
    {"type": st.just("text"), "template": _template}, optional={"config": _config, "examples": _examples}
)
chat_documents = st.fixed_dictionaries(
    {"type": st.just("chat"), "messages": st.lists(_message, min_size=1, max_size=4)},
    optional={"config": _config, "examples": _examples},
)
documents = text_documents | chat_documents


@settings(max_examples=200)
@given(documents, documents)
def test_merge_with_one_side_unchanged_takes_the_other(base: dict[str, Any], edit: dict[str, Any]) -> None:
    """merge(base, x, base) == x and merge(base, base, y) == y, cleanly: one-sided edits never conflict."""
    ours = merge_documents(base, edit, base)
    assert ours.clean and ours.merged == edit
    theirs = merge_documents(base, base, edit)
    assert theirs.clean and theirs.merged == edit


@settings(max_examples=200)
@given(documents, documents)
def test_merge_of_identical_sides_is_that_side(base: dict[str, Any], edit: dict[str, Any]) -> None:
    result = merge_documents(base, edit, edit)
    assert result.clean and result.merged == edit
    assert merge_documents(edit, edit, edit).merged == edit


@settings(max_examples=200)
@given(documents, documents, documents)
def test_merge_never_modifies_inputs_and_keeps_ours_where_it_conflicts(
    base: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any]
) -> None:
    snapshot = [repr(d) for d in (base, ours, theirs)]
    result = merge_documents(base, ours, theirs)
    assert [repr(d) for d in (base, ours, theirs)] == snapshot
    for conflict in result.conflicts:
        assert conflict.kind in ("lines", "value")
        assert conflict.path
    if result.clean:
        # a clean merge of two edits, merged again onto either side's base, changes nothing more
        assert merge_documents(base, result.merged, theirs).merged == result.merged


@settings(max_examples=150)
@given(text_documents, _template, _config)
def test_edits_to_different_fields_merge_cleanly(
    base: dict[str, Any], template: str, config: dict[str, Any]
) -> None:
    """A draft that changes the config and a head that changes the template combine without asking."""
    ours = {**base, "config": config}
    theirs = {**base, "template": template}
    result = merge_documents(base, ours, theirs)
    assert result.clean, result.conflicts
    assert result.merged == {**base, "config": config, "template": template}


@settings(max_examples=200)
@given(
    st.lists(_line.map(lambda s: "L" + s), min_size=3, max_size=10, unique=True),
    st.data(),
)
def test_edits_to_lines_apart_merge_cleanly(lines: list[str], data: st.DataObject) -> None:
    """Lines changed on both sides with an unchanged line between them merge like git: both kept."""
    i = data.draw(st.integers(0, len(lines) - 3))
    j = data.draw(st.integers(i + 2, len(lines) - 1))
    new_i, new_j = data.draw(st.tuples(_line, _line).map(lambda p: ("O" + p[0], "T" + p[1])))
    ours_lines, theirs_lines, both = list(lines), list(lines), list(lines)
    ours_lines[i] = both[i] = new_i
    theirs_lines[j] = both[j] = new_j
    text, conflicts = merge_text("\n".join(lines), "\n".join(ours_lines), "\n".join(theirs_lines))
    assert conflicts == []
    assert text == "\n".join(both)


@settings(max_examples=200)
@given(st.lists(_line, max_size=6).map("\n".join), st.lists(_line, max_size=6).map("\n".join))
def test_merge_text_conflicts_hold_ours(ours: str, theirs: str) -> None:
    """With an empty base, differing sides conflict and the merged text is ours (module docstring)."""
    text, conflicts = merge_text("", ours, theirs)
    if ours != theirs and ours and theirs:
        assert conflicts and text == ours
    else:
        assert text in (ours, theirs)


def _strictly_equal(x: Any, y: Any) -> bool:
    """Equal with equal types all the way down (`1`, `1.0` and `True` differ), key order aside."""
    if type(x) is not type(y):
        return False
    if isinstance(x, dict):
        return x.keys() == y.keys() and all(_strictly_equal(x[k], y[k]) for k in x)
    if isinstance(x, list):
        return len(x) == len(y) and all(_strictly_equal(a, b) for a, b in zip(x, y, strict=True))
    return bool(x == y)


@settings(max_examples=200)
@given(documents, documents)
def test_diff_is_empty_exactly_when_documents_are_equal(
    before: dict[str, Any], after: dict[str, Any]
) -> None:
    assert diff_contents(before, before).changes == []
    diff = diff_contents(before, after)
    assert (diff.changes == []) == _strictly_equal(before, after)
    assert list(diff.unified) == diff.changed_fields
    assert set(diff.changed_fields) <= set(before) | set(after)
    for name, text in diff.unified.items():
        assert text.startswith(f"--- a/{name}\n+++ b/{name}\n") or text == ""


# --- rendering -----------------------------------------------------------------------------------

NAMES = ("a", "b", "items", "user")
_atoms = st.sampled_from(
    [*NAMES, "1", "2.5", "'x'", "''", "[1, 2]", "{'k': 1}", "none", "true", "range(3)", "examples", "loop"]
)
_filters = st.sampled_from(
    [
        "upper", "lower", "length", "default('d')", "join(',')", "first", "last", "list", "string", "int",
        "round", "trim", "title", "replace('a', 'b')", "center(5)", "indent(2)", "wordcount", "reverse",
        "sort", "unique", "sum", "min", "max", "e", "tojson", "batch(2)|list", "map('string')|list",
        "attr('x')", "format(1)", "truncate(3)", "wordwrap(3)", "dictsort", "items", "abs", "float",
    ]
)  # fmt: skip


_operators = st.sampled_from(["+", "-", "*", "/", "//", "%", "**", "~", "==", "<", "in", "and"])


def _compound(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return (
        st.tuples(inner, _filters).map(lambda p: f"({p[0]})|{p[1]}")
        | st.tuples(inner, _operators, inner).map(lambda p: f"({p[0]}) {p[1]} ({p[2]})")
        | st.tuples(inner, st.sampled_from([".name", "[0]", "['k']", ".upper()", ".items()", "[1:]"]))
        .map("".join)
        | inner.map(lambda e: f"not ({e})")
    )  # fmt: skip


expressions = st.recursive(_atoms, _compound, max_leaves=6)


def _if(p: tuple[str, str, str]) -> str:
    return "{%% if %s %%}%s{%% else %%}%s{%% endif %%}" % p  # noqa: UP031 - braces everywhere


def _for(p: tuple[str, str]) -> str:
    return "{%% for v in %s %%}%s{{ v }}{%% endfor %%}" % p  # noqa: UP031


def _set(p: tuple[str, str]) -> str:
    return "{%% set s = %s %%}%s{{ s }}" % p  # noqa: UP031


def _blocks(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return (
        st.tuples(expressions, inner, inner).map(_if)
        | st.tuples(expressions, inner).map(_for)
        | st.tuples(expressions, inner).map(_set)
        | st.lists(inner, min_size=2, max_size=3).map("".join)
    )


templates = st.recursive(
    st.text(st.characters(blacklist_characters="{}%#"), max_size=5)
    | expressions.map(lambda e: f"{{{{ {e} }}}}"),
    _blocks,
    max_leaves=8,
)
_values = st.recursive(
    _scalar | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["name", "k", "x"]), inner, max_size=3)
    ),
    max_leaves=6,
)
variables = st.dictionaries(st.sampled_from(NAMES), _values, max_size=4)
BOUND = RENDER_TIMEOUT + 3.0


def _render_raises_only_template_errors(source: str, values: dict[str, Any]) -> None:
    try:
        template_variables(source)
    except InvalidTemplate:
        return
    started = time.monotonic()
    try:
        output = render_content({"type": "text", "template": source}, values)
    except TemplateError as exc:
        assert exc.message and exc.field == "template"
    else:
        assert isinstance(output, str)
        assert " at 0x" not in output  # no object reprs
    assert time.monotonic() - started < BOUND


@settings(max_examples=400)
@given(templates, variables)
def test_rendering_generated_templates_raises_only_template_errors(
    source: str, values: dict[str, Any]
) -> None:
    _render_raises_only_template_errors(source, values)


_TOKENS = [
    "{{", "}}", "{%", "%}", "{#", "#}", "{%-", "-%}", "\x00", "é", "😀", "\n", "\r", "x", " ", "'", '"', "|",
    "(", ")", "for", "if", "endfor", "endif", "raw", "endraw", "set", "=", "in", "[", "]", ".",
]  # fmt: skip
_noise = st.lists(st.sampled_from(_TOKENS) | st.text(max_size=3), max_size=20).map("".join)


@settings(max_examples=400)
@given(_noise, variables)
def test_rendering_random_text_raises_only_template_errors(source: str, values: dict[str, Any]) -> None:
    _render_raises_only_template_errors(source, values)


@settings(max_examples=200)
@given(st.text(st.characters(blacklist_characters="{", blacklist_categories=("Cs",))))
def test_text_without_braces_renders_as_itself(source: str) -> None:
    """Text with no `{` is not a template: it renders unchanged, but for line ends (Jinja writes `\n`)."""
    assert template_variables(source) == []
    assert render_content({"type": "text", "template": source}, {}) == re.sub(r"\r\n?", "\n", source)
