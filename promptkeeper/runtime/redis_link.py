"""The server's Redis link: L2 cache, invalidation pub/sub, and how it behaves when Redis is down.

Redis is optional and never authoritative: every operation fails fast (short timeouts, no
retries), a failure marks Redis as down for a short back-off so that requests stop trying, and
exactly one warning is logged per outage. The pub/sub listener reconnects in the background and,
because messages sent while it was away are lost, tells the runtime to drop its L1 once it is back.

L2 values carry the release revision: `b"<revision>|<the whole payload>"` (`runtime.codec`: every
field, the experiment split included), or a tombstone `b"<revision>|"` written after a change.
Writes go through a Lua script that refuses to replace a value with one of a lower revision, so a
reader that loaded an old row just before a deploy cannot put it back into Redis after the
deploy's tombstone. The key's `r2` marks the encoding: an instance of an older release, which
wrote payloads without their split, neither reads nor writes these keys.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry as SyncRetry

from promptkeeper.runtime import codec
from promptkeeper.runtime.release_changes import ReleaseChanged
from promptkeeper.runtime.resolver import Key, Payload

log = logging.getLogger(__name__)

_SET_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  local revision = tonumber(string.match(current, '^(%d+)|'))
  if revision and revision > tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
_DOWN_BACKOFF = 1.0


def l2_key(prefix: str, key: Key) -> str:
    project_id, name, environment = key
    return f"{prefix}:r2:{project_id}:{environment}:{name}"


_OPTIONS: dict[str, Any] = {"socket_connect_timeout": 0.25, "socket_timeout": 0.5, "health_check_interval": 0}


class RedisLink:
    """One server process's connection to Redis (async for requests, sync for post-commit hooks)."""

    def __init__(self, url: str, *, l2_ttl: float, prefix: str = "promptkeeper") -> None:
        self.url = url
        self.prefix = prefix
        self.channel = f"{prefix}:invalidate"
        self._ttl_ms = max(1, int(l2_ttl * 1000))
        # No retries: a request must not wait for Redis; the next one tries again after the back-off.
        self._async = aioredis.Redis.from_url(url, retry=AsyncRetry(NoBackoff(), 0), **_OPTIONS)
        self._sync = redis.Redis.from_url(url, retry=SyncRetry(NoBackoff(), 0), **_OPTIONS)
        self._async_set = self._async.register_script(_SET_IF_NEWER)
        self._sync_set = self._sync.register_script(_SET_IF_NEWER)
        self._down_until = 0.0
        self._outage_logged = False
        self.up = True
        self.errors = 0

    # -- health --------------------------------------------------------------------------------------

    def _usable(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, what: str, exc: Exception) -> None:
        self.errors += 1
        self.up = False
        self._down_until = time.monotonic() + _DOWN_BACKOFF
        if not self._outage_logged:
            self._outage_logged = True
            log.warning("Redis unavailable (%s: %s); serving from L1 and the database", what, exc)

    def _recovered(self) -> None:
        if not self.up:
            self.up = True
            if self._outage_logged:
                log.warning("Redis is reachable again")
            self._outage_logged = False

    # -- L2 ------------------------------------------------------------------------------------------

    async def get(self, key: Key) -> Payload | None:
        if not self._usable():
            return None
        try:
            raw = await self._async.get(l2_key(self.prefix, key))
        except (RedisError, OSError) as exc:
            self._failed("get", exc)
            return None
        self._recovered()
        return codec.decode(raw) if isinstance(raw, bytes) and raw else None

    async def put(self, key: Key, payload: Payload) -> None:
        if not self._usable():
            return
        try:
            await self._async_set(
                keys=[l2_key(self.prefix, key)], args=[payload.revision, codec.encode(payload), self._ttl_ms]
            )
        except (RedisError, OSError) as exc:
            self._failed("set", exc)

    # -- after a commit (called from a worker thread) -----------------------------------------------

    def announce(self, event: ReleaseChanged) -> None:
        """Tombstone the L2 entry and publish the invalidation; failures only mark Redis down."""
        if not self._usable():
            return
        key = (event.project_id, event.prompt, event.environment)
        try:
            self._sync_set(
                keys=[l2_key(self.prefix, key)],
                args=[event.revision, codec.tombstone(event.revision), self._ttl_ms],
            )
            self._sync.publish(self.channel, json.dumps(_event_dict(event)))
        except (RedisError, OSError) as exc:
            self._failed("publish", exc)

    # -- pub/sub listener ----------------------------------------------------------------------------

    async def listen(
        self,
        on_event: Callable[[ReleaseChanged], object],
        on_reconnect: Callable[[], Awaitable[None] | None],
        *,
        stop: asyncio.Event,
    ) -> None:
        """Deliver invalidations until `stop` is set; reconnect with back-off after any failure."""
        backoff = 0.1
        first = True
        while not stop.is_set():
            pubsub = self._async.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if not first:
                    # Pooled connections from before the outage are dead: drop them before use.
                    await self._async.connection_pool.disconnect()
                    self._sync.connection_pool.disconnect()
                    result = on_reconnect()  # messages sent while we were away are lost
                    if result is not None:
                        await result
                first = False
                self._down_until = 0.0
                self._recovered()
                backoff = 0.1
                while not stop.is_set():
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        event = _parse_event(message.get("data"))
                        if event is not None:
                            on_event(event)
            except (RedisError, OSError) as exc:
                first = False
                self._failed("subscribe", exc)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, 2.0)
            finally:
                try:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                except (RedisError, OSError):
                    pass

    async def ping(self) -> bool:
        try:
            await self._async.ping()
        except (RedisError, OSError):
            return False
        return True

    async def close(self) -> None:
        await self._async.aclose()
        self._sync.close()


def _event_dict(event: ReleaseChanged) -> dict[str, Any]:
    return {
        "project_id": event.project_id,
        "prompt": event.prompt,
        "environment": event.environment,
        "revision": event.revision,
        "version": event.version,
        "seq": event.seq,
        "at": event.at,
    }


def _parse_event(data: Any) -> ReleaseChanged | None:
    try:
        raw = json.loads(data)
        return ReleaseChanged(
            project_id=int(raw["project_id"]),
            prompt=str(raw["prompt"]),
            environment=str(raw["environment"]),
            revision=int(raw["revision"]),
            version=int(raw["version"]),
            seq=int(raw["seq"]),
            at=float(raw.get("at", 0.0)),
        )
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring a malformed invalidation message")
        return None
