"""Events that services emit and the runtime reacts to after the commit."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReleaseChanged:
    """What `(prompt, environment)` serves changed; `revision` is the release's new revision.

    `seq` is the id of the deployment row that recorded the change: a global, increasing
    position used by SSE clients to resume (`Last-Event-ID`). `at` is when the change was
    recorded (Unix seconds), so a receiving instance can tell how late it learnt of it.
    """

    project_id: int
    prompt: str
    environment: str
    revision: int
    version: int
    seq: int
    at: float = 0.0
