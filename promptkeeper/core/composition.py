"""Prompt composition: references to other prompts inside a template, and their expansion.

A reference is `@@@prompt:name=base|label=production@@@` or `@@@prompt:name=base|version=3@@@`;
Langfuse's own spelling `@@@langfusePrompt:name=…|label=…@@@` is the same reference. Why this form
and not a Jinja-like `{{@ base }}`: the tag holds none of Jinja's delimiters (`{{`, `{%`, `{#`), so
the raw text of a composed prompt (`?resolve=false`) still parses and renders as a template, and
the tag comes out of rendering unchanged instead of as a syntax error; and prompts exported from
Langfuse compose here without an edit.

A label is an environment: the reference follows what that environment serves, so a deploy of
`base` changes every prompt that includes `base` by label. A version reference never changes.

Expansion is pure: a `fetch` callback answers "what does this reference point at", the caller
decides whether that is now, at an instant of the past, or the state a deploy would create. The
expanded text is bounded (depth, and each composed template by `MAX_TEMPLATE_CHARS`, the size a
stored template may have), and checked while it is built, so a diamond of includes cannot allocate
more than that bound.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from promptkeeper.core.content import MAX_TEMPLATE_CHARS

#: How many includes deep a composition may go (outer → mid → base is 2).
MAX_DEPTH = 8

TAG = re.compile(r"@@@(?:prompt|langfusePrompt):([^@\n]{0,600})@@@")
#: Any prompt name the registry may hold now or later: case, folders and `._-` (never `|` or `@`).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ARROW = " → "


@dataclass(frozen=True, slots=True)
class Reference:
    """One tag in one template field: by label (an environment) or by version, never both."""

    name: str
    label: str | None
    version: int | None
    field: str
    start: int
    end: int

    @property
    def target(self) -> str:
        return f"{self.name}@{self.label}" if self.label is not None else f"{self.name}#{self.version}"


@dataclass(frozen=True, slots=True)
class Target:
    """What a reference points at: the version and its content (`revision`: the label's release)."""

    name: str
    version: int
    content: Mapping[str, Any]
    label: str | None = None
    revision: int | None = None


@dataclass(frozen=True, slots=True)
class Include:
    """One reference followed while composing (flattened: nested ones too)."""

    name: str
    label: str | None
    version: int
    revision: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "version": self.version, "revision": self.revision}


class CompositionError(Exception):
    """A reference that cannot be followed. `path` is the chain of prompts, `field` where the tag is."""

    def __init__(self, message: str, *, reason: str, path: list[str], field: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.path = path
        self.field = field

    def details(self) -> dict[str, Any]:
        return {"field": self.field, "reason": self.reason, "path": ARROW.join(self.path)}


class Unresolvable(Exception):
    """Raised by a `fetch` callback: the reference names nothing (`reason` says what is missing)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


Fetch = Callable[[Reference], Target]


def _fields(content: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    if content.get("type") == "chat":
        for index, message in enumerate(content.get("messages", [])):
            if message.get("type") != "placeholder":
                yield f"messages[{index}].content", str(message.get("content", ""))
    else:
        yield "template", str(content.get("template", ""))


def _parse(body: str, field: str, start: int, end: int) -> Reference:
    values: dict[str, str] = {}
    for part in body.split("|"):
        key, separator, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not separator or key not in ("name", "label", "version") or key in values:
            raise CompositionError(
                f"content.{field}: '{part.strip()[:40]}' is not name=…, label=… or version=… "
                f"in the reference @@@prompt:{body[:80]}@@@",
                reason="invalid_reference",
                path=[],
                field=f"content.{field}",
            )
        values[key] = value
    name, label, version = values.get("name", ""), values.get("label"), values.get("version")
    problem = None
    if not _NAME.match(name):
        problem = f"name {name[:80]!r} is not a prompt name"
    elif (label is None) == (version is None):
        problem = "give either label=<environment> or version=<number>"
    elif label is not None and not _LABEL.match(label):
        problem = f"label {label[:64]!r} is not an environment name"
    elif label == "latest":
        problem = "label=latest is not supported: name an environment or a version"
    elif version is not None and not (version.isascii() and version.isdigit() and 0 < int(version) < 2**31):
        problem = f"version {version[:20]!r} is not a version number"
    if problem is not None:
        raise CompositionError(
            f"content.{field}: {problem} in the reference @@@prompt:{body[:80]}@@@",
            reason="invalid_reference",
            path=[],
            field=f"content.{field}",
        )
    return Reference(
        name=name,
        label=label,
        version=int(version) if version is not None else None,
        field=field,
        start=start,
        end=end,
    )


def references(content: Mapping[str, Any]) -> list[Reference]:
    """Every reference of a content document, in order (raises `CompositionError` for a bad tag)."""
    found: list[Reference] = []
    for field, text in _fields(content):
        if "@@@" not in text:
            continue
        for match in TAG.finditer(text):
            found.append(_parse(match.group(1), field, match.start(), match.end()))
    return found


class _Expander:
    def __init__(self, fetch: Fetch, root: str, forbidden: str | None) -> None:
        self._fetch = fetch
        self._root = root
        self._forbidden = forbidden
        self._done: dict[tuple[str, int], str] = {}
        self.includes: dict[tuple[str, str | None, int], Include] = {}

    def text(self, text: str, refs: list[Reference], path: list[tuple[str, int]], names: list[str]) -> str:
        pieces: list[str] = []
        size = 0
        position = 0
        for ref in refs:
            inner = self._follow(ref, path, names)
            piece = text[position : ref.start]
            size += len(piece) + len(inner)
            if size > MAX_TEMPLATE_CHARS:
                raise CompositionError(
                    f"content.{ref.field}: the composed template would pass {MAX_TEMPLATE_CHARS} characters "
                    f"({ARROW.join([*names, ref.target])})",
                    reason="too_large",
                    path=[*names, ref.target],
                    field=f"content.{ref.field}",
                )
            pieces.append(piece)
            pieces.append(inner)
            position = ref.end
        pieces.append(text[position:])
        size += len(text) - position
        if size > MAX_TEMPLATE_CHARS:
            raise CompositionError(
                f"the composed template would pass {MAX_TEMPLATE_CHARS} characters ({ARROW.join(names)})",
                reason="too_large",
                path=names,
                field=f"content.{refs[0].field}" if refs else "content",
            )
        return "".join(pieces)

    def _follow(self, ref: Reference, path: list[tuple[str, int]], names: list[str]) -> str:
        chain = [*names, ref.target]
        where = f"content.{ref.field}"
        if self._forbidden is not None and ref.name == self._forbidden and ref.label is not None:
            raise CompositionError(
                f"{where}: including '{ref.name}' through a label makes a cycle: {ARROW.join(chain)}",
                reason="cycle",
                path=chain,
                field=where,
            )
        if len(names) > MAX_DEPTH:
            raise CompositionError(
                f"{where}: includes nest more than {MAX_DEPTH} deep: {ARROW.join(chain)}",
                reason="too_deep",
                path=chain,
                field=where,
            )
        try:
            target = self._fetch(ref)
        except Unresolvable as exc:
            raise CompositionError(
                f"{where}: {exc.message} ({ARROW.join(chain)})", reason=exc.reason, path=chain, field=where
            ) from None
        node = (target.name, target.version)
        if node in path:
            raise CompositionError(
                f"{where}: the includes make a cycle: {ARROW.join(chain)}",
                reason="cycle",
                path=chain,
                field=where,
            )
        if target.content.get("type") != "text":
            raise CompositionError(
                f"{where}: '{target.name}' version {target.version} is a chat prompt; only text prompts "
                f"can be included ({ARROW.join(chain)})",
                reason="not_text",
                path=chain,
                field=where,
            )
        self.includes.setdefault(
            (target.name, ref.label, target.version),
            Include(name=target.name, label=ref.label, version=target.version, revision=target.revision),
        )
        cached = self._done.get(node)
        if cached is not None:
            return cached
        source = str(target.content.get("template", ""))
        try:
            refs = references(target.content)
        except CompositionError as exc:
            raise CompositionError(
                f"{exc.message} ({ARROW.join(chain)})", reason=exc.reason, path=chain, field=where
            ) from None
        expanded = self.text(source, refs, [*path, node], chain) if refs else source
        self._done[node] = expanded
        return expanded


@dataclass(frozen=True, slots=True)
class Expansion:
    content: dict[str, Any]
    includes: tuple[Include, ...]


def expand(
    content: Mapping[str, Any],
    fetch: Fetch,
    *,
    root: str,
    node: tuple[str, int] | None = None,
    forbid_label_of: str | None = None,
) -> Expansion:
    """`content` with every reference replaced by the referenced text, recursively.

    `root` names the prompt being expanded (for the path in errors); `node` is its `(name, version)`
    when it has one, so a chain back to it is a cycle. `forbid_label_of`: a prompt that no label may lead
    back to (a version being saved, which any of its prompt's labels may come to serve).
    """
    refs = references(content)
    if not refs:
        return Expansion(dict(content), ())
    expander = _Expander(fetch, root, forbid_label_of)
    path: list[tuple[str, int]] = [node] if node is not None else []
    composed = dict(content)
    by_field: dict[str, list[Reference]] = {}
    for ref in refs:
        by_field.setdefault(ref.field, []).append(ref)
    if content.get("type") == "chat":
        messages = [dict(m) for m in content.get("messages", [])]
        for index, message in enumerate(messages):
            field_refs = by_field.get(f"messages[{index}].content")
            if field_refs:
                message["content"] = expander.text(str(message["content"]), field_refs, path, [root])
        composed["messages"] = messages
    else:
        composed["template"] = expander.text(
            str(content.get("template", "")), by_field["template"], path, [root]
        )
    return Expansion(composed, tuple(expander.includes.values()))
