"""Failed authentications per client address: past a limit, the address must wait.

API keys are 256-bit random, so guessing one is hopeless; passwords are not, and a flood of bad
credentials also costs hashing and database work. Each instance counts failures per address in a
sliding window; over `limit`, the address gets 429 with `Retry-After` until its oldest failure
leaves the window. Credentials this instance has already verified (the authenticator's memory) are
let through even then, so one misbehaving client behind a shared NAT address does not lock out
the others that already work. Counts are per instance: N instances allow N × limit per window.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from promptkeeper.errors import TooManyRequests

#: addresses tracked at most; beyond, the stalest are forgotten (a flood of spoofed sources cannot
#: grow memory without bound)
MAX_ADDRESSES = 100_000


class FailureThrottle:
    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self.refused = 0

    def check(self, address: str | None, now: float | None = None) -> None:
        """Raise `TooManyRequests` while `address` is over the limit."""
        if not self.limit or address is None:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            failures = self._failures.get(address)
            if failures is None:
                return
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            if not failures:
                del self._failures[address]
                return
            if len(failures) < self.limit:
                return
            wait = max(1, math.ceil(failures[0] + self.window - now))
            self.refused += 1
        raise TooManyRequests(
            f"too many failed authentications from {address}; retry in {wait} s",
            details={"retry_after": wait},
        )

    def failed(self, address: str | None, now: float | None = None) -> None:
        if not self.limit or address is None:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            failures = self._failures.pop(address, None) or deque(maxlen=self.limit)
            failures.append(now)
            self._failures[address] = failures  # re-inserted: dict order is staleness order
            while len(self._failures) > MAX_ADDRESSES:
                del self._failures[next(iter(self._failures))]
