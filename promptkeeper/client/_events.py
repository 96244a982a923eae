"""Events waiting to be sent (exposures, outcomes, generations), and what the SDK remembers of
recent requests.

`get(name, unit=...)`, `log_outcome(...)` and `log_generation(...)` only append here (no I/O); a
background sender posts batches to `/v1/events`. The queue is bounded: when the server is
unreachable for long, the oldest events are dropped and counted (`dropped`), so a logging outage
never grows memory without bound or slows the application.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from datetime import UTC, datetime
from typing import Any

from promptkeeper.client._prompt import Prompt
from promptkeeper.core import outcomes

BATCH_SIZE = 1_000  # the server takes up to 10,000 per request; smaller batches keep latency low
MAX_PENDING = 100_000
MAX_REMEMBERED = 100_000
_OUTCOME_FIELDS = outcomes.FIELDS


def _now() -> str:
    return datetime.now(UTC).isoformat()


def outcome_fields(values: dict[str, Any]) -> dict[str, Any]:
    """Check an outcome's fields where the caller can still see the mistake (ValueError)."""
    unknown = sorted(set(values) - set(_OUTCOME_FIELDS) - {"metrics"})
    if unknown:
        raise ValueError(f"unknown outcome field(s): {', '.join(unknown)}")
    thumbs = values.get("thumbs")
    if thumbs is not None and thumbs not in ("up", "down"):
        raise ValueError(f"thumbs must be 'up' or 'down', not {thumbs!r}")
    rating = values.get("rating")
    if rating is not None and not 1 <= rating <= 5:
        raise ValueError(f"rating must lie in [1, 5], not {rating!r}")
    fields = {name: value for name, value in values.items() if value is not None}
    if not fields:
        raise ValueError("an outcome needs at least one field (completed, thumbs, rating, ...)")
    return fields


class EventQueue:
    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self._items: deque[dict[str, Any]] = deque()
        self._max = max_pending
        self._lock = threading.Lock()
        self._recent: OrderedDict[str, tuple[int, str, str]] = OrderedDict()
        self.dropped = 0
        self.sent = 0

    def __len__(self) -> int:
        return len(self._items)

    def _append(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._items.append(event)
            while len(self._items) > self._max:
                self._items.popleft()
                self.dropped += 1

    def exposure(self, prompt: Prompt) -> None:
        assert prompt.request_id is not None and prompt.unit is not None
        assert prompt.experiment_id is not None and prompt.variant is not None
        with self._lock:
            self._recent[prompt.request_id] = (prompt.experiment_id, prompt.variant, prompt.unit)
            while len(self._recent) > MAX_REMEMBERED:
                self._recent.popitem(last=False)
        self._append(
            {
                "type": "exposure",
                "request_id": prompt.request_id,
                "experiment_id": prompt.experiment_id,
                "variant": prompt.variant,
                "unit": prompt.unit,
                "prompt": prompt.name,
                "version": prompt.version,
                "at": _now(),
            }
        )

    def outcome(self, request_id: str, fields: dict[str, Any]) -> None:
        event: dict[str, Any] = {"type": "outcome", "request_id": request_id, "at": _now(), **fields}
        known = self._recent.get(request_id)
        if known is not None:  # saves the server a lookup; it would tag the outcome all the same
            event["experiment_id"], event["variant"], event["unit"] = known
        self._append(event)

    def generation(self, event: dict[str, Any]) -> None:
        self._append({**event, "at": _now()})

    def take(self, limit: int = BATCH_SIZE) -> list[dict[str, Any]]:
        with self._lock:
            count = min(limit, len(self._items))
            return [self._items.popleft() for _ in range(count)]

    def put_back(self, batch: list[dict[str, Any]]) -> None:
        """A batch that could not be sent goes back to the front, to be tried again."""
        with self._lock:
            self._items.extendleft(reversed(batch))
            while len(self._items) > self._max:
                self._items.popleft()
                self.dropped += 1
