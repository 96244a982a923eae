"""Side-by-side and inline diffs of two versions, with word-level highlights inside changed lines.

Pure: content documents in, rows of escaped HTML out (the templates mark them safe).
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

_WORDS = re.compile(r"\s+|\w+|[^\w\s]")


@dataclass(frozen=True)
class Row:
    """One line pair: `kind` is equal, replace, delete or insert; either side may be empty."""

    kind: str
    left_number: int | None
    left: Markup
    right_number: int | None
    right: Markup


@dataclass(frozen=True)
class Section:
    title: str
    rows: list[Row]
    changed: bool


def content_lines(content: dict[str, Any]) -> dict[str, list[str]]:
    """A version's content as named sections of text lines (what people read and compare)."""
    sections: dict[str, list[str]] = {}
    if content.get("type") == "text":
        sections["template"] = str(content.get("template", "")).splitlines()
    else:
        for index, message in enumerate(content.get("messages", []), start=1):
            if message.get("type") == "placeholder":
                sections[f"message {index}"] = [f"[placeholder: {message.get('name')}]"]
            else:
                sections[f"message {index}"] = [
                    f"[{message.get('role')}]",
                    *str(message.get("content", "")).splitlines(),
                ]
    for key in ("examples", "config", "response_schema"):
        value = content.get(key)
        if value:
            sections[key] = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
    return sections


def _words(old: str, new: str) -> tuple[Markup, Markup]:
    a, b = _WORDS.findall(old), _WORDS.findall(new)
    left: list[str] = []
    right: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        old_part, new_part = escape("".join(a[i1:i2])), escape("".join(b[j1:j2]))
        if op == "equal":
            left.append(old_part)
            right.append(new_part)
            continue
        if old_part:
            left.append(f"<del>{old_part}</del>")
        if new_part:
            right.append(f"<ins>{new_part}</ins>")
    return Markup("".join(left)), Markup("".join(right))


def diff_lines(old: list[str], new: list[str]) -> list[Row]:
    rows: list[Row] = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            for offset in range(i2 - i1):
                line = escape(old[i1 + offset])
                rows.append(Row("equal", i1 + offset + 1, line, j1 + offset + 1, line))
            continue
        pairs = max(i2 - i1, j2 - j1)
        for offset in range(pairs):
            i, j = i1 + offset, j1 + offset
            has_left, has_right = i < i2, j < j2
            if has_left and has_right:
                left, right = _words(old[i], new[j])
                rows.append(Row("replace", i + 1, left, j + 1, right))
            elif has_left:
                rows.append(Row("delete", i + 1, Markup(f"<del>{escape(old[i])}</del>"), None, Markup("")))
            else:
                rows.append(Row("insert", None, Markup(""), j + 1, Markup(f"<ins>{escape(new[j])}</ins>")))
    return rows


def diff_contents(old: dict[str, Any], new: dict[str, Any]) -> list[Section]:
    before, after = content_lines(old), content_lines(new)
    titles = list(dict.fromkeys([*before, *after]))
    sections = []
    for title in titles:
        rows = diff_lines(before.get(title, []), after.get(title, []))
        sections.append(Section(title, rows, any(row.kind != "equal" for row in rows)))
    return sections
