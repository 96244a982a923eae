"""The `openai` provider: any OpenAI-compatible Chat Completions endpoint through the official SDK.

OpenAI itself, Azure OpenAI's v1 endpoint, vLLM, Ollama, LiteLLM's proxy and others differ only in
`base_url` and key. Answers are streamed so that time-to-first-token is measured; the usage chunk
(`stream_options.include_usage`) gives token counts, and a server that does not send it yields None
counts rather than an error. The SDK's own retries are off: the executor retries, with its own budget.

The request goes through the SDK's generic `post` (its documented way to reach any endpoint) rather than
`chat.completions.create`, and chunks are read as plain JSON rather than typed models: the SDK still
owns the connection pool, authentication, SSE decoding and the exception classes, but its typed layer
(transforming the request through its TypedDicts, building a model per chunk) cost about 30 % of the
client's CPU per call, and at concurrency 32 the client's event loop is the bottleneck: with it, the
benchmark of docs/benchmarks.md missed its wall-time goal. Parameters pass into the body as they are,
extensions of compatible servers (vLLM's `top_k`, Ollama's `options`) included.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any, NoReturn

import openai

from promptkeeper.evaluations.providers.base import (
    Completion,
    ProviderError,
    ProviderRequest,
    ProviderSettings,
    redact,
    retry_after_seconds,
    retryable_status,
)

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: Local servers (vLLM, Ollama) usually accept any key, but the SDK insists on one.
PLACEHOLDER_KEY = "not-needed"
# Set by the streaming call itself; a user's value would break the measurement.
_RESERVED_PARAMS = ("stream", "stream_options", "model", "messages")


class OpenAIProvider:
    """Clients are created once per instance (the async one once per event loop: its connections belong to
    the loop that opened them). Call `close()` / `await aclose()` when done to release connections."""

    name: str = "openai"

    def __init__(self, settings: ProviderSettings, *, name: str = "openai") -> None:
        self.name = name
        self._base_url = settings.openai_base_url
        self._api_key = settings.openai_api_key
        self._sync: openai.OpenAI | None = None
        self._async: openai.AsyncOpenAI | None = None
        self._async_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None

    def complete(self, request: ProviderRequest, *, timeout: float) -> Completion:
        client = self._sync_client()
        collector = _Collector(time.perf_counter())
        try:
            stream = client.post(
                "/chat/completions",
                cast_to=object,
                body=self._body(request),
                options=_options(timeout),
                stream=True,
                stream_cls=openai.Stream[object],
            )
            with stream:
                for chunk in stream:
                    collector.add(chunk)
                    if collector.elapsed_ms() > timeout * 1000:
                        raise ProviderError(
                            f"{self.name}: request timed out after {timeout:g} s", retryable=True
                        )
        except openai.OpenAIError as error:
            self._raise(error)
        return collector.completion()

    async def acomplete(self, request: ProviderRequest, *, timeout: float) -> Completion:
        client = self._async_client()
        collector = _Collector(time.perf_counter())
        try:
            stream = await client.post(
                "/chat/completions",
                cast_to=object,
                body=self._body(request),
                options=_options(timeout),
                stream=True,
                stream_cls=openai.AsyncStream[object],
            )
            async with stream:
                async for chunk in stream:
                    collector.add(chunk)
        except openai.OpenAIError as error:
            self._raise(error)
        return collector.completion()

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def aclose(self) -> None:
        """Closes the async client of the running loop (and the sync one)."""
        if self._async is not None:
            await self._async.close()
            self._async = None
            self._async_loop = None
        self.close()

    def _body(self, request: ProviderRequest) -> dict[str, Any]:
        params = {k: v for k, v in request.api_params().items() if k not in _RESERVED_PARAMS}
        return {
            **params,
            "model": request.model,
            "messages": request.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }

    def _credentials(self) -> tuple[str, str]:
        if self._api_key:
            return self._api_key, self._base_url or OPENAI_DEFAULT_BASE_URL
        if self._base_url:
            return PLACEHOLDER_KEY, self._base_url
        raise ProviderError(
            f"{self.name}: PROMPTKEEPER_OPENAI_API_KEY is not set "
            "(or set PROMPTKEEPER_OPENAI_BASE_URL for a server that needs no key)"
        )

    def _sync_client(self) -> openai.OpenAI:
        if self._sync is None:
            api_key, base_url = self._credentials()
            # Explicit key and URL: the SDK must not fall back to OPENAI_* variables behind our back.
            self._sync = openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0)
        return self._sync

    def _async_client(self) -> openai.AsyncOpenAI:
        loop = asyncio.get_running_loop()
        if self._async is None or self._async_loop is None or self._async_loop() is not loop:
            api_key, base_url = self._credentials()
            self._async = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0)
            self._async_loop = weakref.ref(loop)
        return self._async

    def _raise(self, error: openai.OpenAIError) -> NoReturn:
        if isinstance(error, openai.APITimeoutError):
            raise ProviderError(f"{self.name}: request timed out", retryable=True) from None
        if isinstance(error, openai.APIConnectionError):
            cause = error.__cause__ or error
            message = redact(f"{self.name}: connection error: {cause}", self._api_key)
            raise ProviderError(message, retryable=True) from None
        if isinstance(error, openai.APIStatusError):
            status = error.status_code
            raise ProviderError(
                redact(f"{self.name}: HTTP {status}: {error.message}", self._api_key),
                status=status,
                retryable=retryable_status(status),
                retry_after=retry_after_seconds(error.response.headers),
            ) from None
        raise ProviderError(redact(f"{self.name}: {error}", self._api_key)) from None


def _options(timeout: float) -> openai.RequestOptions:
    return {"timeout": timeout, "security": {"bearer_auth": True}}


class _Collector:
    """Accumulates a chat completion stream: text of the first choice, usage, model and TTFT. Chunks are
    the decoded JSON objects; anything missing or malformed in them is skipped, not fatal, since
    compatible servers differ in what they send."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.parts: list[str] = []
        self.ttft_ms: float | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.model: str | None = None

    def add(self, chunk: object) -> None:
        if not isinstance(chunk, dict):
            return
        model = chunk.get("model")
        if isinstance(model, str) and model:
            self.model = model
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.input_tokens = _int(usage.get("prompt_tokens"))
            self.output_tokens = _int(usage.get("completion_tokens"))
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str) and content:
                if self.ttft_ms is None:
                    self.ttft_ms = self.elapsed_ms()
                self.parts.append(content)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def completion(self) -> Completion:
        return Completion(
            text="".join(self.parts),
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            latency_ms=self.elapsed_ms(),
            ttft_ms=self.ttft_ms,
            model=self.model,
        )


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None
