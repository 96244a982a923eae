"""Prompts over MCP, driven by the official SDK's `ClientSession` against a real server.

Streamable HTTP: `/mcp` of a live `promptkeeper serve` (uvicorn on a socket). Stdio: `promptkeeper
mcp` started as a subprocess by the SDK's own `stdio_client`, talking to a live server.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import mcp_types as types
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from typer.testing import CliRunner

from promptkeeper.cli import app as cli_app
from tests.conftest import ADMIN_KEY, LiveServer
from tests.helpers import chat_content, deploy, quote_name, text_content

pytestmark = pytest.mark.slow


class Changes:
    """Counts `notifications/prompts/list_changed` and lets a test wait for the next one."""

    def __init__(self) -> None:
        self.count = 0
        self.event = asyncio.Event()

    async def __call__(self, message: Any) -> None:
        if isinstance(message, types.PromptListChangedNotification):
            self.count += 1
            self.event.set()

    async def next(self, timeout: float = 15.0) -> None:
        await asyncio.wait_for(self.event.wait(), timeout)
        self.event.clear()


@asynccontextmanager
async def http_session(
    server: LiveServer, key: str = ADMIN_KEY, environment: str | None = None, changes: Changes | None = None
) -> AsyncIterator[ClientSession]:
    url = server.url + "/mcp" + (f"?environment={environment}" if environment else "")
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write, message_handler=changes) as session,
    ):
        await session.initialize()
        yield session


def _publish(http: httpx.Client, name: str, content: dict[str, Any], environment: str = "production") -> None:
    created = http.post("/v1/prompts", json={"name": name, "content": content, "description": f"{name} doc"})
    assert created.status_code == 201, created.text
    deploy(http, name, environment, 1)


def _seed(server: LiveServer) -> None:
    with server.client() as http:
        _publish(http, "greet", text_content("Hello {{ name }} ({{ tone|default('plain') }})"))
        _publish(
            http,
            "support/reply",
            chat_content(
                {"role": "system", "content": "You answer for {{ company }}."},
                {"role": "user", "content": "{{ question }}"},
            ),
        )
        _publish(http, "staging-only", text_content("not in production"), environment="staging")
        created = http.post("/v1/prompts", json={"name": "never-deployed", "content": text_content("x")})
        assert created.status_code == 201


def _check_registry(session_result: types.ListPromptsResult) -> None:
    by_name = {prompt.name: prompt for prompt in session_result.prompts}
    assert set(by_name) == {"greet", "support/reply"}
    greet = by_name["greet"]
    assert greet.description is not None and greet.description.startswith("greet doc")
    assert [(a.name, a.required) for a in greet.arguments or []] == [("name", True), ("tone", False)]
    reply = by_name["support/reply"]
    assert [(a.name, a.required) for a in reply.arguments or []] == [("company", True), ("question", True)]


async def _check_get(session: ClientSession) -> None:
    text = await session.get_prompt("greet", {"name": "Ada"})
    assert [(m.role, m.content.text) for m in text.messages] == [("user", "Hello Ada (plain)")]  # type: ignore[union-attr]
    chat = await session.get_prompt("support/reply", {"company": "Acme", "question": "Where is my order?"})
    assert [(m.role, m.content.text) for m in chat.messages] == [  # type: ignore[union-attr]
        ("user", "You answer for Acme."),
        ("user", "Where is my order?"),
    ]
    with pytest.raises(MCPError) as missing:
        await session.get_prompt("support/reply", {"company": "Acme"})
    assert missing.value.code == types.INVALID_PARAMS and "question" in missing.value.message
    with pytest.raises(MCPError) as unknown_argument:
        await session.get_prompt("greet", {"name": "Ada", "nmae": "typo"})
    assert "'nmae'" in unknown_argument.value.message and "name, tone" in unknown_argument.value.message
    with pytest.raises(MCPError) as unknown:
        await session.get_prompt("staging-only", {})
    assert "unknown prompt 'staging-only' in production" in unknown.value.message


def test_streamable_http_lists_renders_and_refuses(live_server: LiveServer) -> None:
    _seed(live_server)

    async def scenario() -> None:
        async with http_session(live_server) as session:
            _check_registry(await session.list_prompts())
            await _check_get(session)
        async with http_session(live_server, environment="staging") as staging:
            listed = await staging.list_prompts()
            assert [p.name for p in listed.prompts] == ["staging-only"]

    asyncio.run(scenario())


def test_http_refuses_a_bad_key_and_scopes_to_the_keys_project(
    live_server: LiveServer, settings: Any
) -> None:
    _seed(live_server)
    refused = httpx.post(
        live_server.url + "/mcp",
        headers={"Authorization": "Bearer pk_nope", "Accept": "application/json, text/event-stream"},
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
    )
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    assert refused.json()["error"]["code"] == "unauthorized"
    bad_environment = httpx.post(
        live_server.url + "/mcp?environment=Prod%20uction",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
    )
    assert bad_environment.status_code == 422 and "query.environment" in bad_environment.text

    runner = CliRunner()
    env = {"PROMPTKEEPER_DATABASE_URL": settings.database_url}
    assert runner.invoke(cli_app, ["projects", "create", "other"], env=env).exit_code == 0
    made = runner.invoke(
        cli_app, ["keys", "create", "--project", "other", "--role", "runtime", "--name", "mcp"], env=env
    )
    assert made.exit_code == 0, made.output
    other_key = made.stdout.strip().splitlines()[-1]

    async def scenario() -> None:
        async with http_session(live_server, key=other_key) as session:
            assert (await session.list_prompts()).prompts == []
            with pytest.raises(MCPError) as unknown:
                await session.get_prompt("greet", {"name": "Ada"})
            assert "unknown prompt 'greet'" in unknown.value.message

    asyncio.run(scenario())


def test_http_notifies_list_changed_after_a_deploy_and_pages(live_server: LiveServer) -> None:
    _seed(live_server)
    with live_server.client() as http:
        for index in range(55):
            created = http.post(
                "/v1/prompts", json={"name": f"bulk/{index:02d}", "content": text_content("x")}
            )
            assert created.status_code == 201

    async def scenario() -> None:
        changes = Changes()
        async with http_session(live_server, changes=changes) as session:
            assert len((await session.list_prompts()).prompts) == 2
            with live_server.client() as http:
                for index in range(55):
                    deploy(http, f"bulk/{index:02d}", "production", 1)
            await changes.next()
            names: list[str] = []
            cursor = None
            pages = 0
            while True:
                page = await session.list_prompts(params=types.PaginatedRequestParams(cursor=cursor))
                pages += 1
                names += [p.name for p in page.prompts]
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert pages == 2 and len(names) == 57 and len(set(names)) == 57
            with pytest.raises(MCPError) as bad_cursor:
                await session.list_prompts(params=types.PaginatedRequestParams(cursor="x"))
            assert "cursor" in bad_cursor.value.message

    asyncio.run(scenario())


def test_experiment_assignment_follows_the_unit(live_server: LiveServer) -> None:
    with live_server.client() as http:
        _publish(http, "exp", text_content("control {{ q }}"))
        added = http.post(
            f"/v1/prompts/{quote_name('exp')}/versions", json={"content": text_content("v2 {{ q }}")}
        )
        assert added.status_code == 201
        created = http.post(
            "/v1/experiments",
            json={
                "prompt": "exp",
                "environment": "production",
                "name": "mcp",
                "candidates": [{"version": 2, "weight": 1}],
                "primary_metric": "completion",
                "baseline": 0.3,
                "mde": 0.1,
            },
        )
        assert created.status_code == 201, created.text
        assert http.post(f"/v1/experiments/{created.json()['id']}/start", json={}).status_code == 200
        expected = {
            unit: http.get("/v1/resolve/exp", params={"environment": "production", "unit": unit}).json()[
                "version"
            ]
            for unit in (f"u{i}" for i in range(20))
        }
    assert set(expected.values()) == {1, 2}

    async def scenario() -> None:
        async with http_session(live_server) as session:
            for unit, version in expected.items():
                got = await session.get_prompt("exp", {"q": "?"}, meta={"promptkeeper/unit": unit})
                assert got.messages[0].content.text.startswith("control" if version == 1 else "v2"), unit  # type: ignore[union-attr]

    asyncio.run(scenario())


def test_stdio_server_through_the_sdk(live_server: LiveServer, tmp_path: Path) -> None:
    _seed(live_server)
    env = {
        "PROMPTKEEPER_URL": live_server.url,
        "PROMPTKEEPER_API_KEY": ADMIN_KEY,
        "PROMPTKEEPER_CONFIG": str(tmp_path / "no-saved-login.json"),
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }
    parameters = StdioServerParameters(command=sys.executable, args=["-m", "promptkeeper", "mcp"], env=env)

    async def scenario() -> None:
        changes = Changes()
        with (tmp_path / "stderr.log").open("w") as errlog:
            async with (
                stdio_client(parameters, errlog=errlog) as (read, write),
                ClientSession(read, write, message_handler=changes) as session,
            ):
                await session.initialize()
                _check_registry(await session.list_prompts())
                await _check_get(session)
                with live_server.client() as http:
                    # the SDK's stream and the bridge's own: both follow the server's releases
                    deadline = asyncio.get_running_loop().time() + 15
                    while http.get("/v1/runtime/status").json()["stream_subscribers"] < 2:
                        assert asyncio.get_running_loop().time() < deadline, "streams not connected"
                        await asyncio.sleep(0.05)
                    _publish(http, "late", text_content("Late {{ x }}"))
                await changes.next()
                names = [p.name for p in (await session.list_prompts()).prompts]
                assert "late" in names
                late = await session.get_prompt("late", {"x": "arrival"})
                assert late.messages[0].content.text == "Late arrival"  # type: ignore[union-attr]

    asyncio.run(scenario())


def test_stdio_command_refuses_without_a_key(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli_app, ["mcp"], env={"PROMPTKEEPER_CONFIG": str(tmp_path / "none.json"), "PROMPTKEEPER_API_KEY": ""}
    )
    assert result.exit_code == 2 and "no API key" in result.output
    bad = CliRunner().invoke(cli_app, ["mcp", "--key", "pk_x", "--environment", "Bad Env"])
    assert bad.exit_code == 2 and "--environment" in bad.output
    assert json.dumps(result.output)  # one readable line, no traceback
    assert "Traceback" not in result.output and "Traceback" not in bad.output
