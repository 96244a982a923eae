"""`Client`: the synchronous SDK, with background threads for freshness."""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from promptkeeper.client._base import NETWORK_ERRORS, STREAM_READ_TIMEOUT, ClientBase
from promptkeeper.client._core import (
    IDEMPOTENCY_HEADER,
    WRITE_DELAYS,
    WRITE_TIMEOUT,
    Write,
    batch_key,
    check_response,
    check_write_response,
    deploy_write,
    log,
    prompt_from,
    prompt_write,
    resolve_params,
    resolve_path,
    version_write,
)
from promptkeeper.client._events import BATCH_SIZE
from promptkeeper.client._prompt import Prompt


class Client(ClientBase):
    """Fetch prompts by name; serve them from memory; keep them fresh in the background.

    `get()` waits on the network only the first time a prompt is asked for. After that it is a
    dictionary lookup; changes arrive through the server's event stream (or polling with ETags when
    streaming is unavailable), and expired entries are served while a refresh runs. When the server
    cannot be reached, the cache, then the snapshot file, then `fallbacks` are used, and only then
    `PromptUnavailable` is raised.

    `url` may be a list of server URLs: each request tries them in order.
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
        transport: httpx.BaseTransport | None = None,
        redact: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(
            url,
            api_key,
            environment,
            cache_ttl,
            fallbacks,
            snapshot_path,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            stream=stream,
            poll_interval=poll_interval,
            redact=redact,
        )
        self._http = httpx.Client(headers=self._headers, timeout=timeout, transport=transport)
        self._stream_http = httpx.Client(
            timeout=httpx.Timeout(timeout, read=STREAM_READ_TIMEOUT), transport=transport
        )
        self._refresh: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._queued: set[tuple[str, str]] = set()
        self._threads: list[threading.Thread] = []
        self._started = False
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._stream_response: httpx.Response | None = None
        self._events_wake = threading.Event()
        self._send_lock = threading.Lock()

    # -- public --------------------------------------------------------------------------------------

    def get(
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
            return self._raw(name, None if version is not None else environment or self.environment, version)
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
                prompt = self._first(name, env, None)
            if unit is None or prompt.experiment is None:
                return prompt
            index = self._local_variant(prompt.experiment, unit)
            if index is None:
                index = self._server_variant(prompt, env, unit)
            return self._serve(prompt, index, unit, request_id)
        pinned = self._pinned.get((name, version))
        if pinned is not None:
            return pinned
        return self._first(name, None, version)

    # -- registry writes ------------------------------------------------------------------------------

    def create_prompt(self, name: str, content: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
        """Create a prompt and its version 1 (an editor key); `fields` are the other body fields
        (`description`, `tags`, `message`...). Retried across the server URLs with one
        Idempotency-Key, so a lost answer never creates twice."""
        return self._write(prompt_write(name, content, fields))

    def create_version(
        self,
        name: str,
        content: Mapping[str, Any],
        *,
        message: str | None = None,
        base_version: int | None = None,
    ) -> dict[str, Any]:
        """Append a version (`base_version`: refuse with `Conflict` unless it is still the head).
        Safe to retry like `create_prompt`."""
        return self._write(version_write(name, content, message, base_version))

    def deploy(
        self, name: str, environment: str, version: int, *, reason: str | None = None
    ) -> dict[str, Any]:
        """Deploy a version to an environment (the environment's policy applies). Safe to retry."""
        return self._write(deploy_write(name, environment, version, reason))

    def _write(self, write: Write) -> dict[str, Any]:
        headers = {IDEMPOTENCY_HEADER: write.key}
        last: BaseException | None = None
        for delay in WRITE_DELAYS:
            time.sleep(delay)
            for base in self.urls:
                try:
                    response = self._http.post(
                        base + write.path, json=write.body, headers=headers, timeout=WRITE_TIMEOUT
                    )
                    return check_write_response(response)
                except NETWORK_ERRORS as exc:
                    last = exc
        assert last is not None
        raise last

    def flush(self, timeout: float = 5.0) -> bool:
        """Send every queued event now; True when none is left (False: the server is unreachable)."""
        deadline = time.monotonic() + timeout
        while len(self.events) and time.monotonic() < deadline:
            if not self._send_batch():
                return False
        return not len(self.events)

    def close(self) -> None:
        """Send queued events (for up to `timeout`), stop the background threads, close connections."""
        if not self._closed and len(self.events):
            self.flush(self.timeout)
        self._closed = True
        self._stop.set()
        self._events_wake.set()
        self._refresh.put(None)
        self._interrupt_stream()
        for thread in self._threads:
            thread.join(timeout=5)
        self._http.close()
        self._stream_http.close()

    def _interrupt_stream(self) -> None:
        """Wake the stream thread from its blocking read: shut the socket down under it."""
        response = self._stream_response
        if response is None:
            return
        network_stream = response.extensions.get("network_stream")
        sock = network_stream.get_extra_info("socket") if network_stream is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- experiments and events ------------------------------------------------------------------------

    def _server_variant(self, prompt: Prompt, environment: str, unit: str) -> int:
        """A bandit unit's variant, from the server (which keeps it); hashing when it is unreachable."""
        plan = prompt.experiment
        assert plan is not None
        params = {"environment": environment, "unit": unit}
        for base in self.urls:
            try:
                response = self._http.get(base + resolve_path(prompt.name), params=params)
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

    def _send_batch(self) -> bool:
        """Post one batch; False when it could not be delivered (it is queued again)."""
        with self._send_lock:
            batch = self.events.take()
            if not batch:
                return True
            key = batch_key(batch)
            for base in self.urls:
                try:
                    response = self._http.post(
                        base + "/v1/events", json={"events": batch}, headers={IDEMPOTENCY_HEADER: key}
                    )
                except httpx.TransportError:
                    continue
                if self._events_delivered(response, batch):
                    return True
            self.events.put_back(batch)
            return False

    def _sender(self) -> None:
        delay = self.flush_interval
        while not self._stop.is_set():
            self._events_wake.wait(delay)
            self._events_wake.clear()
            if self._stop.is_set():
                return
            delay = self.flush_interval
            while len(self.events) and not self._stop.is_set():
                if not self._send_batch():
                    delay = min(30.0, max(delay, self.backoff) * 2)
                    break

    def _raw(self, name: str, environment: str | None, version: int | None) -> Prompt:
        params = resolve_params(environment, version, raw=True)
        response = self._http.get(self.urls[0] + resolve_path(name), params=params)
        check_response(response)
        return prompt_from(response, None)

    # -- fetching ------------------------------------------------------------------------------------

    def _fetch(
        self,
        name: str,
        environment: str | None,
        version: int | None,
        previous: Prompt | None,
        urls: list[str] | None = None,
        floor: int = 0,
    ) -> Prompt:
        """The first answer of at least revision `floor`; else the newest answer had, if any."""
        params = resolve_params(environment, version)
        best: Prompt | None = None
        headers = {"If-None-Match": previous.etag} if previous is not None and previous.etag else None
        last: BaseException | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            for base in urls or self.urls:
                try:
                    response = self._http.get(base + resolve_path(name), params=params, headers=headers)
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

    def _first(self, name: str, environment: str | None, version: int | None) -> Prompt:
        if self._closed:
            raise RuntimeError("the client is closed")
        self._start_background()
        try:
            prompt = self._fetch(name, environment, version, None)
        except NETWORK_ERRORS as exc:
            return self._offline(name, environment, version, exc)
        self._store(prompt, pinned=version is not None)
        return prompt

    def _refresh_later(self, environment: str, name: str) -> None:
        key = (environment, name)
        if key not in self._queued:
            self._queued.add(key)
            self._refresh.put(key)

    def _refresh_one(self, environment: str, name: str) -> None:
        self._queued.discard((environment, name))
        previous = self._cached(name, environment)
        urls, floor = self._refresh_plan(environment, name)
        try:
            prompt = self._fetch(
                name,
                environment,
                None,
                previous if previous and previous.source == "server" else None,
                urls,
                floor,
            )
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
        if self._started:
            return
        with self._start_lock:
            if self._started:
                return
            self._started = True
            targets = [self._worker, self._sender]
            if self.stream_enabled:
                targets.append(self._streamer)
            for target in targets:
                thread = threading.Thread(target=target, name=f"promptkeeper-{target.__name__}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _worker(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._refresh.get(timeout=self._worker_wait())
            except queue.Empty:
                item = None
            if item is not None:
                self._refresh_one(*item)
            for key in self._due_retries():
                self._refresh_one(*key)
            if self._poll_due():
                self._last_poll = time.monotonic()
                for environment, name in self.cached_keys():
                    self._refresh_one(environment, name)

    def _streamer(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            for base in self.urls:
                if self._stop.is_set():
                    return
                try:
                    with self._stream_http.stream(
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
                        for line in response.iter_lines():
                            for key in self._on_stream_line(line, base):
                                self._refresh_later(*key)
                except (httpx.HTTPError, OSError) as exc:
                    if not self._stop.is_set():
                        log.debug("event stream from %s interrupted: %s", base, exc)
                finally:
                    self._stream_response = None
                    self.stream_connected = False
            self._stop.wait(delay)
            delay = min(delay * 2, 30.0)
