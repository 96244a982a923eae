"""API-key authentication with a short in-process memory, so the hot path does no database work.

A key seen within `auth_cache_ttl` seconds is trusted without a query; revoking a key therefore
takes effect within that many seconds on every instance (documented in docs/security.md). The
memory carries the key's `expires_at`, so an expired key is refused from that instant whatever
the memory holds. `last_used_at` is written at most once per minute per key, not per request.
A wrong key is counted by the throttle (access/throttle.py); a correct one is never refused by it.

When the database cannot be reached, a key this instance verified within the last
`auth_stale_ttl` seconds is still accepted (stale-if-error, as the resolution cache serves its
entries): an outage of the database must not turn every cached resolve into a 503. The database is
asked again at most once a second per key while it is down, and as soon as it answers, its word
wins: a key revoked or expired meanwhile is refused. A key verified on no instance before the
outage, or longer ago than `auth_stale_ttl`, gets the database's 503.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC

import anyio.to_thread
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from promptkeeper.access.service import Principal, authenticate, key_prefix, touch_key
from promptkeeper.access.throttle import AuthThrottle
from promptkeeper.db.engine import Database
from promptkeeper.errors import Unauthorized

log = logging.getLogger(__name__)

_TOUCH_EVERY = 60.0
#: while the database is down, how often one remembered key is checked against it again
_RETRY_DOWN = 1.0
DATABASE_ERRORS = (OperationalError, InterfaceError, PoolTimeout)


@dataclass(slots=True)
class _Remembered:
    principal: Principal
    fresh_until: float  # monotonic: trusted without a query until then
    usable_until: float  # monotonic: accepted while the database is unavailable until then
    key_expires: float | None  # wall clock (epoch seconds): the key's own `expires_at`
    retry_at: float = 0.0  # monotonic: the database failed; ask again from then on


class Authenticator:
    def __init__(
        self,
        db: Database,
        ttl: float,
        throttle: AuthThrottle | None = None,
        stale_ttl: float = 0.0,
    ) -> None:
        self._db = db
        self._ttl = ttl
        self._stale_ttl = stale_ttl
        self._known: dict[str, _Remembered] = {}
        self._touched: dict[int, float] = {}
        self._inflight: dict[str, asyncio.Task[_Remembered]] = {}
        self._outage_logged = False
        self.throttle = throttle if throttle is not None else AuthThrottle(0, 0.0)
        self.stale_accepted = 0

    async def __call__(self, secret: str, address: str | None = None) -> Principal:
        """The key's principal; `address` (the client's) counts failures for the throttle."""
        digest = hashlib.sha256(secret.encode()).digest().hex()
        remembered = self._known.get(digest)
        now = time.monotonic()
        if remembered is not None:
            if remembered.key_expires is not None and time.time() >= remembered.key_expires:
                self._known.pop(digest, None)
                what = "session" if remembered.principal.kind == "session" else "API key"
                raise Unauthorized(f"{what} has expired")
            if remembered.fresh_until > now:
                return remembered.principal
            if remembered.retry_at > now and remembered.usable_until > now:
                return self._stale(remembered)
        try:
            fresh = await asyncio.shield(self._loading(digest, secret))
        except Unauthorized:
            self._known.pop(digest, None)
            self.throttle.key_failed(address, key_prefix(secret))
            raise
        except DATABASE_ERRORS:
            now = time.monotonic()
            if remembered is None or remembered.usable_until <= now:
                raise
            remembered.retry_at = now + _RETRY_DOWN
            if not self._outage_logged:
                self._outage_logged = True
                log.warning(
                    "database unavailable: accepting keys verified in the last %.0f s", self._stale_ttl
                )
            return self._stale(remembered)
        self._known[digest] = fresh
        return fresh.principal

    def _loading(self, digest: str, secret: str) -> asyncio.Task[_Remembered]:
        """The one database check of `secret` in flight (single-flight: a burst of requests with an
        expired memory, or an unreachable database, costs one query and one thread, not one each).
        A task, so a caller that goes away does not cancel the check for the others."""
        task = self._inflight.get(digest)
        if task is None:
            task = asyncio.ensure_future(anyio.to_thread.run_sync(self._load, secret))
            self._inflight[digest] = task
            task.add_done_callback(lambda done: self._landed(digest, done))
        return task

    def _landed(self, digest: str, task: asyncio.Task[_Remembered]) -> None:
        if self._inflight.get(digest) is task:
            del self._inflight[digest]
        if not task.cancelled() and task.exception() is None:  # exception(): marks it retrieved
            self._outage_logged = False

    def _stale(self, remembered: _Remembered) -> Principal:
        self.stale_accepted += 1
        return remembered.principal

    def _load(self, secret: str) -> _Remembered:
        with self._db.session() as session:
            principal = authenticate(session=session, secret=secret)
        now = time.monotonic()
        if now - self._touched.get(principal.key_id, -_TOUCH_EVERY) >= _TOUCH_EVERY:
            self._touched[principal.key_id] = now
            with self._db.write_session() as session:
                touch_key(session=session, key_id=principal.key_id)
                session.commit()
        key_expires = None
        expires_at = principal.expires_at
        if expires_at is not None:
            aware = expires_at if expires_at.tzinfo is not None else expires_at.replace(tzinfo=UTC)
            key_expires = aware.timestamp()
        return _Remembered(principal, now + self._ttl, now + self._ttl + self._stale_ttl, key_expires)

    def forget(self) -> None:
        """Drop every remembered key (after a key was revoked on this instance)."""
        self._known.clear()


def bearer_secret(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("malformed Authorization header: expected 'Bearer <key>'")
    return secret.strip()
