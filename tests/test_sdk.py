"""The Python SDK against a real server: cache, freshness, fallbacks, snapshot, errors."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from promptkeeper import AsyncClient, Client, MissingVariables, NotFound, PromptUnavailable, Unauthorized
from promptkeeper.client._core import Snapshot, SSEParser
from promptkeeper.client._prompt import Prompt
from tests.conftest import ADMIN_KEY, LiveServer
from tests.helpers import chat_content, text_content
from tests.processes import free_port, wait_until


def _setup(server: LiveServer) -> None:
    with server.client() as http:
        http.post("/v1/prompts", json={"name": "greet", "content": text_content("Hello {{ name }}")})
        http.post("/v1/prompts/greet/versions", json={"content": text_content("Hi {{ name }}!")})
        http.post("/v1/prompts/greet/deployments", json={"environment": "production", "version": 1})
        http.post("/v1/prompts/greet/deployments", json={"environment": "staging", "version": 2})
        http.post(
            "/v1/prompts",
            json={
                "name": "team/chat",
                "content": chat_content(
                    {"role": "system", "content": "You help with {{ product }}."},
                    {"type": "placeholder", "name": "history"},
                    {"role": "user", "content": "{{ question }}"},
                    config={"model": "gpt-4o-mini", "temperature": 0.1},
                ),
            },
        )
        http.post("/v1/prompts/team%2Fchat/deployments", json={"environment": "production", "version": 1})


def _deploy(server: LiveServer, name: str, environment: str, version: int) -> None:
    with server.client() as http:
        response = http.post(
            f"/v1/prompts/{name.replace('/', '%2F')}/deployments",
            json={"environment": environment, "version": version},
        )
        assert response.status_code == 201, response.text


def test_get_render_and_cache(live_server: LiveServer) -> None:
    _setup(live_server)
    with Client(live_server.url, ADMIN_KEY) as client:
        prompt = client.get("greet")
        assert (prompt.name, prompt.version, prompt.environment, prompt.source) == (
            "greet",
            1,
            "production",
            "server",
        )
        assert prompt.render(name="Ada") == "Hello Ada"
        assert prompt.type == "text" and prompt.variables == ["name"] and prompt.config == {}
        with pytest.raises(MissingVariables, match="name"):
            prompt.render()
        fetches = client.stats["fetches"]
        assert client.get("greet") is prompt  # a hit returns the cached object
        assert client.stats["fetches"] == fetches
        assert client.get("greet", environment="staging").version == 2
        assert client.get("greet", version=2).render(name="Bo") == "Hi Bo!"
        assert client.get("greet", version=2).environment is None
        chat = client.get("team/chat", unit="user-1")
        assert chat.type == "chat" and chat.config["temperature"] == 0.1
        history = [{"role": "user", "content": "earlier"}]
        assert chat.render(product="PK", question="how?", history=history) == [
            {"role": "system", "content": "You help with PK."},
            {"role": "user", "content": "earlier"},
            {"role": "user", "content": "how?"},
        ]


def test_errors_are_mapped(live_server: LiveServer) -> None:
    _setup(live_server)
    with Client(live_server.url, ADMIN_KEY) as client:
        with pytest.raises(NotFound, match="no version deployed to 'development'"):
            client.get("greet", environment="development")
        with pytest.raises(NotFound, match="'ghost' not found"):
            client.get("ghost")
    with Client(live_server.url, "pk_nope_wrong") as client, pytest.raises(Unauthorized):
        client.get("greet")


def test_stream_pushes_changes_without_waiting_for_the_ttl(live_server: LiveServer) -> None:
    _setup(live_server)
    with Client(live_server.url, ADMIN_KEY, cache_ttl=600) as client:
        assert client.get("greet").version == 1
        wait_until(lambda: client.stream_connected, message="stream connected")
        started = time.monotonic()
        _deploy(live_server, "greet", "production", 2)
        wait_until(lambda: client.get("greet").version == 2, timeout=5, message="SDK sees version 2")
        assert time.monotonic() - started < 2
        with live_server.client() as http:
            assert (
                http.post("/v1/prompts/greet/rollback", json={"environment": "production"}).status_code == 201
            )
        wait_until(lambda: client.get("greet").version == 1, timeout=5, message="SDK sees the rollback")
        assert client.stats["stream_events"] >= 2


def test_polling_with_etags_when_streaming_is_off(live_server: LiveServer) -> None:
    _setup(live_server)
    with Client(live_server.url, ADMIN_KEY, cache_ttl=600, stream=False, poll_interval=0.2) as client:
        assert client.get("greet").version == 1
        wait_until(lambda: client.stats["not_modified"] >= 1, timeout=5, message="a 304 revalidation")
        _deploy(live_server, "greet", "production", 2)
        wait_until(lambda: client.get("greet").version == 2, timeout=5, message="polling sees version 2")


def test_expired_entries_are_served_while_refreshing(live_server: LiveServer) -> None:
    _setup(live_server)
    with Client(live_server.url, ADMIN_KEY, cache_ttl=0.05, stream=False, poll_interval=3600) as client:
        first = client.get("greet")
        _deploy(live_server, "greet", "production", 2)
        time.sleep(0.1)
        started = time.perf_counter()
        stale = client.get("greet")  # expired: served at once, refreshed in the background
        assert time.perf_counter() - started < 0.01
        assert stale is first
        wait_until(lambda: client.get("greet").version == 2, timeout=5, message="background refresh")


def test_server_down_cache_then_snapshot_then_fallback(live_server: LiveServer, tmp_path: Path) -> None:
    _setup(live_server)
    snapshot = tmp_path / "snap" / "prompts.json"
    client = Client(live_server.url, ADMIN_KEY, snapshot_path=str(snapshot), timeout=0.5, retries=0)
    assert client.get("greet").render(name="A") == "Hello A"
    assert client.get("team/chat").version == 1
    saved = json.loads(snapshot.read_text())
    assert set(saved["prompts"]) == {"greet@production", "team/chat@production"}
    live_server.stop()
    # 1. the running client keeps serving from memory
    assert client.get("greet").render(name="B") == "Hello B"
    client.close()
    # 2. a fresh process: the snapshot, then the fallback, then a clear error
    script = textwrap.dedent(
        f"""
        import json
        from promptkeeper import Client, PromptUnavailable
        client = Client({live_server.url!r}, {ADMIN_KEY!r}, snapshot_path={str(snapshot)!r},
                        fallbacks={{"other": "Fallback for {{{{ who }}}}"}},
                        timeout=0.5, retries=1, backoff=0.01)
        greet = client.get("greet")
        other = client.get("other")
        try:
            client.get("missing")
            error = None
        except PromptUnavailable as exc:
            error = str(exc)
        print(json.dumps({{"greet": [greet.source, greet.version, greet.render(name="C")],
                           "other": [other.source, other.render(who="D")], "error": error}}))
        client.close()
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["greet"] == ["snapshot", 1, "Hello C"]
    assert out["other"] == ["fallback", "Fallback for D"]
    assert "prompt 'missing' is unavailable" in out["error"]
    assert "could not be reached" in out["error"] and "ConnectError" in out["error"]


def test_failover_to_the_next_url(live_server: LiveServer) -> None:
    _setup(live_server)
    dead = f"http://127.0.0.1:{free_port()}"
    with Client([dead, live_server.url], ADMIN_KEY, timeout=0.5, retries=0) as client:
        assert client.get("greet").version == 1


def test_a_recovered_server_replaces_the_fallback(live_server: LiveServer) -> None:
    _setup(live_server)
    port = live_server.port
    live_server.stop()
    client = Client(
        live_server.url,
        ADMIN_KEY,
        fallbacks={"greet": "fallback {{ name }}"},
        timeout=0.3,
        retries=0,
        stream=False,
    )
    assert client.get("greet").source == "fallback"
    restarted = LiveServer(live_server.app_settings, port=port).start()
    try:
        wait_until(lambda: client.get("greet").source == "server", timeout=10, message="refresh from server")
        assert client.get("greet").render(name="x") == "Hello x"
    finally:
        client.close()
        restarted.stop()


def test_async_client(live_server: LiveServer) -> None:
    _setup(live_server)

    async def scenario() -> None:
        async with AsyncClient(live_server.url, ADMIN_KEY, cache_ttl=600) as client:
            prompt = await client.get("greet")
            assert prompt.render(name="Ada") == "Hello Ada"
            assert await client.get("greet") is prompt
            assert (await client.get("greet", version=2)).version == 2
            with pytest.raises(NotFound):
                await client.get("ghost")
            for _ in range(200):
                if client.stream_connected:
                    break
                await asyncio.sleep(0.02)
            assert client.stream_connected
            await asyncio.to_thread(_deploy, live_server, "greet", "production", 2)
            for _ in range(250):
                if (await client.get("greet")).version == 2:
                    break
                await asyncio.sleep(0.02)
            assert (await client.get("greet")).version == 2

    asyncio.run(scenario())


def test_async_client_offline_fallback() -> None:
    async def scenario() -> None:
        client = AsyncClient(
            f"http://127.0.0.1:{free_port()}",
            ADMIN_KEY,
            fallbacks={"x": [{"role": "user", "content": "{{ q }}"}]},
            timeout=0.3,
            retries=0,
            stream=False,
        )
        prompt = await client.get("x")
        assert prompt.source == "fallback" and prompt.render(q="hi") == [{"role": "user", "content": "hi"}]
        with pytest.raises(PromptUnavailable):
            await client.get("y")
        await client.aclose()

    asyncio.run(scenario())


# --- pure pieces ----------------------------------------------------------------------------------------


def test_sse_parser() -> None:
    parser = SSEParser()
    lines = [
        "retry: 1000",
        "",
        ": keep-alive",
        "",
        "id: 7",
        "event: release",
        'data: {"a": 1}',
        "",
        "data: x",
        "data: y",
        "",
    ]
    events = [e for e in (parser.feed_line(line) for line in lines) if e is not None]
    assert events == [("release", '{"a": 1}', "7"), ("message", "x\ny", None)]
    assert parser.last_id == "7"


def test_snapshot_survives_garbage_and_writes_atomically(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("{not json")
    snapshot = Snapshot(path)  # unreadable: ignored, not fatal
    assert snapshot.get("a", "production", None) is None
    prompt = Prompt(
        name="a",
        version=3,
        environment="production",
        revision=4,
        content={"type": "text", "template": "t"},
        variables=[],
        placeholders=[],
        etag='"e"',
    )
    snapshot.put(prompt, pinned=False)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".snapshot-")]  # no temp file left
    again = Snapshot(path).get("a", "production", None)
    assert again is not None and again.version == 3 and again.source == "snapshot"


def test_bad_fallback_is_rejected_up_front() -> None:
    with pytest.raises(TypeError, match="fallback for 'x'"):
        Client("http://127.0.0.1:1", ADMIN_KEY, fallbacks={"x": 42})
    with pytest.raises(ValueError):
        Client("http://127.0.0.1:1", ADMIN_KEY, timeout=0)


def test_sdk_imports_no_server_code() -> None:
    code = (
        "import sys, promptkeeper; from promptkeeper import Client, AsyncClient; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('fastapi','starlette','sqlalchemy','alembic','redis','uvicorn','pydantic_settings','psycopg') "
        "or m.startswith(('promptkeeper.db', 'promptkeeper.prompts', "
        "'promptkeeper.runtime', 'promptkeeper.api', 'promptkeeper.experiments'))); "
        "print(','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_transport_is_injectable() -> None:
    """httpx-style: tests and exotic deployments can give the client their own transport."""
    body = {
        "name": "t",
        "version": 5,
        "environment": "production",
        "content": {"type": "text", "template": "x"},
        "variables": [],
        "placeholders": [],
        "revision": 9,
        "deployed_at": None,
        "at": None,
    }
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=body, headers={"etag": '"abc"'})

    with Client("http://pk.test", ADMIN_KEY, stream=False, transport=httpx.MockTransport(handler)) as client:
        assert client.get("t").version == 5
    assert seen[0].url.path == "/v1/resolve/t" and seen[0].headers["authorization"] == f"Bearer {ADMIN_KEY}"
