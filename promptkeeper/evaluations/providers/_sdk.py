"""What the two SDK-backed providers share: credentials, client lifetimes, and error mapping.

The `openai` and `anthropic` packages come from the same generator and have the same shape: a sync
and an async client taking `api_key`, `base_url` and `max_retries`, and the exceptions
`APITimeoutError`, `APIConnectionError` and `APIStatusError` (with `status_code` and `response`).
Subclasses name the SDK module, their settings and how to build the two clients.
"""

from __future__ import annotations

import asyncio
import weakref
from types import ModuleType
from typing import Any, ClassVar, Generic, NoReturn, TypeVar

from promptkeeper.evaluations.providers.base import (
    ProviderError,
    redact,
    retry_after_seconds,
    retryable_status,
)

#: Local servers (vLLM, Ollama, fakes) usually accept any key, but the SDKs insist on one.
PLACEHOLDER_KEY = "not-needed"

SyncClient = TypeVar("SyncClient")
AsyncClient = TypeVar("AsyncClient")


class SDKProvider(Generic[SyncClient, AsyncClient]):
    """Clients are created once per instance (the async one once per event loop: its connections
    belong to the loop that opened them). Call `close()` / `await aclose()` to release connections."""

    name: str
    sdk: ClassVar[ModuleType]
    key_variable: ClassVar[str]
    url_variable: ClassVar[str]
    default_base_url: ClassVar[str]

    def __init__(self, *, name: str, api_key: str | None, base_url: str | None) -> None:
        self.name = name
        self._api_key = api_key
        self._base_url = base_url
        self._sync: SyncClient | None = None
        self._async: AsyncClient | None = None
        self._async_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None

    def _make_sync(self, api_key: str, base_url: str) -> SyncClient:
        raise NotImplementedError

    def _make_async(self, api_key: str, base_url: str) -> AsyncClient:
        raise NotImplementedError

    def _credentials(self) -> tuple[str, str]:
        if self._api_key:
            return self._api_key, self._base_url or self.default_base_url
        if self._base_url:
            return PLACEHOLDER_KEY, self._base_url
        raise ProviderError(
            f"{self.name}: {self.key_variable} is not set "
            f"(or set {self.url_variable} for a server that needs no key)"
        )

    def _sync_client(self) -> SyncClient:
        if self._sync is None:
            # Explicit key and URL: the SDK must not fall back to its own environment variables.
            self._sync = self._make_sync(*self._credentials())
        return self._sync

    def _async_client(self) -> AsyncClient:
        loop = asyncio.get_running_loop()
        if self._async is None or self._async_loop is None or self._async_loop() is not loop:
            self._async = self._make_async(*self._credentials())
            self._async_loop = weakref.ref(loop)
        return self._async

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()  # type: ignore[attr-defined]
            self._sync = None

    async def aclose(self) -> None:
        """Closes the async client of the running loop (and the sync one)."""
        if self._async is not None:
            await self._async.close()  # type: ignore[attr-defined]
            self._async = None
            self._async_loop = None
        self.close()

    def _raise(self, error: Exception) -> NoReturn:
        """The SDK's exception as a `ProviderError`, retryable where a retry can help; no key in it."""
        sdk: Any = self.sdk
        if isinstance(error, sdk.APITimeoutError):
            raise ProviderError(f"{self.name}: request timed out", retryable=True) from None
        if isinstance(error, sdk.APIConnectionError):
            cause = error.__cause__ or error
            message = redact(f"{self.name}: connection error: {cause}", self._api_key)
            raise ProviderError(message, retryable=True) from None
        if isinstance(error, sdk.APIStatusError):
            status = error.status_code
            detail = getattr(error, "api_message", None) or error.message
            raise ProviderError(
                redact(f"{self.name}: HTTP {status}: {detail}", self._api_key),
                status=status,
                retryable=retryable_status(status),
                retry_after=retry_after_seconds(error.response.headers),
            ) from None
        raise ProviderError(redact(f"{self.name}: {error}", self._api_key)) from None
