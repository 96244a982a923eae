"""Fake LLM servers for tests and benchmarks: OpenAI Chat Completions and Anthropic Messages over real HTTP.

One Starlette app answers both APIs, so the official `openai` and `anthropic` clients run unchanged
against it (`FakeLLM.openai_base_url`, `FakeLLM.anthropic_base_url`):

- `POST /v1/chat/completions`: JSON, or SSE chunks ending with a usage chunk (when the request asks for
  `stream_options.include_usage` and `send_usage` is on) and `data: [DONE]`;
- `POST /v1/messages`: JSON, or the SSE events `message_start`, `content_block_*`, `message_delta`,
  `message_stop`.

Behaviour: `reply(messages) -> text` (default: echo the last user message; Anthropic's `system` arrives
as a leading system message), `latency_ms` before the first byte, `token_delay_ms` between chunks, and a
fault script consumed one request at a time (`fail(429, times=2)`, `hang(5)`). It counts the requests
that reached it, the most that were in flight at once, and records each request's JSON body and
credential.

    with FakeLLM(latency_ms=50) as server:
        server.add_faults(*fail(429, times=2, retry_after="0"))
        ...
        assert server.requests == 3

`python -m tests.fake_llm --port 8999 --latency-ms 200` serves it in its own process (the benchmarks do).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

Messages = list[dict[str, Any]]
Reply = Callable[[Messages], str]


def echo_last_user(messages: Messages) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text(message.get("content", ""))
    return ""


def _text(content: Any) -> str:
    """Content is a string, or (Anthropic, OpenAI multi-part) a list of blocks with `text`."""
    if isinstance(content, str):
        return content
    return "".join(str(block.get("text", "")) for block in content if isinstance(block, dict))


def _words(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True)
class Fault:
    """What one request gets instead of a normal answer: an HTTP error status, or a hang of `hang`
    seconds (then a normal answer, if the client is still there). `{auth}` in `message` is replaced by
    the credential the request carried, to test that errors never leak it."""

    status: int | None = None
    hang: float | None = None
    retry_after: str | None = None
    message: str = "injected fault"


def fail(status: int, *, times: int = 1, retry_after: str | None = None, message: str = "") -> list[Fault]:
    return [Fault(status=status, retry_after=retry_after, message=message or f"injected {status}")] * times


def hang(seconds: float, *, times: int = 1) -> list[Fault]:
    return [Fault(hang=seconds)] * times


class FakeLLM:
    """The server on 127.0.0.1 (a free port unless given), in a background thread; a context manager."""

    def __init__(
        self,
        *,
        reply: Reply = echo_last_user,
        latency_ms: float = 0,
        token_delay_ms: float = 0,
        send_usage: bool = True,
        faults: list[Fault] | None = None,
        port: int = 0,
    ) -> None:
        self.reply = reply
        self.latency_ms = latency_ms
        self.token_delay_ms = token_delay_ms
        self.send_usage = send_usage
        self._faults: list[Fault] = list(faults or [])
        self._lock = threading.Lock()
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.bodies: list[dict[str, Any]] = []
        self.credentials: list[str | None] = []
        self._closing = False
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", port))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/health", self._health, methods=["GET"]),
                Route("/stats", self._stats, methods=["GET"]),
            ]
        )
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    def add_faults(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def reset(self) -> None:
        """Forget counters, recorded requests and remaining faults (between phases of one test)."""
        with self._lock:
            self._faults.clear()
            self.requests = self.max_in_flight = 0
            self.bodies.clear()
            self.credentials.clear()

    def start(self) -> FakeLLM:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake LLM server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._closing = True
        if self._thread.is_alive():
            self._server.should_exit = True
            self._thread.join(timeout=15)
        self._socket.close()

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- request handling (runs on the server's event loop) ---

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def _stats(self, request: Request) -> Response:
        """The counters, for a server in another process (the benchmarks)."""
        return JSONResponse({"requests": self.requests, "max_in_flight": self.max_in_flight})

    async def _begin(self, request: Request, credential: str | None) -> tuple[dict[str, Any], Fault | None]:
        body: dict[str, Any] = await request.json()
        with self._lock:
            self.requests += 1
            self.bodies.append(body)
            self.credentials.append(credential)
            fault = self._faults.pop(0) if self._faults else None
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return body, fault

    def _end(self) -> None:
        self.in_flight -= 1

    async def _sleep(self, seconds: float) -> None:
        """Interrupted when the server stops, so a hanging request does not hold up the test."""
        deadline = time.monotonic() + seconds
        while not self._closing and (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.05))

    async def _chat(self, request: Request) -> Response:
        credential = request.headers.get("authorization", "").removeprefix("Bearer ") or None
        body, fault = await self._begin(request, credential)
        try:
            if fault is not None and fault.status is not None:
                self._end()
                return _error(fault, credential, {"error": {"message": "", "type": "fake", "code": None}})
            if fault is not None and fault.hang is not None:
                await self._sleep(fault.hang)
            messages: Messages = body.get("messages", [])
            text = self.reply(messages)
            model = str(body.get("model", "fake"))
            usage = {
                "prompt_tokens": sum(_words(_text(m.get("content", ""))) for m in messages),
                "completion_tokens": _words(text),
            }
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            await self._sleep(self.latency_ms / 1000)
        except BaseException:
            self._end()
            raise
        if not body.get("stream"):
            self._end()
            return JSONResponse(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and self.send_usage
        return StreamingResponse(
            self._chat_events(model, text, usage, include_usage), media_type="text/event-stream"
        )

    async def _chat_events(
        self, model: str, text: str, usage: dict[str, int], include_usage: bool
    ) -> AsyncIterator[str]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            data = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(data)}\n\n"

        try:
            yield chunk({"role": "assistant", "content": ""})
            for piece in _pieces(text):
                yield chunk({"content": piece})
                await self._sleep(self.token_delay_ms / 1000)
            yield chunk({}, "stop")
            if include_usage:
                data = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
                yield f"data: {json.dumps(data)}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            self._end()

    async def _messages(self, request: Request) -> Response:
        credential = (
            request.headers.get("x-api-key")
            or request.headers.get("authorization", "").removeprefix("Bearer ")
        ) or None
        body, fault = await self._begin(request, credential)
        try:
            if fault is not None and fault.status is not None:
                self._end()
                return _error(
                    fault, credential, {"type": "error", "error": {"type": "fake_error", "message": ""}}
                )
            if fault is not None and fault.hang is not None:
                await self._sleep(fault.hang)
            messages: Messages = list(body.get("messages", []))
            if body.get("system"):
                messages.insert(0, {"role": "system", "content": _text(body["system"])})
            text = self.reply(messages)
            model = str(body.get("model", "fake"))
            input_tokens = sum(_words(_text(m.get("content", ""))) for m in messages)
            await self._sleep(self.latency_ms / 1000)
        except BaseException:
            self._end()
            raise
        if not body.get("stream"):
            self._end()
            return JSONResponse(
                {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": input_tokens, "output_tokens": _words(text)},
                }
            )
        return StreamingResponse(
            self._message_events(model, text, input_tokens), media_type="text/event-stream"
        )

    async def _message_events(self, model: str, text: str, input_tokens: int) -> AsyncIterator[str]:
        def event(name: str, data: dict[str, Any]) -> str:
            return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"

        try:
            message: dict[str, Any] = {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": input_tokens, "output_tokens": 1},
            }
            yield event("message_start", {"message": message})
            yield event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
            yield event("ping", {})
            for piece in _pieces(text):
                yield event(
                    "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}}
                )
                await self._sleep(self.token_delay_ms / 1000)
            yield event("content_block_stop", {"index": 0})
            yield event(
                "message_delta",
                {
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": _words(text)},
                },
            )
            yield event("message_stop", {})
        finally:
            self._end()


def _pieces(text: str) -> list[str]:
    """Word-sized chunks that join back to exactly `text`."""
    words = text.split(" ")
    return [words[0], *(" " + word for word in words[1:])]


def _error(fault: Fault, credential: str | None, shape: dict[str, Any]) -> Response:
    message = fault.message.replace("{auth}", credential or "")
    body = json.loads(json.dumps(shape))
    body["error"]["message"] = message
    headers = {"retry-after": fault.retry_after} if fault.retry_after is not None else None
    assert fault.status is not None
    return JSONResponse(body, status_code=fault.status, headers=headers)


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    """A fresh server per test, echoing, no latency, no faults."""
    with FakeLLM() as server:
        yield server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0)
    parser.add_argument("--token-delay-ms", type=float, default=0)
    args = parser.parse_args()
    server = FakeLLM(port=args.port, latency_ms=args.latency_ms, token_delay_ms=args.token_delay_ms)
    server.start()
    try:
        while server._thread.is_alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
