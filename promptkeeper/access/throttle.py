"""Failed authentications per client address and per credential: past a limit, guesses must wait.

API keys and session tokens are 256-bit random, so guessing one is hopeless: a correct one always
works, and a wrong one from an address, or for a key prefix, over the limit gets 429 instead of
401. Passwords are not, and each check costs an Argon2 hash, so a password attempt is refused
*before* it is checked when its address has failed too often (spraying one password over many
users) or when its user has (guessing one user's password from many addresses). A user who already
signed in from an address is let through either limit there, as long as that user and address
pair is under the limit itself: the address being busy with someone else's guesses, or the user
being guessed at from elsewhere, does not lock out a sign-in that worked before.

Each instance counts failures per scope (`ip:`, `login-ip:`, `key:`, `user:`, `pair:`) in a sliding
window; a refused attempt waits until the oldest failure of its scope leaves the window. Counts are
per instance: N instances allow N x limit per window. Key and password failures of one address are
counted apart, so a flood of bad keys does not block passwords.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque

from promptkeeper.errors import TooManyRequests

#: scopes tracked at most; beyond, the stalest are forgotten (a flood of spoofed sources cannot
#: grow memory without bound)
MAX_ADDRESSES = 100_000
#: (address, user) pairs remembered as having signed in
MAX_PROVEN = 100_000


class FailureThrottle:
    """A sliding-window failure count per scope string."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self.refused = 0

    def wait(self, scope: str | None, now: float | None = None) -> int:
        """Seconds `scope` must wait (0: it is under the limit)."""
        if not self.limit or scope is None:
            return 0
        now = time.monotonic() if now is None else now
        with self._lock:
            failures = self._failures.get(scope)
            if failures is None:
                return 0
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            if not failures:
                del self._failures[scope]
                return 0
            if len(failures) < self.limit:
                return 0
            return max(1, math.ceil(failures[0] + self.window - now))

    def check(self, scope: str | None, now: float | None = None, what: str | None = None) -> None:
        """Raise `TooManyRequests` while `scope` is over the limit (`what` names it for people)."""
        wait = self.wait(scope, now)
        if not wait:
            return
        self.refused += 1
        what = what or f"from {(scope or '').partition(':')[2]}"
        raise TooManyRequests(
            f"too many failed authentications {what}; retry in {wait} s", details={"retry_after": wait}
        )

    def failed(self, scope: str | None, now: float | None = None) -> None:
        if not self.limit or scope is None:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            failures = self._failures.pop(scope, None) or deque(maxlen=self.limit)
            failures.append(now)
            self._failures[scope] = failures  # re-inserted: dict order is staleness order
            while len(self._failures) > MAX_ADDRESSES:
                del self._failures[next(iter(self._failures))]


class AuthThrottle:
    """The policy over the counts: which scopes a key or a password attempt is charged to."""

    def __init__(self, limit: int, window: float) -> None:
        self.counts = FailureThrottle(limit, window)
        self._proven: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def refused(self) -> int:
        return self.counts.refused

    # -- keys and session tokens ----------------------------------------------------------------------

    def key_failed(self, address: str | None, prefix: str) -> None:
        """A wrong key: 429 when its address or its prefix is already over the limit, else counted."""
        ip, key = _scope("ip", address), f"key:{prefix}"
        self.counts.check(ip)
        self.counts.check(key, what=f"for key prefix {prefix}")
        self.counts.failed(ip)
        self.counts.failed(key)

    # -- passwords -----------------------------------------------------------------------------------

    def check_login(self, address: str | None, email: str) -> None:
        """Before a password is checked: 429 when this attempt must wait."""
        user = _user(email)
        pair = _pair(address, user)
        self.counts.check(pair, what=f"for {user} from {address}")
        if pair is not None and pair in self._proven:
            return
        self.counts.check(_scope("login-ip", address))
        self.counts.check(f"user:{user}", what=f"for {user}")

    def login_failed(self, address: str | None, email: str) -> None:
        user = _user(email)
        for scope in (_scope("login-ip", address), f"user:{user}", _pair(address, user)):
            self.counts.failed(scope)

    def login_succeeded(self, address: str | None, email: str) -> None:
        pair = _pair(address, _user(email))
        if pair is None or not self.counts.limit:
            return
        with self._lock:
            self._proven.pop(pair, None)
            self._proven[pair] = None
            while len(self._proven) > MAX_PROVEN:
                self._proven.popitem(last=False)


def _scope(kind: str, address: str | None) -> str | None:
    return None if address is None else f"{kind}:{address}"


def _user(email: str) -> str:
    return email.strip().lower()[:254]


def _pair(address: str | None, user: str) -> str | None:
    return None if address is None else f"pair:{user} {address}"
