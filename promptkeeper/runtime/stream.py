"""Fan-out of release changes to the SSE subscribers of one server instance.

Changes reach an instance twice in the common case (its own post-commit hook or pub/sub, and the
periodic check); the broadcaster forwards each `(project, prompt, environment, revision)` once.
A subscriber that cannot keep up is disconnected rather than allowed to grow memory; it reconnects
with `Last-Event-ID` and catches up from the deployment history.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field

from promptkeeper.runtime.release_changes import ReleaseChanged

QUEUE_SIZE = 1000


@dataclass(eq=False)
class Subscription:
    project_id: int
    environment: str | None
    queue: asyncio.Queue[ReleaseChanged | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False

    def wants(self, event: ReleaseChanged) -> bool:
        return event.project_id == self.project_id and self.environment in (None, event.environment)


class Broadcaster:
    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self._sent: dict[tuple[int, str, str], int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self, project_id: int, environment: str | None) -> Subscription:
        subscription = Subscription(project_id, environment)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    def publish(self, event: ReleaseChanged) -> None:
        """Forward an event to matching subscribers; callable from any thread."""
        key = (event.project_id, event.prompt, event.environment)
        with self._lock:
            if self._sent.get(key, 0) >= event.revision:
                return
            self._sent[key] = event.revision
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._deliver(event)
        else:
            loop.call_soon_threadsafe(self._deliver, event)

    def _deliver(self, event: ReleaseChanged) -> None:
        for subscription in list(self._subscriptions):
            if not subscription.wants(event):
                continue
            try:
                subscription.queue.put_nowait(event)
            except asyncio.QueueFull:
                subscription.overflowed = True
                self._subscriptions.discard(subscription)

    def close_all(self) -> None:
        for subscription in list(self._subscriptions):
            try:
                subscription.queue.put_nowait(None)
            except asyncio.QueueFull:
                subscription.overflowed = True
        self._subscriptions.clear()


def format_event(event: ReleaseChanged) -> str:
    data = {
        "prompt": event.prompt,
        "environment": event.environment,
        "version": event.version,
        "revision": event.revision,
    }
    return f"id: {event.seq}\nevent: release\ndata: {json.dumps(data)}\n\n"
