"""The resolution cache in front of the database: the hot path of every application's LLM call.

A hit is one dictionary lookup and a monotonic-clock comparison; the payload is kept as the
serialized JSON body with its ETag, so serving it costs no serialization either. On a miss, all
concurrent requests for one key wait on one loader (single-flight), which asks L2 (Redis, when
configured) and then the database, in a worker thread.

Freshness rests on revisions: every change of a release carries the release's new revision. An
invalidation raises the key's *floor*; an entry below its floor is never served again, and a load
that raced with the invalidation and read the old row is discarded instead of being stored.

A composed prompt (one that includes others by label) is built from several releases; its payload
names them (`depends`), and the same floors hold for each: an invalidation of `base` drops every
entry built from an older `base` (a reverse index finds them), an L2 entry built from one is a
miss, and a load that raced with it is not stored. So a deploy of `base` reaches its dependants
by the very event, and as fast, as it reaches `base` itself.

When the database fails, an entry past its TTL is still served (stale-if-error) and marked
stale, so the route can say so in a header; without one, an L2 entry of any revision is.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import anyio.to_thread
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger(__name__)

Key = tuple[int, str, str]  # (project id, prompt name, environment)
DATABASE_ERRORS = (OperationalError, PoolTimeout, DBAPIError)


@dataclass(frozen=True, slots=True)
class Split:
    """An experiment running on a release: how to assign a unit, and the body each variant serves.

    `bodies[i]` is variant i's resolve body for a unit assigned to it; `outside` is the control's,
    for a unit the experiment's coverage leaves out. Both are serialized once, at load time.
    """

    experiment_id: int
    mode: str
    seed: str
    hash_version: int
    coverage: float
    weights: tuple[float, ...]
    keys: tuple[str, ...]
    bodies: tuple[Payload, ...]
    outside: Payload


@dataclass(frozen=True, slots=True)
class Dependency:
    """A release a composed payload was built from: `(name, environment)` at `revision`."""

    name: str
    environment: str
    revision: int


@dataclass(frozen=True, slots=True)
class Payload:
    """A resolved prompt as served: the JSON body and its ETag (and a running experiment, if any).

    `depends` lists the releases of the prompts it includes by label (composition): the payload is
    as stale as the oldest of them, so each is held against its own floor like `revision` is.
    """

    body: bytes
    etag: str
    revision: int
    version: int
    content: dict[str, Any]
    split: Split | None = None
    depends: tuple[Dependency, ...] = ()


@dataclass(frozen=True, slots=True)
class Entry:
    payload: Payload
    expires: float
    stale: bool = False


class SharedCache(Protocol):
    """L2: shared by all instances; never raises (an unavailable cache is a miss)."""

    async def get(self, key: Key) -> Payload | None: ...

    async def put(self, key: Key, payload: Payload) -> None: ...


class Resolver:
    """L1 cache + single-flight loader for one server process.

    `load(key)` is the database read (run in a worker thread); it raises the domain's `NotFound`
    when nothing is deployed, which is passed through uncached.
    """

    def __init__(
        self,
        load: Callable[[Key], Payload],
        *,
        ttl: float,
        shared: SharedCache | None = None,
        max_loads: int = 4,
    ) -> None:
        self._load_payload = load
        self._shared = shared
        self._ttl = ttl
        # A few loader threads keep the database busy; more only contend for the GIL and the pool.
        self._max_loads = max_loads
        self._limiter: anyio.CapacityLimiter | None = None
        self._entries: dict[Key, Entry] = {}
        self._floors: dict[Key, int] = {}
        self._inflight: dict[Key, asyncio.Future[Entry]] = {}
        self._dependants: dict[Key, set[Key]] = {}  # an included release -> entries built from it
        self._lock = threading.Lock()  # guards floors vs. stores; hits never take it
        self.hits = 0
        self.misses = 0
        self.shared_hits = 0
        self.stale_served = 0

    # -- reads -------------------------------------------------------------------------------------

    async def get(self, project_id: int, name: str, environment: str) -> Entry:
        key = (project_id, name, environment)
        entry = self._entries.get(key)
        if entry is not None and entry.expires > time.monotonic():
            self.hits += 1
            return entry
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        return await self._load(key, entry)

    async def _load(self, key: Key, previous: Entry | None) -> Entry:
        self.misses += 1
        future: asyncio.Future[Entry] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            payload = None
            if self._shared is not None:
                shared = await self._shared.get(key)
                if shared is not None and self._fresh(key, shared):
                    payload = shared
                    self.shared_hits += 1
            if payload is None:
                payload = await self._fetch(key)
                if self._shared is not None:
                    await self._shared.put(key, payload)
            entry = Entry(payload, time.monotonic() + self._ttl)
            self._store(key, entry)
            future.set_result(entry)
        except DATABASE_ERRORS as exc:
            stale = previous.payload if previous is not None else None
            if stale is None and self._shared is not None:
                stale = await self._shared.get(key)
            if stale is None:
                future.set_exception(exc)
            else:
                self.stale_served += 1
                log.warning("database unavailable, serving %s/%s from stale cache", key[1], key[2])
                future.set_result(Entry(stale, 0.0, stale=True))
        except BaseException as exc:
            future.set_exception(exc)
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]
        return await future

    async def _fetch(self, key: Key) -> Payload:
        if self._limiter is None:  # created lazily: it belongs to the running event loop
            self._limiter = anyio.CapacityLimiter(self._max_loads)
        return await anyio.to_thread.run_sync(self._load_payload, key, limiter=self._limiter)

    def _fresh(self, key: Key, payload: Payload) -> bool:
        if payload.revision < self._floors.get(key, 0):
            return False
        return all(
            d.revision >= self._floors.get((key[0], d.name, d.environment), 0) for d in payload.depends
        )

    def _store(self, key: Key, entry: Entry) -> None:
        with self._lock:
            if self._fresh(key, entry.payload):
                self._entries[key] = entry
                for dependency in entry.payload.depends:
                    self._dependants.setdefault((key[0], dependency.name, dependency.environment), set()).add(
                        key
                    )

    # -- invalidation ------------------------------------------------------------------------------

    def invalidate(self, project_id: int, name: str, environment: str, revision: int) -> bool:
        """Forget what is older than `revision`; returns whether an entry was dropped."""
        key = (project_id, name, environment)
        # A load already in flight may have read the old row: requests from now on must not join it
        # (read-your-writes for the client that made the change); its current waiters still get it.
        self._inflight.pop(key, None)
        dropped = False
        with self._lock:
            if revision > self._floors.get(key, 0):
                self._floors[key] = revision
            entry = self._entries.get(key)
            if entry is not None and entry.payload.revision < revision:
                del self._entries[key]
                dropped = True
            for dependant in list(self._dependants.get(key, ())):
                self._inflight.pop(dependant, None)
                built = self._entries.get(dependant)
                if built is None or not self._fresh(dependant, built.payload):
                    self._entries.pop(dependant, None)
                    self._dependants[key].discard(dependant)
                    dropped = True
        return dropped

    def expire_all(self) -> None:
        """Make every entry revalidate on its next use (invalidations may have been lost).

        The entries stay available for stale-if-error: expiring is not the same as knowing that a
        newer revision exists, which is what `invalidate` is for.
        """
        with self._lock:
            for key, entry in list(self._entries.items()):
                self._entries[key] = Entry(entry.payload, 0.0)

    def raise_floor(self, key: Key, revision: int) -> None:
        with self._lock:
            if revision > self._floors.get(key, 0):
                self._floors[key] = revision

    @property
    def size(self) -> int:
        return len(self._entries)

    def floor(self, key: Key) -> int:
        return self._floors.get(key, 0)
