"""The `anthropic` provider: Anthropic's Messages API through the official SDK.

Chat messages are mapped onto the Messages API: system messages become the `system` parameter (joined
by blank lines), the others are sent in order. `max_tokens`, which the API requires, defaults to
1024; `stop` is sent as `stop_sequences`; `seed` has no counterpart and is dropped, so that a suite
written for OpenAI-compatible models runs here unchanged. Answers are streamed for time-to-first-token;
token counts come from the `message_start` and `message_delta` events. The SDK's own retries are off.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any, NoReturn, cast

import anthropic
from anthropic.types import RawMessageStreamEvent

from promptkeeper.evaluations.providers.base import (
    Completion,
    ProviderError,
    ProviderRequest,
    ProviderSettings,
    redact,
    retry_after_seconds,
    retryable_status,
)

ANTHROPIC_DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_MAX_TOKENS = 1024
PLACEHOLDER_KEY = "not-needed"
_RESERVED_PARAMS = ("stream", "model", "messages", "system", "max_tokens", "stop", "seed")


class AnthropicProvider:
    """Clients are created once per instance (the async one once per event loop). Call `close()` /
    `await aclose()` when done to release connections."""

    name: str = "anthropic"

    def __init__(self, settings: ProviderSettings, *, name: str = "anthropic") -> None:
        self.name = name
        self._base_url = settings.anthropic_base_url
        self._api_key = settings.anthropic_api_key
        self._sync: anthropic.Anthropic | None = None
        self._async: anthropic.AsyncAnthropic | None = None
        self._async_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None

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

    def _credentials(self) -> tuple[str, str]:
        if self._api_key:
            return self._api_key, self._base_url or ANTHROPIC_DEFAULT_BASE_URL
        if self._base_url:
            return PLACEHOLDER_KEY, self._base_url
        raise ProviderError(
            f"{self.name}: PROMPTKEEPER_ANTHROPIC_API_KEY is not set "
            "(or set PROMPTKEEPER_ANTHROPIC_BASE_URL for a server that needs no key)"
        )

    def _sync_client(self) -> anthropic.Anthropic:
        if self._sync is None:
            api_key, base_url = self._credentials()
            # Explicit key and URL: the SDK must not fall back to ANTHROPIC_* variables or profiles.
            self._sync = anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=0)
        return self._sync

    def _async_client(self) -> anthropic.AsyncAnthropic:
        loop = asyncio.get_running_loop()
        if self._async is None or self._async_loop is None or self._async_loop() is not loop:
            api_key, base_url = self._credentials()
            self._async = anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, max_retries=0)
            self._async_loop = weakref.ref(loop)
        return self._async

    def _raise(self, error: anthropic.AnthropicError) -> NoReturn:
        if isinstance(error, anthropic.APITimeoutError):
            raise ProviderError(f"{self.name}: request timed out", retryable=True) from None
        if isinstance(error, anthropic.APIConnectionError):
            cause = error.__cause__ or error
            message = redact(f"{self.name}: connection error: {cause}", self._api_key)
            raise ProviderError(message, retryable=True) from None
        if isinstance(error, anthropic.APIStatusError):
            status = error.status_code
            detail = error.api_message or error.message
            raise ProviderError(
                redact(f"{self.name}: HTTP {status}: {detail}", self._api_key),
                status=status,
                retryable=retryable_status(status),
                retry_after=retry_after_seconds(error.response.headers),
            ) from None
        raise ProviderError(redact(f"{self.name}: {error}", self._api_key)) from None


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
