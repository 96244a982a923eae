"""`promptkeeper mcp`: the registry over MCP's stdio transport, for desktop and IDE clients.

A client of a running PromptKeeper: prompts come through the SDK (`AsyncClient`), so its cache, its
failover across URLs and its last-known values keep a desktop client served while the server is
away; the list of prompts comes from `GET /v1/catalogue`. Release changes arrive on the server's
event stream (`/v1/stream`) and become `notifications/prompts/list_changed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx
from mcp.server.context import ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import INTERNAL_ERROR

from promptkeeper.client import AsyncClient, PromptUnavailable
from promptkeeper.client._prompt import Prompt
from promptkeeper.errors import NotFound
from promptkeeper.mcp_server.bridge import UnknownPrompt, build_server

logger = logging.getLogger(__name__)


class RemoteSource:
    """Prompts of one environment of a remote PromptKeeper, with the caller's key."""

    def __init__(self, urls: list[str], api_key: str, environment: str) -> None:
        self.environment = environment
        self.urls = urls
        self.api_key = api_key
        self.client = AsyncClient(urls, api_key, environment=environment)
        self.http = httpx.AsyncClient(headers={"Authorization": f"Bearer {api_key}"}, timeout=5.0)

    async def catalogue(self, offset: int, limit: int) -> dict[str, Any]:
        params: dict[str, str | int] = {"environment": self.environment, "limit": limit, "offset": offset}
        failure = "no server answered"
        for base in self.urls:
            try:
                response = await self.http.get(base.rstrip("/") + "/v1/catalogue", params=params)
            except httpx.HTTPError as exc:
                failure = f"{base}: {exc}"
                continue
            if response.status_code < 400:
                body: dict[str, Any] = response.json()
                return body
            failure = f"{base} answered {response.status_code}: {response.text[:200]}"
            if response.status_code < 500:
                break
        raise MCPError(INTERNAL_ERROR, f"listing prompts failed: {failure}")

    async def prompt(self, name: str, unit: str | None) -> Prompt:
        try:
            return await self.client.get(name, environment=self.environment, unit=unit)
        except NotFound:
            raise UnknownPrompt(name) from None
        except PromptUnavailable as exc:
            raise MCPError(INTERNAL_ERROR, str(exc)) from None

    async def changes(self) -> Any:
        """Yield once per release change of the environment, reconnecting while the server is away."""
        delay = 0.5
        last_id: str | None = None
        stream = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=httpx.Timeout(5.0, read=None),
        )
        try:
            while True:
                for base in self.urls:
                    url = base.rstrip("/") + "/v1/stream"
                    params: dict[str, str] = {"environment": self.environment}
                    if last_id is not None:  # the server replays what happened while we were away
                        params["after"] = last_id
                    try:
                        async with stream.stream("GET", url, params=params) as r:
                            if r.status_code != 200:
                                logger.warning("event stream of %s answered %s", base, r.status_code)
                                continue
                            delay = 0.5
                            async for line in r.aiter_lines():
                                if line.startswith("id: "):
                                    last_id = line[4:].strip()
                                elif line == "event: release":
                                    yield
                    except (httpx.HTTPError, OSError) as exc:
                        logger.debug("event stream of %s interrupted: %s", base, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        finally:
            await stream.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.http.aclose()


async def serve_stdio(urls: list[str], api_key: str, environment: str) -> None:
    source = RemoteSource(urls, api_key, environment)
    watchers: list[asyncio.Task[None]] = []

    async def sources(ctx: ServerRequestContext[Any]) -> RemoteSource:
        return source

    async def watch(ctx: ServerRequestContext[Any]) -> None:
        session = ctx.session

        async def forward() -> None:
            async for _ in source.changes():
                try:
                    await session.send_prompt_list_changed()
                except Exception as exc:  # the client went away: stop watching
                    logger.debug("list_changed not delivered: %s", exc)
                    return

        watchers.append(asyncio.create_task(forward()))

    server = build_server(sources, watch)
    try:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        for task in watchers:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await source.aclose()
