"""Differences between two content documents: a structured change list and unified text diffs.

Pure. The structured list (`changes`) is for machines and the UI (`config.temperature: 0.2 -> 0.7`);
the unified diffs (`unified`) are for people and are keyed by the content's top-level fields, so a
reviewer sees the template change separately from the config change.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Change", "ContentDiff", "diff_contents"]

ChangeKind = Literal["added", "removed", "changed"]
_MISSING = object()


@dataclass(frozen=True)
class Change:
    path: str
    kind: ChangeKind
    before: Any = None
    after: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "before": self.before, "after": self.after}


@dataclass
class ContentDiff:
    changes: list[Change] = field(default_factory=list)
    unified: dict[str, str] = field(default_factory=dict)

    @property
    def changed_fields(self) -> list[str]:
        """Top-level content fields that differ (`template`, `messages`, `examples`, `config`, ...)."""
        seen: list[str] = []
        for change in self.changes:
            top = change.path.split(".", 1)[0].split("[", 1)[0]
            if top not in seen:
                seen.append(top)
        return seen


def _join(prefix: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else key


_FIELD_ORDER = ("type", "template", "messages", "examples", "config", "response_schema")


def _ordered_keys(before: dict[str, Any], after: dict[str, Any], *, top: bool) -> list[str]:
    """Stable order whatever the storage did to key order (PostgreSQL's JSONB reorders keys)."""
    keys = set(before) | set(after)
    if not top:
        return sorted(keys)
    known = [k for k in _FIELD_ORDER if k in keys]
    return known + sorted(keys - set(known))


def _walk(before: Any, after: Any, path: str, out: list[Change]) -> None:
    if before is _MISSING:
        out.append(Change(path, "added", None, after))
    elif after is _MISSING:
        out.append(Change(path, "removed", before, None))
    elif isinstance(before, dict) and isinstance(after, dict):
        for key in _ordered_keys(before, after, top=not path):
            _walk(before.get(key, _MISSING), after.get(key, _MISSING), _join(path, key), out)
    elif isinstance(before, list) and isinstance(after, list):
        for index in range(max(len(before), len(after))):
            b = before[index] if index < len(before) else _MISSING
            a = after[index] if index < len(after) else _MISSING
            _walk(b, a, _join(path, index), out)
    elif before != after or type(before) is not type(after):
        out.append(Change(path, "changed", before, after))


def _field_text(content: dict[str, Any], name: str) -> list[str]:
    """A readable line form of one top-level field, for the unified diff."""
    value = content.get(name)
    if value is None:
        return []
    if name == "template" and isinstance(value, str):
        return value.splitlines(keepends=True)
    if name == "messages" and isinstance(value, list):
        lines: list[str] = []
        for index, message in enumerate(value):
            if message.get("type") == "placeholder":
                lines.append(f"[{index}] placeholder: {message.get('name')}\n")
                continue
            lines.append(f"[{index}] {message.get('role')}:\n")
            lines.extend("    " + line for line in str(message.get("content", "")).splitlines(keepends=True))
            if lines and not lines[-1].endswith("\n"):
                lines[-1] += "\n"
        return lines
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").splitlines(keepends=True)


def diff_contents(
    before: dict[str, Any], after: dict[str, Any], *, from_label: str = "a", to_label: str = "b"
) -> ContentDiff:
    """Compare two content documents; identical documents give an empty diff."""
    changes: list[Change] = []
    _walk(before, after, "", changes)
    result = ContentDiff(changes=changes)
    for name in result.changed_fields:
        a_lines = _field_text(before, name)
        b_lines = _field_text(after, name)
        for lines in (a_lines, b_lines):
            if lines and not lines[-1].endswith("\n"):
                lines[-1] += "\n\\ No newline at end of field\n"
        text = "".join(
            difflib.unified_diff(
                a_lines, b_lines, fromfile=f"{from_label}/{name}", tofile=f"{to_label}/{name}"
            )
        )
        result.unified[name] = text
    return result
