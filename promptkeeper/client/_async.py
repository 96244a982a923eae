"""`AsyncClient`: the asyncio SDK, with background tasks for freshness.

Both clients are written once, in `_async.py`: scripts/unasync.py generates `_sync.py` from it
(`async` and `await` dropped, `Async*` names made plain), and the few primitives that really differ
(background loops, events, queues, locks, sleeping) come from `_synchronization.py` in both forms.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from promptkeeper.client._base import NETWORK_ERRORS, STREAM_READ_TIMEOUT, ClientBase
from promptkeeper.client._core import (
    IDEMPOTENCY_HEADER,
    WRITE_DELAYS,
    WRITE_TIMEOUT,
    Snapshot,
    Write,
    batch_key,
    check_response,
    check_write_response,
    deploy_write,
    log,
    normalize_fallbacks,
    normalize_urls,
    prompt_from,
    prompt_write,
    resolve_params,
    resolve_path,
    version_write,
)
from promptkeeper.client._events import BATCH_SIZE
from promptkeeper.client._prompt import Prompt
from promptkeeper.client._synchronization import (
    AsyncBackground,
    AsyncEvent,
    AsyncLock,
    AsyncQueue,
    async_sleep,
)


class AsyncClient(ClientBase):
    """Fetch prompts by name; serve them from memory; keep them fresh in the background.

    `get()` waits on the network only the first time a prompt is asked for. After that it is a
    dictionary lookup; changes arrive through the server's event stream (or polling with ETags when
    streaming is unavailable), and expired entries are served while a refresh runs. When the server
    cannot be reached, the cache, then the snapshot file, then `fallbacks` are used, and only then
    `PromptUnavailable` is raised.

    `url` may be a list of server URLs: each request tries them in order.

    The background work runs as asyncio tasks, started by the first `get`; `await client.aclose()`
    (or `async with`) stops them.
    """

    def __init__(
        self,
        url: str | list[str] | tuple[str, ...],
        api_key: str,
        environment: str = "production",
        cache_ttl: float = 60.0,
        fallbacks: Mapping[str, Any] | None = None,
        snapshot_path: str | None = None,
        *,
        timeout: float = 2.0,
        retries: int = 2,
        backoff: float = 0.1,
        stream: bool = True,
        poll_interval: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        redact: Callable[[Any], Any] | None = None,
    ) -> None:
        if cache_ttl < 0 or timeout <= 0 or retries < 0 or backoff < 0 or poll_interval <= 0:
            raise ValueError("cache_ttl, retries and backoff must be >= 0; timeout and poll_interval > 0")
        super().__init__()
        self.urls = normalize_urls(url)
        self.environment = environment
        self.cache_ttl = cache_ttl
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.stream_enabled = stream
        self.poll_interval = poll_interval
        self.redact = redact
        self._headers = {"Authorization": f"Bearer {api_key}", "User-Agent": "promptkeeper-python"}
        self._fallbacks = normalize_fallbacks(fallbacks)
        self._snapshot = Snapshot(snapshot_path)
        self._http = httpx.AsyncClient(headers=self._headers, timeout=timeout, transport=transport)
        self._stream_http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, read=STREAM_READ_TIMEOUT), transport=transport
        )
        self._refresh: AsyncQueue[tuple[str, str] | None] = AsyncQueue()
        self._queued: set[tuple[str, str]] = set()
        self._background = AsyncBackground()
        self._stop = AsyncEvent()
        self._stream_response: httpx.Response | None = None
        self._events_wake = AsyncEvent()
        self._send_lock = AsyncLock()

    # -- public --------------------------------------------------------------------------------------

    async def get(
        self,
        name: str,
        *,
        version: int | None = None,
        environment: str | None = None,
        unit: str | None = None,
        request_id: str | None = None,
        raw: bool = False,
    ) -> Prompt:
        """The prompt `environment` (default: the client's) serves, or a specific `version`.

        `unit` (a user or session id): while an experiment runs on the environment, the variant
        assigned to this unit, computed locally (no request) for fixed weights; its exposure is
        logged in the background under `request_id` (default: a new one, in `prompt.request_id`),
        which `log_outcome` takes. Without a unit, or with no experiment running, the deployed
        version, and nothing is logged.

        A composed prompt comes with its includes expanded (`prompt.includes` lists them), and is
        refreshed when one of them is redeployed. `raw=True`: the stored text with its
        `@@@prompt:…@@@` references, fetched each time (not cached, no snapshot or fallback).
        """
        if raw:
            raw_environment = None if version is not None else environment or self.environment
            return await self._raw(name, raw_environment, version)
        if version is None:
            env = environment or self.environment
            by_environment = self._entries.get(env)
            prompt = None
            if by_environment is not None:
                entry = by_environment.get(name)
                if entry is not None:
                    if entry.expires < time.monotonic():
                        self._refresh_later(env, name)
                    if unit is None:  # the cache-hit fast path: nothing else to decide
                        return entry.prompt
                    prompt = entry.prompt
            if prompt is None:
                prompt = await self._first(name, env, None)
            if unit is None or prompt.experiment is None:
                return prompt
            index = self._local_variant(prompt.experiment, unit)
            if index is None:
                index = await self._server_variant(prompt, env, unit)
            return self._serve(prompt, index, unit, request_id)
        pinned = self._pinned.get((name, version))
        if pinned is not None:
            return pinned
        return await self._first(name, None, version)

    # -- registry writes ------------------------------------------------------------------------------

    async def create_prompt(self, name: str, content: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
        """Create a prompt and its version 1 (an editor key); `fields` are the other body fields
        (`description`, `tags`, `message`...). Retried across the server URLs with one
        Idempotency-Key, so a lost answer never creates twice."""
        return await self._write(prompt_write(name, content, fields))

    async def create_version(
        self,
        name: str,
        content: Mapping[str, Any],
        *,
        message: str | None = None,
        base_version: int | None = None,
    ) -> dict[str, Any]:
        """Append a version (`base_version`: refuse with `Conflict` unless it is still the head).
        Safe to retry like `create_prompt`."""
        return await self._write(version_write(name, content, message, base_version))

    async def deploy(
        self, name: str, environment: str, version: int, *, reason: str | None = None
    ) -> dict[str, Any]:
        """Deploy a version to an environment (the environment's policy applies). Safe to retry."""
        return await self._write(deploy_write(name, environment, version, reason))

    async def _write(self, write: Write) -> dict[str, Any]:
        headers = {IDEMPOTENCY_HEADER: write.key}
        last: BaseException | None = None
        for delay in WRITE_DELAYS:
            await async_sleep(delay)
            for base in self.urls:
                try:
                    response = await self._http.post(
                        base + write.path, json=write.body, headers=headers, timeout=WRITE_TIMEOUT
                    )
                    return check_write_response(response)
                except NETWORK_ERRORS as exc:
                    last = exc
        assert last is not None
        raise last

    async def flush(self, timeout: float = 5.0) -> bool:
        """Send every queued event now; True when none is left (False: the server is unreachable)."""
        deadline = time.monotonic() + timeout
        while len(self.events) and time.monotonic() < deadline:
            if not await self._send_batch():
                return False
        return not len(self.events)

    async def aclose(self) -> None:
        """Send queued events (for up to `timeout`), stop the background tasks, close connections."""
        if not self._closed and len(self.events):
            await self.flush(self.timeout)
        self._closed = True
        self._stop.set()
        self._events_wake.set()
        self._refresh.put_nowait(None)
        await self._background.stop(self._stream_response)
        await self._http.aclose()
        await self._stream_http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- experiments and events ------------------------------------------------------------------------

    async def _server_variant(self, prompt: Prompt, environment: str, unit: str) -> int:
        """A bandit unit's variant, from the server (which keeps it); hashing when it is unreachable."""
        plan = prompt.experiment
        assert plan is not None
        params = {"environment": environment, "unit": unit}
        for base in self.urls:
            try:
                response = await self._http.get(base + resolve_path(prompt.name), params=params)
                check_response(response)
            except NETWORK_ERRORS:
                continue
            except Exception as exc:  # e.g. the experiment ended meanwhile: the local answer will do
                log.debug("assignment of %s for '%s' failed: %s", unit, prompt.name, exc)
                break
            index = self._assignment_from(plan, unit, response)
            if index is not None:
                return index
            break
        return self._hashed_variant(plan, unit)

    def _events_added(self) -> None:
        self._start_background()
        if len(self.events) >= BATCH_SIZE:
            self._events_wake.set()

    async def _send_batch(self) -> bool:
        """Post one batch; False when it could not be delivered (it is queued again)."""
        async with self._send_lock:
            batch = self.events.take()
            if not batch:
                return True
            key = batch_key(batch)
            for base in self.urls:
                try:
                    response = await self._http.post(
                        base + "/v1/events", json={"events": batch}, headers={IDEMPOTENCY_HEADER: key}
                    )
                except httpx.TransportError:
                    continue
                if self._events_delivered(response, batch):
                    return True
            self.events.put_back(batch)
            return False

    async def _sender(self) -> None:
        delay = self.flush_interval
        while not self._stop.is_set():
            await self._events_wake.wait(delay)
            self._events_wake.clear()
            if self._stop.is_set():
                return
            delay = self.flush_interval
            while len(self.events) and not self._stop.is_set():
                if not await self._send_batch():
                    delay = min(30.0, max(delay, self.backoff) * 2)
                    break

    async def _raw(self, name: str, environment: str | None, version: int | None) -> Prompt:
        """The stored text, asked of every URL in turn like any read (never cached: not what serves)."""
        return await self._fetch(name, environment, version, None, raw=True)

    # -- fetching ------------------------------------------------------------------------------------

    async def _fetch(
        self,
        name: str,
        environment: str | None,
        version: int | None,
        previous: Prompt | None,
        urls: list[str] | None = None,
        floor: int = 0,
        raw: bool = False,
    ) -> Prompt:
        """The first answer of at least revision `floor`; else the newest answer had, if any."""
        params = resolve_params(environment, version, raw=raw)
        best: Prompt | None = None
        headers = {"If-None-Match": previous.etag} if previous is not None and previous.etag else None
        last: BaseException | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                await async_sleep(self.backoff * 2 ** (attempt - 1))
            for base in urls or self.urls:
                try:
                    response = await self._http.get(base + resolve_path(name), params=params, headers=headers)
                    check_response(response)
                except NETWORK_ERRORS as exc:
                    last = exc
                    continue
                self.stats["fetches"] += 1
                if response.status_code == 304:
                    self.stats["not_modified"] += 1
                prompt = prompt_from(response, previous)
                if (prompt.revision or 0) >= floor:
                    return prompt
                if best is None or (prompt.revision or 0) > (best.revision or 0):
                    best = prompt  # this server has not heard of the change yet: ask the next
        if best is not None:
            return best
        assert last is not None
        raise last

    async def _first(self, name: str, environment: str | None, version: int | None) -> Prompt:
        if self._closed:
            raise RuntimeError("the client is closed")
        self._start_background()
        try:
            prompt = await self._fetch(name, environment, version, None)
        except NETWORK_ERRORS as exc:
            return self._offline(name, environment, version, exc)
        self._store(prompt, pinned=version is not None)
        return prompt

    def _refresh_later(self, environment: str, name: str) -> None:
        key = (environment, name)
        if key not in self._queued:
            self._queued.add(key)
            self._refresh.put_nowait(key)

    async def _refresh_one(self, environment: str, name: str) -> None:
        self._queued.discard((environment, name))
        previous = self._cached(name, environment)
        usable = previous if previous is not None and previous.source == "server" else None
        try:
            urls, floor = self._refresh_plan(environment, name)
            prompt = await self._fetch(name, environment, None, usable, urls, floor)
        except NETWORK_ERRORS:
            self._refresh_failed(name, environment)
            return
        except Exception as exc:  # e.g. the prompt was undeployed: keep serving what we have
            log.warning("refreshing prompt '%s' (%s) failed: %s", name, environment, exc)
            self._refresh_failed(name, environment)
            return
        self._settle(environment, name, prompt)

    # -- background ----------------------------------------------------------------------------------

    def _start_background(self) -> None:
        loops = [self._worker, self._sender]
        if self.stream_enabled:
            loops.append(self._streamer)
        self._background.start(loops)

    async def _worker(self) -> None:
        while not self._stop.is_set():
            item = await self._refresh.get(timeout=self._worker_wait())
            if item is not None:
                await self._refresh_one(*item)
            for key in self._due_retries():
                await self._refresh_one(*key)
            if self._poll_due():
                self._last_poll = time.monotonic()
                for environment, name in self.cached_keys():
                    await self._refresh_one(environment, name)

    async def _streamer(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            for base in self.urls:
                if self._stop.is_set():
                    return
                try:
                    async with self._stream_http.stream(
                        "GET", base + "/v1/stream", headers=self._stream_headers()
                    ) as response:
                        if response.status_code != 200:
                            raise httpx.HTTPStatusError(
                                f"stream answered {response.status_code}",
                                request=response.request,
                                response=response,
                            )
                        self._stream_response = response
                        if self._stop.is_set():  # closed while we were connecting
                            return
                        reconnected = self._sse.last_id is not None
                        self.stream_connected = True
                        delay = 0.5
                        if reconnected:  # anything missed is replayed by the server; revalidate anyway
                            for key in self.cached_keys():
                                self._refresh_later(*key)
                        async for line in response.aiter_lines():
                            for key in self._on_stream_line(line, base):
                                self._refresh_later(*key)
                except (httpx.HTTPError, OSError) as exc:
                    if not self._stop.is_set():
                        log.debug("event stream from %s interrupted: %s", base, exc)
                finally:
                    self._stream_response = None
                    self.stream_connected = False
            await self._stop.wait(delay)
            delay = min(delay * 2, 30.0)
