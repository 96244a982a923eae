"""One server instance's runtime: resolver, Redis link, SSE fan-out, and the periodic check.

How a release change reaches every instance, fastest path first:

1. the instance that committed it invalidates its own L1 in the post-commit hook, tombstones the
   L2 entry and publishes on Redis pub/sub (or, without Redis, only the first step);
2. every other instance receives the pub/sub message, invalidates, and forwards it to its SSE
   subscribers;
3. every `cache_epoch_interval` seconds each instance reads the deployment rows of the last
   `LOOKBACK` seconds (one indexed range query) and applies them. This catches messages lost by
   pub/sub (at-most-once), instances without Redis, and Redis outages, so no instance serves a
   replaced version for longer than that interval even in the worst case.

After a pub/sub reconnect, or when the periodic check could not run for most of its look-back
window, the instance expires its whole L1 (entries are revalidated, but still usable if the
database is down).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio.to_thread

from promptkeeper.config import Settings
from promptkeeper.db.base import utcnow
from promptkeeper.runtime.lag import PropagationLag
from promptkeeper.runtime.redis_link import RedisLink
from promptkeeper.runtime.release_changes import ReleaseChanged
from promptkeeper.runtime.resolver import DATABASE_ERRORS, Key, Payload, Resolver
from promptkeeper.runtime.stream import Broadcaster

log = logging.getLogger(__name__)

LOOKBACK = timedelta(seconds=30)


@dataclass(frozen=True)
class Feeds:
    """The database reads the runtime needs, provided by the registry (runtime does not import it)."""

    load: Callable[[Key], Payload]
    changes_since: Callable[[datetime], list[ReleaseChanged]]
    current_revisions: Callable[[], list[tuple[int, str, str, int]]]


class Runtime:
    def __init__(self, settings: Settings, feeds: Feeds) -> None:
        self.settings = settings
        self._feeds = feeds
        self.redis = (
            RedisLink(settings.redis_url, l2_ttl=settings.cache_l2_ttl, prefix=settings.redis_prefix)
            if settings.redis_url
            else None
        )
        self.resolver = Resolver(feeds.load, ttl=settings.cache_l1_ttl, shared=self.redis)
        self.broadcaster = Broadcaster()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_check: datetime | None = None
        self._last_success = time.monotonic()
        self.checks = 0
        self.check_invalidations = 0
        self.remote_events = 0
        self.reconnects = 0
        self.lag = PropagationLag()

    # -- events --------------------------------------------------------------------------------------

    def on_commit(self, event: object) -> None:
        """Post-commit listener (runs in the thread that committed)."""
        if not isinstance(event, ReleaseChanged):
            return
        self.apply(event)
        if self.redis is not None:
            self.redis.announce(event)

    def apply(self, event: ReleaseChanged) -> bool:
        """Invalidate and forward one change; returns whether a cached entry was dropped."""
        dropped = self.resolver.invalidate(event.project_id, event.prompt, event.environment, event.revision)
        self.broadcaster.publish(event)
        return dropped

    def _on_remote(self, event: ReleaseChanged) -> None:
        self.remote_events += 1
        self.lag.observe("pubsub", event.at)
        self.apply(event)

    async def _after_reconnect(self) -> None:
        log.info("invalidation channel reconnected: revalidating the in-process cache")
        self.reconnects += 1
        self.resolver.expire_all()

    def status(self) -> dict[str, object]:
        """Counters for operators (and for tests that must tell which path delivered a change)."""
        resolver = self.resolver
        return {
            "cache": {
                "entries": resolver.size,
                "hits": resolver.hits,
                "misses": resolver.misses,
                "shared_hits": resolver.shared_hits,
                "stale_served": resolver.stale_served,
            },
            "invalidation": {
                "pubsub_messages": self.remote_events,
                "pubsub_reconnects": self.reconnects,
                "checks": self.checks,
                "check_invalidations": self.check_invalidations,
            },
            "redis": None if self.redis is None else {"up": self.redis.up, "errors": self.redis.errors},
            "stream_subscribers": self.broadcaster.subscribers,
        }

    # -- periodic check ------------------------------------------------------------------------------

    def _load_floors(self) -> None:
        for project_id, name, environment, revision in self._feeds.current_revisions():
            self.resolver.raise_floor((project_id, name, environment), revision)

    def check_now(self) -> int:
        """Apply every change of the look-back window (blocking; run in a thread)."""
        started = utcnow()
        since = (self._last_check or started) - LOOKBACK
        changes = self._feeds.changes_since(since)
        blind_for = time.monotonic() - self._last_success
        if blind_for > LOOKBACK.total_seconds() - 2 * self.settings.cache_epoch_interval:
            # We could not look for too long: changes may have left the window unseen.
            self.resolver.expire_all()
            self._load_floors()
        applied = 0
        for event in changes:
            if self.apply(event):  # a change this instance had not heard of yet
                applied += 1
                self.lag.observe("check", event.at)
        self._last_check = started
        self._last_success = time.monotonic()
        self.checks += 1
        self.check_invalidations += applied
        return applied

    async def _check_loop(self) -> None:
        interval = self.settings.cache_epoch_interval
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=interval)
                return
            except TimeoutError:
                pass
            try:
                await anyio.to_thread.run_sync(self.check_now)
            except DATABASE_ERRORS as exc:
                log.debug("periodic invalidation check failed: %s", exc)
            except Exception:  # the loop must survive anything
                log.exception("periodic invalidation check failed")

    # -- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        self.broadcaster.bind(asyncio.get_running_loop())
        self._stop = asyncio.Event()
        try:
            await anyio.to_thread.run_sync(self._load_floors)
        except DATABASE_ERRORS as exc:
            log.warning("could not read release revisions at start-up: %s", exc)
        self._last_check = utcnow()
        self._last_success = time.monotonic()
        self._tasks.append(asyncio.create_task(self._check_loop(), name="promptkeeper-check"))
        if self.redis is not None:
            listener = self.redis.listen(self._on_remote, self._after_reconnect, stop=self._stop)
            self._tasks.append(asyncio.create_task(listener, name="promptkeeper-pubsub"))

    async def stop(self) -> None:
        self._stop.set()
        self.broadcaster.close_all()
        # The pub/sub listener holds no thread: cancel it. The periodic check may be awaiting a
        # database read in a thread; cancelling it then would leave that thread running with a
        # connection after the engine is disposed, so it is given the time to see the stop event.
        checks = [t for t in self._tasks if t.get_name() == "promptkeeper-check"]
        for task in self._tasks:
            if task not in checks:
                task.cancel()
        if checks:
            _, pending = await asyncio.wait(checks, timeout=5.0)
            for task in pending:
                task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("runtime task failed while stopping")
        self._tasks.clear()
        if self.redis is not None:
            await self.redis.close()
