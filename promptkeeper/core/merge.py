"""Three-way merge of content documents, for drafts merged back onto a prompt's moving head.

Pure. A draft ("ours") is forked from a version ("base") and edited while the prompt's head ("theirs")
moves on. Most concurrent edits touch different fields, different messages or different lines of one
template and should combine without asking anyone; only edits that really overlap become
`MergeConflict`s for a person to resolve. Strings and lists are merged with diff3 (the merge3 algorithm
of bzr and Mercurial, over lines or list items), so what is a conflict matches what people know from git.

Conventions:
- Paths are written like `diff.Change.path`: `template`, `config.temperature`, `messages[1].content`.
  List indices in paths are positions in the merged list.
- `"lines"` conflicts carry inclusive ranges: 1-based line numbers for strings, 0-based item indices for
  lists. An empty range is `(k, k - 1)`: nothing, at the point just before line/item `k` (the side
  inserted nothing there, or deleted the lines); e.g. an insertion after the last of 3 lines is `(4, 3)`
  in base.
- Lines end at `"\\n"` only (kept on the line), so line numbers match what an editor shows.
- Strings with no newline in any of the three versions (names, models, roles) are scalars: a `"value"`
  conflict, not a `"lines"` one.
- A key missing on one side is a distinct "absent" value; a conflict reports it as `None`.
- Structures merge only when all three sides have the same kind (dict/list/multi-line string); a key added
  on both sides with different values, or a type change, is a `"value"` conflict.
- Where a conflict remains, the merged document holds "ours" (the draft) at that spot.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["MergeConflict", "MergeResult", "merge_documents", "merge_text"]

ConflictKind = Literal["lines", "value"]
Range = tuple[int, int]
_Chunk = tuple[str, int, int, int, int, int, int]
_ABSENT = object()


@dataclass(frozen=True)
class MergeConflict:
    """One spot both sides changed differently; see the module docstring for the range convention."""

    path: str
    kind: ConflictKind
    base: Any
    ours: Any
    theirs: Any
    base_lines: Range | None = None
    ours_lines: Range | None = None
    theirs_lines: Range | None = None

    def as_dict(self) -> dict[str, Any]:
        def span(value: Range | None) -> list[int] | None:
            return None if value is None else [value[0], value[1]]

        return {
            "path": self.path,
            "kind": self.kind,
            "base": self.base,
            "ours": self.ours,
            "theirs": self.theirs,
            "base_lines": span(self.base_lines),
            "ours_lines": span(self.ours_lines),
            "theirs_lines": span(self.theirs_lines),
        }


@dataclass
class MergeResult:
    merged: dict[str, Any]
    conflicts: list[MergeConflict] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.conflicts


def _join(prefix: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else key


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _same(x: Any, y: Any) -> bool:
    """JSON equality: unlike `==`, `1`, `1.0` and `True` differ; dict key order does not matter."""
    if x is _ABSENT or y is _ABSENT:
        return x is y
    return bool(x == y) and _canonical(x) == _canonical(y)


def _public(value: Any) -> Any:
    return None if value is _ABSENT else value


def _split_lines(text: str) -> list[str]:
    parts = text.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _sync_regions(
    base: Sequence[Hashable], ours: Sequence[Hashable], theirs: Sequence[Hashable]
) -> list[tuple[int, int, int, int, int, int]]:
    """Base stretches unchanged on both sides, as (base, ours, theirs) start/end pairs, then an end mark."""
    ours_blocks = difflib.SequenceMatcher(None, base, ours, autojunk=False).get_matching_blocks()
    theirs_blocks = difflib.SequenceMatcher(None, base, theirs, autojunk=False).get_matching_blocks()
    regions: list[tuple[int, int, int, int, int, int]] = []
    i = j = 0
    while i < len(ours_blocks) and j < len(theirs_blocks):
        o_base, o_at, o_len = ours_blocks[i]
        t_base, t_at, t_len = theirs_blocks[j]
        start, end = max(o_base, t_base), min(o_base + o_len, t_base + t_len)
        if start < end:
            o_start, t_start = o_at + start - o_base, t_at + start - t_base
            regions.append((start, end, o_start, o_start + end - start, t_start, t_start + end - start))
        if o_base + o_len < t_base + t_len:
            i += 1
        else:
            j += 1
    regions.append((len(base), len(base), len(ours), len(ours), len(theirs), len(theirs)))
    return regions


def _diff3(
    base: Sequence[Hashable], ours: Sequence[Hashable], theirs: Sequence[Hashable]
) -> Iterator[_Chunk]:
    """Chunks (kind, base start/end, ours start/end, theirs start/end) covering all three sequences.

    kind is "unchanged", "same" (identical change on both sides), "ours", "theirs" (only that side
    changed) or "conflict". Changes that overlap or touch with no unchanged token between them conflict.
    """
    z = a = b = 0
    for z_match, z_end, a_match, a_end, b_match, b_end in _sync_regions(base, ours, theirs):
        if a_match > a or b_match > b:
            chunk_base, chunk_ours, chunk_theirs = base[z:z_match], ours[a:a_match], theirs[b:b_match]
            if chunk_ours == chunk_theirs:
                kind = "same"
            elif chunk_base == chunk_ours:
                kind = "theirs"
            elif chunk_base == chunk_theirs:
                kind = "ours"
            else:
                kind = "conflict"
            yield (kind, z, z_match, a, a_match, b, b_match)
        if z_end > z_match:
            yield ("unchanged", z_match, z_end, a_match, a_end, b_match, b_end)
        z, a, b = z_end, a_end, b_end


def merge_text(base: str, ours: str, theirs: str, *, path: str = "") -> tuple[str, list[MergeConflict]]:
    """Line-based diff3 of one string; conflicting chunks keep the `ours` lines in the merged text."""
    base_lines, ours_lines, theirs_lines = _split_lines(base), _split_lines(ours), _split_lines(theirs)
    out: list[str] = []
    conflicts: list[MergeConflict] = []
    for kind, z1, z2, a1, a2, b1, b2 in _diff3(base_lines, ours_lines, theirs_lines):
        out.extend(theirs_lines[b1:b2] if kind == "theirs" else ours_lines[a1:a2])
        if kind == "conflict":
            conflicts.append(
                MergeConflict(
                    path,
                    "lines",
                    "".join(base_lines[z1:z2]),
                    "".join(ours_lines[a1:a2]),
                    "".join(theirs_lines[b1:b2]),
                    (z1 + 1, z2),
                    (a1 + 1, a2),
                    (b1 + 1, b2),
                )
            )
    return "".join(out), conflicts


def _merge_dicts(
    base: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any], path: str, out: list[MergeConflict]
) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for key in [*ours, *(key for key in theirs if key not in ours)]:
        value = _merge(
            base.get(key, _ABSENT), ours.get(key, _ABSENT), theirs.get(key, _ABSENT), _join(path, key), out
        )
        if value is not _ABSENT:
            merged[key] = value
    return merged


def _merge_lists(
    base: list[Any], ours: list[Any], theirs: list[Any], path: str, out: list[MergeConflict]
) -> list[Any]:
    if len(base) == len(ours) == len(theirs):
        return [
            _merge(z, a, b, _join(path, i), out)
            for i, (z, a, b) in enumerate(zip(base, ours, theirs, strict=True))
        ]
    keys = [[_canonical(item) for item in items] for items in (base, ours, theirs)]
    merged: list[Any] = []
    for kind, z1, z2, a1, a2, b1, b2 in _diff3(*keys):
        if kind != "conflict":
            merged.extend(theirs[b1:b2] if kind == "theirs" else ours[a1:a2])
        elif z2 - z1 == a2 - a1 == b2 - b1:
            for z, a, b in zip(base[z1:z2], ours[a1:a2], theirs[b1:b2], strict=True):
                merged.append(_merge(z, a, b, _join(path, len(merged)), out))
        else:
            out.append(
                MergeConflict(
                    path,
                    "lines",
                    base[z1:z2],
                    ours[a1:a2],
                    theirs[b1:b2],
                    (z1, z2 - 1),
                    (a1, a2 - 1),
                    (b1, b2 - 1),
                )
            )
            merged.extend(ours[a1:a2])
    return merged


def _merge(base: Any, ours: Any, theirs: Any, path: str, out: list[MergeConflict]) -> Any:
    """The merged value (`_ABSENT` for a deleted key); conflicts are appended to `out`."""
    if _same(ours, theirs) or _same(theirs, base):
        return ours
    if _same(ours, base):
        return theirs
    if isinstance(base, dict) and isinstance(ours, dict) and isinstance(theirs, dict):
        return _merge_dicts(base, ours, theirs, path, out)
    if isinstance(base, list) and isinstance(ours, list) and isinstance(theirs, list):
        return _merge_lists(base, ours, theirs, path, out)
    strings = (base, ours, theirs)
    if all(isinstance(s, str) for s in strings) and any("\n" in s for s in strings):
        text, found = merge_text(base, ours, theirs, path=path)
        out.extend(found)
        return text
    out.append(MergeConflict(path, "value", _public(base), _public(ours), _public(theirs)))
    return ours


def merge_documents(base: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any]) -> MergeResult:
    """Merge the draft (`ours`) and the head (`theirs`), both derived from `base`. Inputs are not modified."""
    base, ours, theirs = copy.deepcopy(base), copy.deepcopy(ours), copy.deepcopy(theirs)
    conflicts: list[MergeConflict] = []
    merged = _merge_dicts(base, ours, theirs, "", conflicts)
    return MergeResult(merged=merged, conflicts=conflicts)
