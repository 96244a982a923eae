"""Sandboxed Jinja2 templates: parsing, variable discovery and rendering.

Shared by the server and the SDK, so it does no I/O and imports nothing of ours but `core.sandbox`.
Prompt content is handled here as plain JSON (`dict`), the shape stored in a version and returned by
`/v1/resolve`:

    {"type": "text", "template": "...", "examples": [...], "config": {...}}
    {"type": "chat", "messages": [{"role": "system", "content": "..."},
                                  {"type": "placeholder", "name": "history"}, ...], ...}

Why a sandbox: templates are written by people who are not the operators of the server, and they
are rendered in the server and in every application. `ImmutableSandboxedEnvironment` blocks access to
Python internals (`__class__`, `__globals__`, ...) and mutation of arguments; on top of it we
forbid `include`/`import`/`extends` (a prompt is self-contained), and `core.sandbox` bounds the size of
every value and gives each render a deadline, so a hostile template can neither execute code nor hold a
worker (neither when it is saved nor when it is rendered).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.exceptions import TemplateError as JinjaTemplateError

from promptkeeper.core.sandbox import (
    MAX_INT_DIGITS,
    MAX_ITEMS,
    MAX_OUTPUT_CHARS,
    MAX_STRING_CHARS,
    RENDER_TIMEOUT,
    SANDBOX,
    LimitExceeded,
    check_deadline,
    compile_template,
    end_render,
    guard_loops,
    render_deadline,
    undeclared_variables,
)

__all__ = [
    "EXAMPLES_VARIABLE",
    "InvalidTemplate",
    "MAX_INT_DIGITS",
    "MAX_OUTPUT_CHARS",
    "MAX_ITEMS",
    "MAX_STRING_CHARS",
    "MissingVariables",
    "RENDER_TIMEOUT",
    "RenderFailed",
    "TemplateError",
    "content_placeholders",
    "content_variables",
    "render_content",
    "render_template",
    "template_variables",
]

#: The content's few-shot examples are available to templates under this name.
EXAMPLES_VARIABLE = "examples"

_UNDEFINED_NAME = re.compile(r"^'([^']+)' is undefined$")


class TemplateError(ValueError):
    """Base of the template errors; `field` names the part of the content (`messages[2].content`)."""

    def __init__(self, message: str, *, field: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.line = line

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.field is not None:
            out["field"] = self.field
        if self.line is not None:
            out["line"] = self.line
        return out


class InvalidTemplate(TemplateError):
    """The template does not parse, or uses a construct prompts may not use."""


class MissingVariables(TemplateError):
    """Rendering needed variables the caller did not pass."""

    def __init__(self, names: list[str], *, field: str | None = None) -> None:
        plural = "s" if len(names) > 1 else ""
        super().__init__(f"missing variable{plural}: {', '.join(names)}", field=field)
        self.names = names

    def details(self) -> dict[str, Any]:
        return {**super().details(), "missing": self.names}


class RenderFailed(TemplateError):
    """The template parsed but failed while rendering (bad value, unsafe access, limits)."""


_ENV = SANDBOX
_FORBIDDEN_NODES: tuple[tuple[type[nodes.Node], str], ...] = (
    (nodes.Include, "include"),
    (nodes.Import, "import"),
    (nodes.FromImport, "from ... import"),
    (nodes.Extends, "extends"),
)


#: A compiled template costs about 3 KB of Python objects: 4,096 of them made a server that saves
#: versions all day grow by 12 MB and more (the soak, docs/benchmarks.md). The templates a process
#: renders again and again are the live versions of its prompts; every new version is parsed once
#: at save and rarely again, so a small cache keeps the hits and lets the rest go.
PARSE_CACHE_SIZE = 512


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def _parse(source: str) -> tuple[tuple[str, ...], Any]:
    """Parse once per distinct source: the variables in first-use order and the compiled template."""
    try:
        ast = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise InvalidTemplate(f"line {exc.lineno}: {exc.message}", line=exc.lineno) from None
    except RecursionError:
        raise InvalidTemplate("the whole template: expressions nested too deeply") from None
    except ValueError as exc:  # the lexer's int() of a number literal longer than Python allows
        raise InvalidTemplate(f"the whole template: {exc}") from None
    for node_type, label in _FORBIDDEN_NODES:
        node = ast.find(node_type)
        if node is not None:
            raise InvalidTemplate(
                f"line {node.lineno}: '{label}' is not allowed in prompt templates", line=node.lineno
            )
    try:
        undeclared = undeclared_variables(ast)  # also checks that every filter and test exists
    except TemplateSyntaxError as exc:
        raise InvalidTemplate(f"line {exc.lineno}: {exc.message}", line=exc.lineno) from None
    except RecursionError:
        raise InvalidTemplate("the whole template: expressions nested too deeply") from None
    ordered: list[str] = []
    for name_node in ast.find_all(nodes.Name):
        name = name_node.name
        if name in undeclared and name not in ordered:
            ordered.append(name)
    guard_loops(ast)
    try:
        template = compile_template(ast)
    except TemplateSyntaxError as exc:  # pragma: no cover - parse already succeeded
        raise InvalidTemplate(f"line {exc.lineno}: {exc.message}", line=exc.lineno) from None
    except RecursionError:
        raise InvalidTemplate("the whole template: expressions nested too deeply") from None
    return tuple(ordered), template


def template_variables(source: str, *, field: str | None = None) -> list[str]:
    """Variables a template reads, in order of first use; raises `InvalidTemplate` naming the line."""
    try:
        names, _ = _parse(source)
    except InvalidTemplate as exc:
        raise InvalidTemplate(exc.message, field=field, line=exc.line) from None
    return [n for n in names if n != EXAMPLES_VARIABLE]


def _content_templates(content: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    if content.get("type") == "chat":
        for index, message in enumerate(content.get("messages", [])):
            if message.get("type") != "placeholder":
                yield f"messages[{index}].content", message.get("content", "")
    else:
        yield "template", content.get("template", "")


def content_variables(content: Mapping[str, Any]) -> list[str]:
    """All template variables of a prompt's content, in order of first use, checking every template."""
    ordered: list[str] = []
    for field, source in _content_templates(content):
        for name in template_variables(source, field=field):
            if name not in ordered:
                ordered.append(name)
    return ordered


def content_placeholders(content: Mapping[str, Any]) -> list[str]:
    """Names of the message-list placeholders of a chat prompt."""
    if content.get("type") != "chat":
        return []
    return [m["name"] for m in content.get("messages", []) if m.get("type") == "placeholder"]


def _render(source: str, context: Mapping[str, Any], *, field: str) -> str:
    names, template = _parse(source)
    pieces: list[str] = []
    size = 0
    try:
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise RenderFailed(f"rendered output exceeds {MAX_OUTPUT_CHARS} characters", field=field)
            pieces.append(chunk)
            check_deadline()
    except RenderFailed:
        raise
    except UndefinedError as exc:
        missing = [n for n in names if n not in context]
        if not missing:
            match = _UNDEFINED_NAME.match(str(exc))
            if match is None:
                raise RenderFailed(str(exc), field=field) from None
            missing = [match.group(1)]
        raise MissingVariables(missing, field=field) from None
    except SecurityError as exc:
        raise RenderFailed(f"unsafe template operation: {exc}", field=field) from None
    except LimitExceeded as exc:
        raise RenderFailed(str(exc), field=field) from None
    except MemoryError:
        raise RenderFailed("out of memory while rendering", field=field) from None
    except JinjaTemplateError as exc:
        raise RenderFailed(str(exc), field=field) from None
    except (
        ArithmeticError,
        AttributeError,
        TypeError,
        ValueError,
        LookupError,
        RecursionError,
    ) as exc:
        raise RenderFailed(f"{type(exc).__name__}: {exc}", field=field) from None
    return "".join(pieces)


def render_template(source: str, variables: Mapping[str, Any]) -> str:
    """Render one template string; errors as for `render_content`."""
    token = render_deadline()
    try:
        return _render(source, variables, field="template")
    finally:
        end_render(token)


def _placeholder_messages(name: str, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise RenderFailed(
            f"placeholder '{name}' needs a list of messages, got {type(value).__name__}", field=name
        )
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        if not isinstance(item, Mapping) or not isinstance(item.get("role"), str) or "content" not in item:
            raise RenderFailed(
                f"placeholder '{name}' item {index} must be an object with 'role' and 'content'", field=name
            )
        messages.append(dict(item))
    return messages


def render_content(content: Mapping[str, Any], variables: Mapping[str, Any]) -> str | list[dict[str, Any]]:
    """Render a prompt: a string for a text prompt, a list of `{role, content}` messages for a chat prompt.

    Every missing variable is reported at once (`MissingVariables.names`), never rendered as empty.
    The content's `examples` are available as the variable `examples` unless the caller passes one.
    """
    context: dict[str, Any] = {EXAMPLES_VARIABLE: content.get("examples", [])}
    context.update(variables)
    missing = [
        name for name in [*content_variables(content), *content_placeholders(content)] if name not in context
    ]
    token = render_deadline()
    try:
        if content.get("type") != "chat":
            try:
                return _render(content.get("template", ""), context, field="template")
            except MissingVariables:
                if missing:
                    raise MissingVariables(missing, field="template") from None
                raise
        out: list[dict[str, Any]] = []
        for index, message in enumerate(content.get("messages", [])):
            if message.get("type") == "placeholder":
                name = message["name"]
                if name in context:
                    out.extend(_placeholder_messages(name, context[name]))
                continue
            field = f"messages[{index}].content"
            try:
                text = _render(message.get("content", ""), context, field=field)
            except MissingVariables:
                if missing:
                    raise MissingVariables(missing, field=field) from None
                raise
            out.append({"role": message["role"], "content": text})
        placeholder_missing = [n for n in content_placeholders(content) if n not in context]
        if placeholder_missing:
            raise MissingVariables(placeholder_missing)
        return out
    finally:
        end_render(token)
