"""Prompts as files: one YAML file per prompt, for repositories, reviews and CI (docs/files.md).

A file holds the prompt's metadata and the content of one version:

    name: support/reply
    description: Customer-support answer in the brand voice.
    owner: support-team
    tags: [support, chat]
    base_version: 3            # the version this file was pulled at: push refuses a newer remote head
    type: chat
    messages:
      - role: system
        content: |
          You are a helpful support agent for {{ product }}.
      - placeholder: history
      - role: user
        content: '{{ question }}'
    config: {model: gpt-4o-mini, temperature: 0.2}

Text prompts have `template:` instead of `messages:`; `examples` and `response_schema` are
optional. Multi-line strings are written as `|` blocks so a diff of the file reads like a diff of
the prompt. The file `DIR/support/reply.yaml` holds the prompt `support/reply`.

Pure: parsing, checking (offline, with the file and line of a broken template), writing. The CLI
(`cli/files.py`) does the HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from promptkeeper.core.content import content_document
from promptkeeper.core.fields import check_prompt_name
from promptkeeper.core.templates import InvalidTemplate, content_variables
from promptkeeper.errors import field_errors
from promptkeeper.prompts.service import parse_content

SUFFIX = ".yaml"
META = ("description", "owner", "tags")
CONTENT_KEYS = ("type", "template", "messages", "examples", "config", "response_schema")
KNOWN = ("name", "base_version", *META, *CONTENT_KEYS)


class FileError(ValueError):
    """A file that cannot be pushed: `where` is `path:line`."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


@dataclass
class PromptFile:
    path: Path
    name: str
    content: dict[str, Any]
    base_version: int | None
    meta: dict[str, Any] = field(default_factory=dict)


# -- writing ---------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_document(
    name: str, content: dict[str, Any], base_version: int | None, meta: dict[str, Any]
) -> dict[str, Any]:
    """The file's mapping: metadata, base version, then the content (placeholders as `placeholder: NAME`)."""
    document: dict[str, Any] = {"name": name}
    for key in META:
        value = meta.get(key)
        if value not in (None, "", []):
            document[key] = value
    if base_version is not None:
        document["base_version"] = base_version
    document["type"] = content["type"]
    if content["type"] == "text":
        document["template"] = content.get("template", "")
    else:
        document["messages"] = [
            {"placeholder": m["name"]}
            if m.get("type") == "placeholder"
            else {"role": m["role"], "content": m["content"]}
            for m in content.get("messages", [])
        ]
    for key in ("examples", "config", "response_schema"):
        if content.get(key):
            document[key] = content[key]
    return document


def dump(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def path_of(directory: Path, name: str) -> Path:
    return directory.joinpath(*name.split("/")).with_suffix(SUFFIX)


# -- reading and checking -----------------------------------------------------------------------------


def _lines(node: yaml.Node, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """1-based line of each value in the YAML tree (for error messages); block scalars start on the
    line after their `|`."""
    found: dict[tuple[Any, ...], int] = {}
    line = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
        line += 1
    found[path] = line
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            found.update(_lines(value, (*path, key.value)))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found.update(_lines(item, (*path, index)))
    return found


def _content_path(field_name: str | None) -> tuple[Any, ...]:
    """`messages[2].content` -> ('messages', 2, 'content')."""
    if not field_name:
        return ()
    parts: list[Any] = []
    for piece in field_name.replace("]", "").split("."):
        name, _, index = piece.partition("[")
        parts.append(name)
        if index:
            parts.append(int(index))
    return tuple(parts)


def load(path: Path, directory: Path | None = None) -> PromptFile:
    """Parse and check one file; raises `FileError` naming the file and line of the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FileError(str(path), f"cannot read: {exc}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise FileError(f"{path}{line}", f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict) or node is None:
        raise FileError(str(path), "expected a mapping with name, type and the content")
    lines = _lines(node)

    def where(*key: Any) -> str:
        return f"{path}:{lines.get(key, lines.get(key[:1], 1))}"

    unknown = sorted(set(raw) - set(KNOWN))
    if unknown:
        raise FileError(where(unknown[0]), f"unknown key(s) {', '.join(unknown)} (known: {', '.join(KNOWN)})")
    name = raw.get("name")
    if not isinstance(name, str):
        raise FileError(where("name"), "'name' is required: the prompt's name")
    try:
        check_prompt_name(name)
    except ValueError as exc:
        raise FileError(where("name"), f"invalid name {name!r}: {exc}") from None
    if directory is not None and path_of(directory, name).resolve() != path.resolve():
        raise FileError(where("name"), f"the prompt '{name}' belongs in {path_of(directory, name)}")
    base = raw.get("base_version")
    if base is not None and (not isinstance(base, int) or isinstance(base, bool) or base < 1):
        raise FileError(where("base_version"), "base_version must be a version number")
    content_raw: dict[str, Any] = {key: raw[key] for key in CONTENT_KEYS if key in raw}
    messages = content_raw.get("messages")
    if isinstance(messages, list):
        content_raw["messages"] = [
            {"type": "placeholder", "name": m["placeholder"]}
            if isinstance(m, dict) and "placeholder" in m
            else m
            for m in messages
        ]
    try:
        document = content_document(parse_content(content_raw))
    except ValidationError as exc:
        message, errors = field_errors(list(exc.errors()))
        location = (
            tuple(
                p for p in errors[0].get("loc", ()) if p not in ("TextContent", "ChatContent", "text", "chat")
            )
            if errors
            else ()
        )
        raise FileError(where(*location) if location else str(path), message.removeprefix("body.")) from None
    try:
        content_variables(document)
    except InvalidTemplate as exc:
        start = lines.get(_content_path(exc.field), 1)
        at_line = start + (exc.line - 1 if exc.line else 0)
        raise FileError(
            f"{path}:{at_line}", f"template error in {exc.field or 'content'}: {exc.message}"
        ) from None
    meta = {key: raw[key] for key in META if key in raw}
    if "tags" in meta and not (
        isinstance(meta["tags"], list) and all(isinstance(t, str) for t in meta["tags"])
    ):
        raise FileError(where("tags"), "tags must be a list of strings")
    return PromptFile(path=path, name=name, content=document, base_version=base, meta=meta)


def load_directory(directory: Path) -> tuple[list[PromptFile], list[FileError]]:
    """Every `*.yaml` below `directory`, checked; all problems at once (a push applies none then)."""
    files: list[PromptFile] = []
    errors: list[FileError] = []
    names: dict[str, PromptFile] = {}  # by lower-cased name: names are unique regardless of case
    for path in sorted(directory.rglob(f"*{SUFFIX}")):
        try:
            loaded = load(path, directory)
        except FileError as exc:
            errors.append(exc)
            continue
        other = names.get(loaded.name.lower())
        if other is not None:
            same = (
                ""
                if other.name == loaded.name
                else f" as '{other.name}' (names are unique regardless of case)"
            )
            errors.append(FileError(str(path), f"the prompt '{loaded.name}' is also in {other.path}{same}"))
            continue
        names[loaded.name.lower()] = loaded
        files.append(loaded)
    return files, errors
