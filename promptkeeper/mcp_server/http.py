"""MCP's Streamable HTTP transport mounted in `promptkeeper serve` at `/mcp`.

Authenticated with the same API keys as the REST API (`Authorization: Bearer pk_…`), checked here
before the MCP layer sees the request, so a bad key is an HTTP 401 as MCP clients expect; every
answer is scoped to the key's project. The environment is chosen per connection with
`?environment=` on the URL (`production` by default). Prompts come from this instance's resolver
(its caches and stale-if-error), and release changes from its broadcaster, the same feed as the SSE
stream, so `list_changed` follows a deploy made through any instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from starlette.types import Receive, Scope, Send

from promptkeeper.access.authenticator import bearer_secret
from promptkeeper.access.service import Principal
from promptkeeper.api.context import AppContext
from promptkeeper.api.deps import RESOLVE_ROLES, check_role
from promptkeeper.api.routes.catalogue import catalogue
from promptkeeper.api.routes.runtime import VARIANT_HEADER, variant_for
from promptkeeper.client._prompt import Prompt
from promptkeeper.errors import NotFound, PromptKeeperError
from promptkeeper.mcp_server.bridge import UnknownPrompt, build_server, invalid

logger = logging.getLogger(__name__)

_ENVIRONMENT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_SCOPE_KEY = "promptkeeper.mcp"


class LocalSource:
    """One environment of the caller's project, served by this instance."""

    def __init__(self, context: AppContext, principal: Principal, environment: str) -> None:
        self.context = context
        self.project_id = principal.project_id
        self.environment = environment

    async def catalogue(self, offset: int, limit: int) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            with self.context.db.session() as session:
                items, total = catalogue(
                    session=session,
                    project_id=self.project_id,
                    environment=self.environment,
                    limit=limit,
                    offset=offset,
                )
            return {"items": [item.model_dump() for item in items], "total": total}

        return await anyio.to_thread.run_sync(read)

    async def prompt(self, name: str, unit: str | None) -> Prompt:
        try:
            entry = await self.context.resolver.get(self.project_id, name, self.environment)
        except NotFound:
            raise UnknownPrompt(name) from None
        payload = entry.payload
        headers: dict[str, str] = {}
        if unit is not None and payload.split is not None:
            payload = await variant_for(self.context, payload.split, unit, headers)
        prompt = Prompt.from_resolve(json.loads(payload.body), etag=payload.etag)
        prompt.variant = headers.get(VARIANT_HEADER)
        return prompt


def _caller(ctx: ServerRequestContext[Any]) -> tuple[AppContext, Principal, str]:
    request = ctx.request
    bound = getattr(request, "scope", {}).get(_SCOPE_KEY) if request is not None else None
    if bound is None:  # every request passes through McpEndpoint, which binds the caller
        raise invalid("this MCP connection has no authenticated caller")
    context, principal, environment = bound
    return context, principal, environment


async def _sources(ctx: ServerRequestContext[Any]) -> LocalSource:
    return LocalSource(*_caller(ctx))


async def _watch(ctx: ServerRequestContext[Any]) -> None:
    """Forward the environment's release changes to this client until its connection closes."""
    context, principal, environment = _caller(ctx)
    broadcaster = context.runtime.broadcaster
    subscription = broadcaster.subscribe(principal.project_id, environment)
    session = ctx.session

    async def forward() -> None:
        try:
            while True:
                change = await subscription.queue.get()
                if change is None:  # the server is shutting down
                    return
                await session.send_prompt_list_changed()
        except Exception as exc:  # the client went away
            logger.debug("list_changed not delivered: %s", exc)
        finally:
            broadcaster.unsubscribe(subscription)

    task = asyncio.create_task(forward())
    connection = getattr(session, "_connection", None)
    if connection is not None:  # close with the MCP connection, not only at the next failed send
        connection.exit_stack.callback(task.cancel)


class McpEndpoint:
    """The ASGI endpoint of `/mcp`: authentication and environment, then the MCP session manager."""

    def __init__(self) -> None:
        self.server = build_server(_sources, _watch)
        self._app: StreamableHTTPASGIApp | None = None

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """The session manager for one run of the app (a manager runs once: a new one each start)."""
        manager = StreamableHTTPSessionManager(app=self.server)
        async with manager.run():
            self._app = StreamableHTTPASGIApp(manager)
            try:
                yield
            finally:
                self._app = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        context: AppContext = scope["app"].state.context
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        client = scope.get("client")
        try:
            principal = await context.auth(
                bearer_secret(headers.get("authorization")), client[0] if client else None
            )
            check_role(principal, RESOLVE_ROLES, "resolve prompts")
        except PromptKeeperError as error:
            await _refuse(send, error.status_code, error.to_body())
            return
        query = dict(
            part.split("=", 1) if "=" in part else (part, "")
            for part in scope.get("query_string", b"").decode("latin-1").split("&")
            if part
        )
        environment = query.get("environment", "production")
        if not _ENVIRONMENT.match(environment):
            message = f"query.environment: invalid environment name {environment[:80]!r}"
            await _refuse(send, 422, {"error": {"code": "validation_failed", "message": message}})
            return
        if self._app is None:
            await _refuse(send, 503, {"error": {"code": "unavailable", "message": "MCP is starting"}})
            return
        scope[_SCOPE_KEY] = (context, principal, environment)
        await self._app(scope, receive, send)


async def _refuse(send: Send, status: int, error: dict[str, Any]) -> None:
    body = json.dumps(error).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="promptkeeper"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
