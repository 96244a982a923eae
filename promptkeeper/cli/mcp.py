"""`promptkeeper mcp`: serve an environment's prompts to MCP clients over stdio (docs/mcp.md)."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

import typer

from promptkeeper.cli.common import Key, locate, usage

_ENVIRONMENT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def mcp(
    url: Annotated[
        str,
        typer.Option(
            "--url",
            envvar="PROMPTKEEPER_URL",
            help="Server URL; several, comma-separated, to fail over between instances.",
        ),
    ] = "",
    key: Key = "",
    environment: Annotated[
        str, typer.Option("--environment", "-e", help="The environment whose prompts to offer.")
    ] = "production",
) -> None:
    """Offer the prompts an environment serves to MCP clients (Claude Desktop, IDEs) over stdio.

    Stdout carries the protocol: nothing else is printed there. Any key that may resolve prompts
    works (a runtime key is enough).
    """
    if not _ENVIRONMENT.match(environment):
        raise usage(f"--environment: invalid environment name {environment[:80]!r}")
    url, key, _ = locate(url, key)
    urls = [part.strip().rstrip("/") for part in url.split(",") if part.strip()]
    from promptkeeper.mcp_server.stdio import serve_stdio  # the mcp package only for this command

    asyncio.run(serve_stdio(urls, key, environment))


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp)
