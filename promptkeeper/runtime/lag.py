"""How late an instance learns of a release change: the propagation lag operators alert on.

Measured on the receiving instance as "now minus the change's recorded time", split by the path
that delivered it (Redis pub/sub, or the periodic check that catches what pub/sub missed). Clocks
of different hosts enter the figure, so skew shows up as lag; that is the honest reading for an
operator, and NTP keeps it to milliseconds.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
PATHS = ("pubsub", "check")


class PropagationLag:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.buckets = {path: [0] * (len(BUCKETS) + 1) for path in PATHS}
        self.sums = dict.fromkeys(PATHS, 0.0)
        self.last = dict.fromkeys(PATHS, 0.0)

    def observe(self, path: str, recorded_at: float, now: float | None = None) -> None:
        """Count one change; events from an older sender carry no time (0) and are skipped."""
        if recorded_at <= 0:
            return
        seconds = max(0.0, (time.time() if now is None else now) - recorded_at)
        with self._lock:
            self.buckets[path][bisect_left(BUCKETS, seconds)] += 1
            self.sums[path] += seconds
            self.last[path] = seconds

    def snapshot(self) -> dict[str, tuple[list[int], float]]:
        with self._lock:
            return {path: (list(self.buckets[path]), self.sums[path]) for path in PATHS}
