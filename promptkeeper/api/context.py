"""Everything one running server process holds, built in the app's lifespan.

The HTTP plumbing reads the job loop and the sticky bandit assignments through protocols: they
are built by the app, and importing them here would load the job loop and every domain it runs
into each route module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from promptkeeper.access.authenticator import Authenticator
from promptkeeper.config import Settings
from promptkeeper.db.engine import Database
from promptkeeper.runtime.resolver import Resolver, Split
from promptkeeper.runtime.runtime import Runtime


class JobCounters(Protocol):
    """What /metrics shows of the in-process job loop (`promptkeeper.worker.Worker`)."""

    @property
    def completed(self) -> int: ...

    @property
    def scored(self) -> int: ...

    @property
    def judge_calls(self) -> int: ...


class Sticky(Protocol):
    """Bandit units' stored variants (`experiments.serving.StickyAssignments`)."""

    def cached(self, experiment_id: int, unit: str) -> int | None: ...

    def variant(self, split: Split, unit: str) -> int: ...


@dataclass
class AppContext:
    settings: Settings
    db: Database
    auth: Authenticator
    runtime: Runtime
    sticky: Sticky
    worker: JobCounters | None = None

    @property
    def resolver(self) -> Resolver:
        return self.runtime.resolver
