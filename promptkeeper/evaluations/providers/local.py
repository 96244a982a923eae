"""The `local` provider: deterministic answers without a network, for demos, tests and benchmarks.

Steered by parameters (which real providers never send):

- `local_responses`: {last user message: answer}; anything else is echoed back, or answered with
  `local_default` when that is given (a fixed judge verdict, say).
- `local_latency_ms`: how long each call takes, so that concurrency can be measured without an API.
- `local_fail`: `{"status": 429 | 500 | ..., "times": N, "retry_after": seconds}` fails the first N
  attempts of each distinct request, so retry logic can be exercised without a server.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from promptkeeper.evaluations.providers.base import (
    Completion,
    ProviderError,
    ProviderRequest,
    ProviderSettings,
    retryable_status,
    word_count,
)


class LocalProvider:
    """Answers are a pure function of the request; only `local_fail` keeps state (attempts per request)."""

    name: str = "local"

    def __init__(self, settings: ProviderSettings | None = None, *, name: str = "local") -> None:
        self.name = name
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()

    def complete(self, request: ProviderRequest, *, timeout: float) -> Completion:
        started = time.perf_counter()
        self._maybe_fail(request)
        delay = _latency_seconds(request)
        if delay > timeout:
            time.sleep(timeout)
            raise ProviderError(f"{self.name}: request timed out after {timeout:g} s", retryable=True)
        if delay:
            time.sleep(delay)
        return self._answer(request, started)

    async def acomplete(self, request: ProviderRequest, *, timeout: float) -> Completion:
        started = time.perf_counter()
        self._maybe_fail(request)
        delay = _latency_seconds(request)
        if delay > timeout:
            await asyncio.sleep(timeout)
            raise ProviderError(f"{self.name}: request timed out after {timeout:g} s", retryable=True)
        if delay:
            await asyncio.sleep(delay)
        return self._answer(request, started)

    def _maybe_fail(self, request: ProviderRequest) -> None:
        fail = request.params.get("local_fail")
        if not fail:
            return
        if not isinstance(fail, dict):
            raise ProviderError(
                f"{self.name}: local_fail must be an object like {{'status': 429, 'times': 1}}"
            )
        key = request.cache_key(self.name, 0)
        with self._lock:
            attempt = self._attempts.get(key, 0) + 1
            self._attempts[key] = attempt
        if attempt > int(fail.get("times", 1)):
            return
        status = int(fail.get("status", 500))
        retry_after = fail.get("retry_after")
        raise ProviderError(
            f"{self.name}: injected HTTP {status} (attempt {attempt})",
            status=status,
            retryable=retryable_status(status),
            retry_after=float(retry_after) if retry_after is not None else None,
        )

    def _answer(self, request: ProviderRequest, started: float) -> Completion:
        prompt = _last_user_message(request.messages)
        responses: Any = request.params.get("local_responses") or {}
        if isinstance(responses, dict) and prompt in responses:
            text = str(responses[prompt])
        elif "local_default" in request.params:
            text = str(request.params["local_default"])
        else:
            text = prompt
        elapsed_ms = (time.perf_counter() - started) * 1000
        return Completion(
            text=text,
            input_tokens=sum(word_count(m.get("content", "")) for m in request.messages),
            output_tokens=word_count(text),
            latency_ms=elapsed_ms,
            ttft_ms=elapsed_ms,
            model=request.model,
        )


def _latency_seconds(request: ProviderRequest) -> float:
    return max(0.0, float(request.params.get("local_latency_ms", 0))) / 1000


def _last_user_message(messages: list[dict[str, str]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return message.get("content", "")
    return ""
