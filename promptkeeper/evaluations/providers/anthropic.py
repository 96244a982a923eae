"""The `anthropic` provider: Anthropic's Messages API through the official SDK.

Chat messages are mapped onto the Messages API: system messages become the `system` parameter (joined
by blank lines), the others are sent in order. `max_tokens`, which the API requires, defaults to
1024; `stop` is sent as `stop_sequences`; `seed` has no counterpart and is dropped, so that a suite
written for OpenAI-compatible models runs here unchanged. Answers are streamed for time-to-first-token;
token counts come from the `message_start` and `message_delta` events. The SDK's own retries are off.
"""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any, ClassVar, cast

import anthropic
from anthropic.types import RawMessageStreamEvent

from promptkeeper.evaluations.providers._sdk import SDKProvider
from promptkeeper.evaluations.providers.base import (
    Completion,
    ProviderError,
    ProviderRequest,
    ProviderSettings,
)

ANTHROPIC_DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_MAX_TOKENS = 1024
_RESERVED_PARAMS = ("stream", "model", "messages", "system", "max_tokens", "stop", "seed")


class AnthropicProvider(SDKProvider[anthropic.Anthropic, anthropic.AsyncAnthropic]):
    sdk: ClassVar[ModuleType] = anthropic
    key_variable = "PROMPTKEEPER_ANTHROPIC_API_KEY"
    url_variable = "PROMPTKEEPER_ANTHROPIC_BASE_URL"
    default_base_url = ANTHROPIC_DEFAULT_BASE_URL

    def __init__(self, settings: ProviderSettings, *, name: str = "anthropic") -> None:
        super().__init__(name=name, api_key=settings.anthropic_api_key, base_url=settings.anthropic_base_url)

    def _make_sync(self, api_key: str, base_url: str) -> anthropic.Anthropic:
        return anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=0)

    def _make_async(self, api_key: str, base_url: str) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, max_retries=0)

    def complete(self, request: ProviderRequest, *, timeout: float) -> Completion:
        client = self._sync_client()
        collector = _Collector(time.perf_counter())
        try:
            stream = client.messages.create(**self._arguments(request), stream=True, timeout=timeout)
            with stream:
                for event in stream:
                    collector.add(event)
                    if collector.elapsed_ms() > timeout * 1000:
                        raise ProviderError(
                            f"{self.name}: request timed out after {timeout:g} s", retryable=True
                        )
        except anthropic.AnthropicError as error:
            self._raise(error)
        return collector.completion()

    async def acomplete(self, request: ProviderRequest, *, timeout: float) -> Completion:
        client = self._async_client()
        collector = _Collector(time.perf_counter())
        try:
            stream = await client.messages.create(**self._arguments(request), stream=True, timeout=timeout)
            async with stream:
                async for event in stream:
                    collector.add(event)
        except anthropic.AnthropicError as error:
            self._raise(error)
        return collector.completion()

    def _arguments(self, request: ProviderRequest) -> dict[str, Any]:
        params = request.api_params()
        system = "\n\n".join(m.get("content", "") for m in request.messages if m.get("role") == "system")
        messages = [
            {"role": m.get("role", "user"), "content": m.get("content", "")}
            for m in request.messages
            if m.get("role") != "system"
        ]
        arguments: dict[str, Any] = {
            "model": request.model,
            "messages": cast(Any, messages),
            "max_tokens": int(params.get("max_tokens") or DEFAULT_MAX_TOKENS),
        }
        if system:
            arguments["system"] = system
        stop = params.get("stop")
        if stop and "stop_sequences" not in params:
            arguments["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        extra = {k: v for k, v in params.items() if k not in _RESERVED_PARAMS}
        if extra:
            # temperature, top_p, top_k, metadata, ...: into the JSON body as they are.
            arguments["extra_body"] = extra
        return arguments


class _Collector:
    """Accumulates a Messages stream: text deltas, usage, model and TTFT."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.parts: list[str] = []
        self.ttft_ms: float | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.model: str | None = None

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def add(self, event: RawMessageStreamEvent) -> None:
        if event.type == "message_start":
            self.model = event.message.model
            usage = event.message.usage
            self.input_tokens = _input_tokens(
                usage.input_tokens, usage.cache_creation_input_tokens, usage.cache_read_input_tokens
            )
            self.output_tokens = usage.output_tokens
        elif event.type == "content_block_delta" and event.delta.type == "text_delta":
            if self.ttft_ms is None:
                self.ttft_ms = self.elapsed_ms()
            self.parts.append(event.delta.text)
        elif event.type == "message_delta":
            usage_delta = event.usage
            if usage_delta.input_tokens is not None:
                self.input_tokens = _input_tokens(
                    usage_delta.input_tokens,
                    usage_delta.cache_creation_input_tokens,
                    usage_delta.cache_read_input_tokens,
                )
            self.output_tokens = usage_delta.output_tokens

    def completion(self) -> Completion:
        return Completion(
            text="".join(self.parts),
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            latency_ms=self.elapsed_ms(),
            ttft_ms=self.ttft_ms,
            model=self.model,
        )


def _input_tokens(base: int | None, created: int | None, read: int | None) -> int | None:
    """The Messages API reports cached prompt tokens apart; the prompt's size is their sum."""
    if base is None:
        return None
    return base + (created or 0) + (read or 0)
