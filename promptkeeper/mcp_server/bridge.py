"""The registry as an MCP server: `prompts/list`, `prompts/get` and `list_changed` (docs/mcp.md).

One server definition for both transports; what differs is where prompts come from (`Source`):
over stdio, a running PromptKeeper through the SDK (its cache, its stream, its fallbacks); in
`promptkeeper serve` at `/mcp`, the instance's own resolver, with the caller's key.

MCP arguments are strings. A chat placeholder (a list of messages) is passed as JSON text.
MCP messages have two roles, `user` and `assistant`: system, developer and tool messages are sent as
`user` messages, in their place, so nothing of the prompt is dropped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import INVALID_PARAMS

from promptkeeper import __version__
from promptkeeper.client._prompt import Prompt
from promptkeeper.core.templates import MissingVariables, TemplateError

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
#: The `_meta` key of `prompts/get` that names the unit (user, session) for experiment assignment.
UNIT_META_KEY = "promptkeeper/unit"


class UnknownPrompt(LookupError):
    """The environment serves no prompt of that name."""


class Source(Protocol):
    """Where one connection's prompts come from."""

    environment: str

    async def catalogue(self, offset: int, limit: int) -> dict[str, Any]:
        """A page of `GET /v1/catalogue`: `{items, total}`."""
        ...

    async def prompt(self, name: str, unit: str | None) -> Prompt:
        """The version the environment serves (the unit's variant under an experiment)."""
        ...


Sources = Callable[[ServerRequestContext[Any]], Awaitable[Source]]
Watch = Callable[[ServerRequestContext[Any]], Awaitable[None]]


def invalid(message: str, **data: Any) -> MCPError:
    return MCPError(INVALID_PARAMS, message, data or None)


def listing(entry: dict[str, Any]) -> types.Prompt:
    required = set(entry["required"])
    arguments = [
        types.PromptArgument(name=name, required=name in required, description=f"template variable '{name}'")
        for name in entry["variables"]
    ] + [
        types.PromptArgument(
            name=name, required=True, description=f"placeholder '{name}': a JSON list of {{role, content}}"
        )
        for name in entry["placeholders"]
    ]
    description = entry["description"] or f"{entry['type']} prompt"
    return types.Prompt(
        name=entry["name"], description=f"{description} (v{entry['version']})", arguments=arguments
    )


def _cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not (cursor.isascii() and cursor.isdigit()):
        raise invalid(f"cursor: {cursor[:40]!r} is not a cursor this server gave", field="cursor")
    return int(cursor)


def variables_of(prompt: Prompt, arguments: dict[str, str]) -> dict[str, Any]:
    """The render variables from MCP's string arguments: placeholders parsed from JSON."""
    known = [*prompt.variables, *prompt.placeholders]
    unknown = [name for name in arguments if name not in known]
    if unknown:
        takes = ", ".join(known) or "no arguments"
        raise invalid(
            f"unknown argument {unknown[0]!r} for prompt '{prompt.name}' (it takes: {takes})",
            argument=unknown[0],
        )
    variables: dict[str, Any] = dict(arguments)
    for name in prompt.placeholders:
        if name in arguments:
            try:
                variables[name] = json.loads(arguments[name])
            except ValueError:
                raise invalid(
                    f"argument '{name}': a placeholder takes a JSON list of messages", argument=name
                ) from None
    return variables


def messages_of(rendered: str | list[dict[str, Any]]) -> list[types.PromptMessage]:
    if isinstance(rendered, str):
        return [types.PromptMessage(role="user", content=types.TextContent(text=rendered))]
    return [
        types.PromptMessage(
            role="assistant" if message["role"] == "assistant" else "user",
            content=types.TextContent(text=str(message["content"])),
        )
        for message in rendered
    ]


class PromptServer(Server[Any]):
    """A lowlevel MCP server whose handshake says that the prompt list can change."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NotificationOptions(prompts_changed=True),
            experimental_capabilities,
            extensions,
        )


def build_server(sources: Sources, watch: Watch | None = None) -> PromptServer:
    async def list_prompts(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        source = await sources(ctx)
        offset = _cursor(params.cursor if params is not None else None)
        page = await source.catalogue(offset, PAGE_SIZE)
        items = page["items"]
        end = offset + len(items)
        return types.ListPromptsResult(
            prompts=[listing(entry) for entry in items],
            next_cursor=str(end) if items and end < page["total"] else None,
        )

    async def get_prompt(
        ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        source = await sources(ctx)
        meta = ctx.meta or {}
        unit = meta.get(UNIT_META_KEY)
        if unit is not None and (not isinstance(unit, str) or not 0 < len(unit) <= 128):
            raise invalid(f"_meta.{UNIT_META_KEY}: a unit id of 1 to 128 characters", field=UNIT_META_KEY)
        try:
            prompt = await source.prompt(params.name, unit)
        except UnknownPrompt:
            raise invalid(
                f"unknown prompt '{params.name}' in {source.environment}", prompt=params.name
            ) from None
        try:
            rendered = prompt.render_mapping(variables_of(prompt, params.arguments or {}))
        except MissingVariables as missing:
            plural = "s" if len(missing.names) > 1 else ""
            raise invalid(
                f"missing argument{plural} for prompt '{prompt.name}': {', '.join(missing.names)}",
                missing=missing.names,
            ) from None
        except TemplateError as error:
            raise invalid(f"prompt '{prompt.name}' could not be rendered: {error.message}") from None
        variant = f", variant {prompt.variant}" if prompt.variant else ""
        return types.GetPromptResult(
            description=f"{prompt.name} v{prompt.version} ({source.environment}{variant})",
            messages=messages_of(rendered),
        )

    server = PromptServer(
        "promptkeeper",
        version=__version__,
        instructions="Prompts served by a PromptKeeper environment, rendered with your arguments.",
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
    )
    if watch is not None:

        async def initialized(ctx: ServerRequestContext[Any], params: types.NotificationParams) -> None:
            await watch(ctx)

        server.add_notification_handler("notifications/initialized", types.NotificationParams, initialized)
    return server
