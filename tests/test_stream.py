"""`GET /v1/stream`: hello, live changes, keep-alive comments, resume with Last-Event-ID."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from promptkeeper.config import Settings
from tests.conftest import ADMIN_KEY, LiveServer
from tests.helpers import text_content

Event = tuple[str, str, str | None]  # (event, data, id); comments have event ":"


@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    live = LiveServer(settings.model_copy(update={"stream_keepalive": 0.2})).start()
    yield live
    live.stop()


def _reader(url: str, headers: dict[str, str], out: queue.Queue[Event], stop: threading.Event) -> None:
    event, data, event_id = "message", [], None
    with httpx.Client(timeout=httpx.Timeout(5, read=10)) as http:
        with http.stream("GET", url, headers={"Authorization": f"Bearer {ADMIN_KEY}", **headers}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if stop.is_set():
                    return
                if line.startswith(":"):
                    out.put((":", line, None))
                elif line == "":
                    if data or event != "message":
                        out.put((event, "\n".join(data), event_id))
                    event, data, event_id = "message", [], None
                else:
                    field, _, value = line.partition(": ")
                    if field == "event":
                        event = value
                    elif field == "data":
                        data.append(value)
                    elif field == "id":
                        event_id = value


def _next(events: queue.Queue[Event], kind: str, timeout: float = 5) -> Event:
    while True:
        item = events.get(timeout=timeout)
        if item[0] == kind:
            return item


def _open(
    server: LiveServer, path: str, headers: dict[str, str] | None = None
) -> tuple[queue.Queue[Event], threading.Event]:
    events: queue.Queue[Event] = queue.Queue()
    stop = threading.Event()
    threading.Thread(
        target=_reader, args=(server.url + path, headers or {}, events, stop), daemon=True
    ).start()
    return events, stop


def _deploy(http: httpx.Client, version: int, environment: str = "production") -> dict[str, Any]:
    response = http.post("/v1/prompts/s/deployments", json={"environment": environment, "version": version})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_stream_delivers_changes_keepalives_and_replays_after_reconnect(server: LiveServer) -> None:
    with server.client() as http:
        http.post("/v1/prompts", json={"name": "s", "content": text_content("one")})
        http.post("/v1/prompts/s/versions", json={"content": text_content("two")})
        events, stop = _open(server, "/v1/stream")
        hello = _next(events, "hello")
        assert hello[2] is not None and hello[2].isdigit()
        deployment = _deploy(http, 1)
        release = _next(events, "release")
        assert json.loads(release[1]) == {
            "prompt": "s",
            "environment": "production",
            "version": 1,
            "revision": 1,
        }
        assert release[2] == str(deployment["id"])
        assert _next(events, ":")[1] == ": keep-alive"
        stop.set()
        # changes made while the subscriber is away are replayed from the history, in order
        _deploy(http, 2)
        _deploy(http, 1, "staging")
        replay, stop_replay = _open(server, "/v1/stream", {"Last-Event-ID": release[2] or ""})
        first = json.loads(_next(replay, "release")[1])
        second = json.loads(_next(replay, "release")[1])
        assert (first["environment"], first["version"], first["revision"]) == ("production", 2, 2)
        assert (second["environment"], second["version"]) == ("staging", 1)
        stop_replay.set()
        # an environment filter, resuming with ?after=
        filtered, stop_filtered = _open(server, f"/v1/stream?environment=staging&after={release[2]}")
        only = json.loads(_next(filtered, "release")[1])
        assert only["environment"] == "staging"
        http.post("/v1/prompts/s/rollback", json={"environment": "production"})
        _deploy(http, 2, "staging")
        assert json.loads(_next(filtered, "release")[1]) == {
            "prompt": "s",
            "environment": "staging",
            "version": 2,
            "revision": 2,
        }
        stop_filtered.set()


def test_stream_requires_a_key_and_validates_resume(server: LiveServer) -> None:
    assert httpx.get(f"{server.url}/v1/stream").status_code == 401
    with server.client() as http:
        bad = http.get("/v1/stream", headers={"Last-Event-ID": "abc"})
        assert bad.status_code == 422 and "last-event-id" in bad.json()["error"]["message"]
        assert http.get("/v1/stream?environment=Bad!").status_code == 422
