"""API-key authentication with a short in-process memory, so the hot path does no database work.

A key seen within `auth_cache_ttl` seconds is trusted without a query; revoking a key therefore
takes effect within that many seconds on every instance (documented in docs/security.md).
`last_used_at` is written at most once per minute per key, not per request.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import anyio.to_thread

from promptkeeper.access.service import Principal, authenticate, touch_key
from promptkeeper.access.throttle import FailureThrottle
from promptkeeper.db.engine import Database
from promptkeeper.errors import Unauthorized

_TOUCH_EVERY = 60.0


@dataclass(slots=True)
class _Remembered:
    principal: Principal
    expires: float


class Authenticator:
    def __init__(self, db: Database, ttl: float, throttle: FailureThrottle | None = None) -> None:
        self._db = db
        self._ttl = ttl
        self._known: dict[str, _Remembered] = {}
        self._touched: dict[int, float] = {}
        self.throttle = throttle if throttle is not None else FailureThrottle(0, 0.0)

    async def __call__(self, secret: str, address: str | None = None) -> Principal:
        """The key's principal; `address` (the client's) counts failures for the throttle."""
        digest = hashlib.sha256(secret.encode()).digest().hex()
        remembered = self._known.get(digest)
        if remembered is not None and remembered.expires > time.monotonic():
            return remembered.principal
        self.throttle.check(address)
        try:
            principal = await anyio.to_thread.run_sync(self._load, secret)
        except Unauthorized:
            self.throttle.failed(address)
            raise
        self._known[digest] = _Remembered(principal, time.monotonic() + self._ttl)
        return principal

    def _load(self, secret: str) -> Principal:
        with self._db.session() as session:
            principal = authenticate(session=session, secret=secret)
        now = time.monotonic()
        if now - self._touched.get(principal.key_id, -_TOUCH_EVERY) >= _TOUCH_EVERY:
            self._touched[principal.key_id] = now
            with self._db.write_session() as session:
                touch_key(session=session, key_id=principal.key_id)
                session.commit()
        return principal

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
