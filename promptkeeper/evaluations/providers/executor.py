"""Running many provider calls: bounded concurrency, per-attempt timeouts, retries, the response cache.

`run_calls` is where every provider gets the same behaviour:

- at most `concurrency` calls in flight (a fixed pool of workers, so a suite of 10,000 cases does not
  become 10,000 tasks); a call waiting for its retry keeps its slot, which slows a rate-limited run down
  instead of hammering the API harder;
- each attempt is cut off after `timeout` seconds (`asyncio.timeout`), whatever the provider does;
- retryable failures (429, 5xx, timeouts, connection errors) are retried up to `max_retries` times after
  `retry_base * 2**(attempt - 1)` seconds with jitter, or after the server's `Retry-After`; other
  failures (400, 401, 404, a bug in a provider) end the call at once;
- the cache is read before the first attempt and written after a success, so a repeated run of an
  unchanged suite makes no provider call at all.

A failed call becomes an `Outcome` with an `error`; `run_calls` raises only for invalid arguments and for
exceptions of `on_outcome` or of the cache, which belong to the caller.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from promptkeeper import tracing
from promptkeeper.evaluations.providers.base import (
    Completion,
    Provider,
    ProviderError,
    ProviderRequest,
    ResponseCache,
)

log = logging.getLogger(__name__)

#: A server asking for a longer pause than this gets this: a run should not stall for an hour.
MAX_RETRY_AFTER = 60.0
MAX_BACKOFF = 30.0
_jitter = random.Random()


@dataclass(frozen=True)
class Call:
    """One call to make; `key` is the caller's identifier (e.g. `(case_id, repeat)`), returned as is."""

    key: Any
    request: ProviderRequest
    repeat: int = 0


@dataclass(frozen=True)
class Outcome:
    """The result of one `Call`: a completion, or the error after retries ran out or a non-retryable
    failure. `attempts` counts provider calls (0 for a cache hit)."""

    key: Any
    completion: Completion | None
    error: str | None
    attempts: int


OutcomeCallback = Callable[[Outcome], Awaitable[None] | None]


async def run_calls(
    provider: Provider,
    calls: Iterable[Call],
    *,
    concurrency: int,
    timeout: float,
    max_retries: int,
    retry_base: float,
    cache: ResponseCache | None = None,
    on_outcome: OutcomeCallback | None = None,
) -> list[Outcome]:
    """Run `calls` and return their outcomes in the order of `calls`; `on_outcome` sees each one as it
    finishes (in completion order), so progress can be streamed and results stored while a run goes on.
    `calls` is consumed lazily, one call per free worker."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    if max_retries < 0 or retry_base < 0:
        raise ValueError("max_retries and retry_base must be >= 0")

    pending = enumerate(calls)
    outcomes: dict[int, Outcome] = {}

    async def worker() -> None:
        for index, call in pending:
            outcome = await _run_one(
                provider, call, timeout=timeout, max_retries=max_retries, retry_base=retry_base, cache=cache
            )
            outcomes[index] = outcome
            if on_outcome is not None:
                result = on_outcome(outcome)
                if inspect.isawaitable(result):
                    await result

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(worker())
    except BaseExceptionGroup as errors:
        # Only the caller's callback or cache can fail a worker; hand back its exception itself.
        raise errors.exceptions[0] from None
    return [outcomes[index] for index in range(len(outcomes))]


async def _run_one(
    provider: Provider,
    call: Call,
    *,
    timeout: float,
    max_retries: int,
    retry_base: float,
    cache: ResponseCache | None,
) -> Outcome:
    key = call.request.cache_key(provider.name, call.repeat)
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            return Outcome(key=call.key, completion=replace(hit, cached=True), error=None, attempts=0)
    attempts = 0
    while True:
        attempts += 1
        try:
            with tracing.span("promptkeeper.llm.call", **{"gen_ai.request.model": call.request.model}):
                async with asyncio.timeout(timeout):
                    completion = await provider.acomplete(call.request, timeout=timeout)
        except ProviderError as provider_error:
            error = provider_error
        except TimeoutError:
            error = ProviderError(f"{provider.name}: request timed out after {timeout:g} s", retryable=True)
        except Exception as unexpected:  # a provider bug must not end the run: it ends this call
            error = ProviderError(f"{provider.name}: {type(unexpected).__name__}: {unexpected}")
        else:
            if cache is not None:
                cache.put(key, replace(completion, cached=False))
            return Outcome(key=call.key, completion=completion, error=None, attempts=attempts)
        if not error.retryable:
            return Outcome(key=call.key, completion=None, error=error.message, attempts=attempts)
        if attempts > max_retries:
            message = f"{error.message} (gave up after {attempts} attempts)"
            return Outcome(key=call.key, completion=None, error=message, attempts=attempts)
        delay = backoff_delay(attempts, retry_base=retry_base, retry_after=error.retry_after)
        log.debug("%s; retrying call %r in %.2f s", error.message, call.key, delay)
        await asyncio.sleep(delay)


def backoff_delay(
    attempt: int, *, retry_base: float, retry_after: float | None = None, rng: random.Random | None = None
) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): the server's `Retry-After` when
    given (capped), else exponential backoff with jitter in [50 %, 100 %] of the step, so that calls
    failing together do not all come back together."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), MAX_RETRY_AFTER)
    step = min(retry_base * 2.0 ** (attempt - 1), MAX_BACKOFF)
    return step * (rng or _jitter).uniform(0.5, 1.0)
