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

import time
from types import ModuleType
from typing import Any, ClassVar

import openai

from promptkeeper.evaluations.providers._sdk import SDKProvider
from promptkeeper.evaluations.providers.base import (
    Completion,
    ProviderError,
    ProviderRequest,
    ProviderSettings,
)

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Set by the streaming call itself; a user's value would break the measurement.
_RESERVED_PARAMS = ("stream", "stream_options", "model", "messages")


class OpenAIProvider(SDKProvider[openai.OpenAI, openai.AsyncOpenAI]):
    sdk: ClassVar[ModuleType] = openai
    key_variable = "PROMPTKEEPER_OPENAI_API_KEY"
    url_variable = "PROMPTKEEPER_OPENAI_BASE_URL"
    default_base_url = OPENAI_DEFAULT_BASE_URL

    def __init__(self, settings: ProviderSettings, *, name: str = "openai") -> None:
        super().__init__(name=name, api_key=settings.openai_api_key, base_url=settings.openai_base_url)

    def _make_sync(self, api_key: str, base_url: str) -> openai.OpenAI:
        return openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0)

    def _make_async(self, api_key: str, base_url: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0)

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

    def _body(self, request: ProviderRequest) -> dict[str, Any]:
        params = {k: v for k, v in request.api_params().items() if k not in _RESERVED_PARAMS}
        return {
            **params,
            "model": request.model,
            "messages": request.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }


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
