"""What every provider speaks: requests, completions, errors, the response cache and settings.

A provider turns one `ProviderRequest` into one `Completion` or raises `ProviderError`; retries,
timeouts, concurrency and caching live in `executor.run_calls`, not in the providers, so that a
provider written by a user gets them for free and the built-in ones cannot disagree about them.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from email.utils import parsedate_to_datetime
from time import time
from typing import Any, Protocol

#: Parameters with this prefix steer the `local` provider; other providers never send them, so a suite
#: that models latency or failures locally can run unchanged against a real API.
LOCAL_PARAM_PREFIX = "local_"


@dataclass(frozen=True)
class ProviderRequest:
    """One model call: the model, the chat messages and the sampling parameters, passed through as is.

    A text prompt is a single `{"role": "user", "content": ...}` message.
    """

    model: str
    messages: list[dict[str, str]]
    params: dict[str, Any] = field(default_factory=dict)

    def cache_key(self, provider: str, repeat: int) -> str:
        """Everything that can change the answer, so that an unchanged suite re-run costs nothing while a
        changed model, message, parameter or repeat index always calls the provider again."""
        canonical = json.dumps(
            [provider, self.model, self.messages, self.params, repeat],
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            default=str,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    def api_params(self) -> dict[str, Any]:
        """The parameters meant for a real API: `local_*` ones removed."""
        return {k: v for k, v in self.params.items() if not k.startswith(LOCAL_PARAM_PREFIX)}


@dataclass(frozen=True)
class Completion:
    """A provider's answer and what it cost. Token counts are None when the provider did not report them;
    `ttft_ms` is the time until the first text arrived (None when nothing was streamed)."""

    text: str
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float
    ttft_ms: float | None
    model: str | None = None
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Completion:
        """Tolerates missing optional keys so that cache entries written by an older version still load."""
        return cls(
            text=str(data["text"]),
            input_tokens=data.get("input_tokens"),
            output_tokens=data.get("output_tokens"),
            latency_ms=float(data.get("latency_ms", 0.0)),
            ttft_ms=data.get("ttft_ms"),
            model=data.get("model"),
            cached=bool(data.get("cached", False)),
        )


class ProviderError(Exception):
    """A call failed. The message names the provider and the cause (never a credential).

    `retryable` tells the executor whether another attempt may succeed (429, 5xx, timeouts, connection
    errors); `retry_after` is the server's `Retry-After` in seconds when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class Provider(Protocol):
    """A model API. `name` is the registry name and part of every cache key."""

    name: str

    def complete(self, request: ProviderRequest, *, timeout: float) -> Completion: ...

    async def acomplete(self, request: ProviderRequest, *, timeout: float) -> Completion: ...


class ResponseCache(Protocol):
    """Completions by `ProviderRequest.cache_key`. The database-backed cache of runs implements this too."""

    def get(self, key: str) -> Completion | None: ...

    def put(self, key: str, completion: Completion) -> None: ...


class MemoryCache:
    """A dict-backed `ResponseCache` for tests and one-off runs; nothing survives the process."""

    def __init__(self) -> None:
        self._entries: dict[str, Completion] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Completion | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: str, completion: Completion) -> None:
        with self._lock:
            self._entries[key] = completion

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class ProviderSettings:
    """What providers and the executor need from `Settings`, as plain values so that this package does not
    depend on the server's configuration. The keys are left out of `repr` so that they never reach a log."""

    openai_base_url: str | None = None
    openai_api_key: str | None = field(default=None, repr=False)
    anthropic_base_url: str | None = None
    anthropic_api_key: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    max_retries: int = 3
    retry_base: float = 0.5
    concurrency: int = 8


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """`Retry-After` (seconds or an HTTP date) or the non-standard `retry-after-ms`, in seconds."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError):
        return None


def redact(text: str, secret: str | None) -> str:
    """Error bodies may echo what was sent; a key must not travel on into run results or logs."""
    if secret and len(secret) >= 4:
        return text.replace(secret, "***")
    return text


def retryable_status(status: int) -> bool:
    """Rate limits, server errors, and the request timeouts and lock conflicts that the vendors' own
    SDKs retry too."""
    return status in (408, 409, 429) or status >= 500


def word_count(text: str) -> int:
    return len(text.split())
