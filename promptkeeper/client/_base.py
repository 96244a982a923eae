"""State and decisions shared by `Client` and `AsyncClient`; the subclasses do the I/O.

The cache is `entries[environment][name] -> Entry`, read without locks: a hit is two dictionary
lookups and a clock read, and returns the cached `Prompt` object itself. Writers replace whole
entries (atomic under the GIL), so a reader never sees a half-updated one.

A change announced on the stream is a promise that its revision exists: the refresh it triggers
asks the announcing server first and does not settle for an older answer from another one (which
may not have heard of the change yet, e.g. while Redis is down). Such an answer is served only
until a retry a moment later, not for the cache TTL.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from promptkeeper.client._core import (
    Entry,
    Floor,
    PromptUnavailable,
    Snapshot,
    SSEParser,
    _Retryable,
    describe,
    log,
    parse_change,
)
from promptkeeper.client._events import EventQueue, outcome_fields
from promptkeeper.client._prompt import Prompt
from promptkeeper.core.assignment import assign

#: Failures that mean "the server could not be asked", as opposed to answers such as 404.
NETWORK_ERRORS = (httpx.TransportError, _Retryable)
FAILED_REFRESH_DELAY = 5.0
STREAM_READ_TIMEOUT = 60.0
MAX_STICKY_UNITS = 100_000
#: Retrying a refresh whose answer was older than the announced revision: 0.1 s, doubling to 2 s;
#: after FLOOR_PATIENCE seconds the answer is taken as it is (the release may have been recreated).
FLOOR_RETRY_FIRST = 0.1
FLOOR_RETRY_MAX = 2.0
FLOOR_PATIENCE = 30.0


class ClientBase:
    """The state and decisions of both clients, for the one constructor (`AsyncClient.__init__`,
    which `Client.__init__` is generated from) to fill in with the settings below."""

    urls: list[str]
    environment: str
    cache_ttl: float
    timeout: float
    retries: int
    backoff: float
    stream_enabled: bool
    poll_interval: float
    redact: Callable[[Any], Any] | None
    _headers: dict[str, str]
    _fallbacks: dict[str, Any]
    _snapshot: Snapshot

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {}
        self._pinned: dict[tuple[str, int], Prompt] = {}
        self._write_lock = threading.Lock()
        self._sse = SSEParser()
        self.stream_connected = False
        self._last_poll = time.monotonic()
        self._closed = False
        self.stats = {
            "fetches": 0,
            "not_modified": 0,
            "refresh_failures": 0,
            "stream_events": 0,
            "older_than_announced": 0,
        }
        self._floors: dict[tuple[str, str], Floor] = {}
        self._retry_at: dict[tuple[str, str], float] = {}
        self.events = EventQueue()
        self.flush_interval = 1.0
        self._sticky: OrderedDict[tuple[int, str], int] = OrderedDict()

    # -- experiments -------------------------------------------------------------------------------

    def _local_variant(self, plan: Mapping[str, Any], unit: str) -> int | None:
        """The unit's variant index without I/O (-1: outside the experiment); None: ask the server.

        Fixed weights: GrowthBook hashing, as the server does. Bandits: a unit keeps the variant the
        server first gave it, which only the server knows for a unit this process has not seen.
        """
        if plan["mode"] != "fixed":
            return self._sticky.get((plan["id"], unit))
        return self._hashed_variant(plan, unit)

    @staticmethod
    def _hashed_variant(plan: Mapping[str, Any], unit: str) -> int:
        return assign(
            seed=plan["seed"],
            unit=unit,
            weights=[v["weight"] for v in plan["variants"]],
            coverage=plan["coverage"],
            hash_version=plan["hash_version"],
        )

    def _remember(self, experiment_id: int, unit: str, index: int) -> None:
        with self._write_lock:
            self._sticky[(experiment_id, unit)] = index
            while len(self._sticky) > MAX_STICKY_UNITS:
                self._sticky.popitem(last=False)

    def _serve(self, prompt: Prompt, index: int, unit: str, request_id: str | None) -> Prompt:
        """The variant for one request, with its exposure queued; the control when outside."""
        if index < 0 or index >= len(prompt.variants):
            return prompt
        served = prompt.variants[index].served_to(unit, request_id or uuid.uuid4().hex)
        self.events.exposure(served)
        self._events_added()
        return served

    def log_outcome(
        self, request_id: str, *, metrics: Mapping[str, float | bool] | None = None, **fields: Any
    ) -> None:
        """Record what happened to a request (`prompt.request_id`): queued, sent in the background.

        Fields: completed, thumbs ('up'/'down'), rating (1-5), edited, regenerated, latency_ms,
        ttft_ms, input_tokens, output_tokens, cost_usd, safety_flag; `metrics` holds custom
        metrics by name. Raises ValueError at once for a field the server would reject.
        """
        if not request_id:
            raise ValueError("log_outcome needs the request id of the prompt served (prompt.request_id)")
        values = outcome_fields({**fields, "metrics": dict(metrics) if metrics else None})
        self.events.outcome(request_id, values)
        self._events_added()

    def log_generation(
        self,
        prompt: Prompt,
        output: str,
        *,
        input: Any = None,  # noqa: A002 - the record's field is called input
        request_id: str | None = None,
        latency_ms: float | None = None,
        ttft_ms: float | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
    ) -> str | None:
        """Record what the model produced for `prompt` (queued, sent in the background), for the
        server's monitors. Returns the request id that feedback is logged against with
        `log_outcome(request_id, thumbs=...)`; None when the prompt is a caller's fallback (no
        version to judge) and nothing is recorded.

        `input` (the rendered prompt or its variables) passes through the client's `redact` hook
        first; if the hook raises, the record is sent without its input, never unredacted.
        """
        if not isinstance(output, str):
            raise ValueError(f"output must be a string, not {type(output).__name__}")
        if prompt.source == "fallback" or prompt.version < 1:
            return None
        request_id = request_id or prompt.request_id or uuid.uuid4().hex
        event: dict[str, Any] = {
            "type": "generation",
            "request_id": request_id,
            "prompt": prompt.name,
            "version": prompt.version,
            "environment": prompt.environment or self.environment,
            "output": output,
        }
        if input is not None:
            try:
                event["input"] = self.redact(input) if self.redact is not None else input
            except Exception:  # noqa: BLE001 - a failing hook must not leak the input or break the app
                self.stats["redaction_failures"] = self.stats.get("redaction_failures", 0) + 1
                log.warning("the redact hook failed: the generation is sent without its input")
        measured = {
            "latency_ms": latency_ms,
            "ttft_ms": ttft_ms,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost_usd": cost_usd,
        }
        for name, value in measured.items():
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise ValueError(f"{name} must be a non-negative number, not {value!r}")
                event[name] = value
        if prompt.experiment_id is not None and prompt.unit is not None:
            event.update(experiment_id=prompt.experiment_id, variant=prompt.variant, unit=prompt.unit)
        self.events.generation(event)
        self._events_added()
        return request_id

    def _events_added(self) -> None:
        """Subclasses wake their sender when a batch is full."""

    def _events_delivered(self, response: httpx.Response, batch: list[dict[str, Any]]) -> bool:
        """Whether a batch is done with (sent, or refused for good); False: try another server/later."""
        if response.status_code >= 500:
            return False
        if response.status_code >= 400:  # the server refuses it: retrying cannot help
            self.events.dropped += len(batch)
            log.warning("the server rejected %d events: %s", len(batch), response.text[:300])
        else:
            self.events.sent += len(batch)
        return True

    def _assignment_from(self, plan: Mapping[str, Any], unit: str, response: httpx.Response) -> int | None:
        """The variant index in a `resolve?unit=` answer, remembered; None if it is not this experiment's."""
        assignment = response.json().get("assignment") or {}
        if assignment.get("experiment_id") != plan["id"]:
            return None
        index = assignment.get("index")
        result = -1 if index is None else int(index)
        self._remember(plan["id"], unit, result)
        return result

    # -- cache -------------------------------------------------------------------------------------

    def _store(self, prompt: Prompt, *, pinned: bool, ttl: float | None = None) -> None:
        if pinned:
            self._pinned[(prompt.name, prompt.version)] = prompt
        else:
            environment = prompt.environment or self.environment
            expires = time.monotonic() + (self.cache_ttl if ttl is None else ttl)
            with self._write_lock:
                by_environment = self._entries.get(environment)
                if by_environment is None:
                    by_environment = self._entries[environment] = {}
                by_environment[prompt.name] = Entry(prompt, expires)
        if prompt.source == "server":
            self._snapshot.put(prompt, pinned=pinned)

    def _cached(self, name: str, environment: str) -> Prompt | None:
        by_environment = self._entries.get(environment)
        entry = by_environment.get(name) if by_environment is not None else None
        return entry.prompt if entry is not None else None

    def _refresh_failed(self, name: str, environment: str) -> None:
        """Keep serving the old entry; try again in a little while rather than on every get."""
        self.stats["refresh_failures"] += 1
        prompt = self._cached(name, environment)
        if prompt is not None:
            self._store(prompt, pinned=False, ttl=min(self.cache_ttl, FAILED_REFRESH_DELAY))

    # -- announced revisions ---------------------------------------------------------------------------

    def _refresh_plan(self, environment: str, name: str) -> tuple[list[str], int]:
        """The server URLs to ask (the announcer of a pending change first) and the revision wanted."""
        floor = self._floors.get((environment, name))
        if floor is None:
            return self.urls, 0
        if floor.source is None or floor.source not in self.urls:
            return self.urls, floor.revision
        return [floor.source, *(u for u in self.urls if u != floor.source)], floor.revision

    def _settle(self, environment: str, name: str, prompt: Prompt) -> None:
        """Store a refresh's answer: for the TTL, unless it is older than the announced revision."""
        key = (environment, name)
        floor = self._floors.get(key)
        revision = prompt.revision or 0
        if floor is not None and revision < floor.revision:
            if time.monotonic() - floor.since <= FLOOR_PATIENCE:
                self.stats["older_than_announced"] += 1
                delay = min(FLOOR_RETRY_MAX, FLOOR_RETRY_FIRST * 2**floor.attempts)
                floor.attempts += 1
                previous = self._cached(name, environment)
                if previous is not None and (previous.revision or 0) >= revision:
                    prompt = previous
                self._store(prompt, pinned=False, ttl=delay)
                self._retry_at[key] = time.monotonic() + delay
                return
            log.warning(
                "'%s' (%s): revision %d was announced but servers answer %d; taking that",
                name,
                environment,
                floor.revision,
                revision,
            )
        self._floors.pop(key, None)
        self._retry_at.pop(key, None)
        self._store(prompt, pinned=False)

    def _due_retries(self) -> list[tuple[str, str]]:
        now = time.monotonic()
        due = [key for key, at in list(self._retry_at.items()) if at <= now]
        for key in due:
            self._retry_at.pop(key, None)
        return due

    def _worker_wait(self) -> float:
        """How long the refresh worker may sleep: until the next retry, and at most 1 s."""
        wait = min(1.0, self.poll_interval)
        if self._retry_at:
            wait = min(wait, max(0.0, min(self._retry_at.values()) - time.monotonic()))
        return wait

    def cached_keys(self) -> list[tuple[str, str]]:
        return [(env, name) for env, by_env in list(self._entries.items()) for name in list(by_env)]

    # -- when the server cannot be reached -----------------------------------------------------------

    def _offline(self, name: str, environment: str | None, version: int | None, exc: BaseException) -> Prompt:
        """Snapshot, then fallback, then `PromptUnavailable`: the order of last resorts."""
        snapshot = self._snapshot.get(name, environment, version)
        if snapshot is not None:
            # served now, refreshed in the background as soon as the server answers again
            self._store(snapshot, pinned=version is not None, ttl=0.0)
            return snapshot
        if name in self._fallbacks:
            fallback = Prompt.from_fallback(name, self._fallbacks[name], environment)
            if version is None:
                self._store(fallback, pinned=False, ttl=0.0)
            return fallback
        where = f"version {version}" if version is not None else f"environment '{environment}'"
        raise PromptUnavailable(
            name,
            f"the server could not be reached for {where} ({describe(exc)}), "
            "and there is no cached copy, snapshot or fallback",
        ) from exc

    # -- stream --------------------------------------------------------------------------------------

    def _on_stream_line(self, line: str, source: str | None = None) -> list[tuple[str, str]]:
        """Feed one SSE line (from server `source`); returns the cached `(environment, name)` pairs
        that need a refresh, after noting the revision announced for each."""
        parsed = self._sse.feed_line(line)
        if parsed is None:
            return []
        event, data, _ = parsed
        if event != "release":
            return []
        self.stats["stream_events"] += 1
        change = parse_change(data)
        if change is None:
            return []
        name, environment, revision = change
        # Composed prompts that include this release: refreshed too, since their own revision
        # does not change when what they include does.
        stale = [key for key in self.cached_keys() if self._includes_older(key, name, environment, revision)]
        current = self._cached(name, environment)
        if current is None or (current.revision or 0) >= revision:
            return stale
        floor = self._floors.get((environment, name))
        if floor is None or floor.revision < revision:
            self._floors[(environment, name)] = Floor(revision, source, time.monotonic())
        return [(environment, name), *stale]

    def _includes_older(self, key: tuple[str, str], name: str, environment: str, revision: int) -> bool:
        prompt = self._cached(key[1], key[0])
        return prompt is not None and any(
            i.get("name") == name and i.get("label") == environment and (i.get("revision") or 0) < revision
            for i in prompt.includes
        )

    def _stream_headers(self) -> dict[str, str]:
        headers = dict(self._headers)
        headers["Accept"] = "text/event-stream"
        if self._sse.last_id is not None:
            headers["Last-Event-ID"] = self._sse.last_id
        return headers

    def _poll_due(self) -> bool:
        """Without a stream, revalidate every cached entry every `poll_interval` seconds."""
        if self.stream_connected or not self._entries:
            return False
        return time.monotonic() - self._last_poll >= self.poll_interval
