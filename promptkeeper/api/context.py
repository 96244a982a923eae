"""Everything one running server process holds, built in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from promptkeeper.access.authenticator import Authenticator
from promptkeeper.audit.delivery import Dispatcher
from promptkeeper.config import Settings
from promptkeeper.db.engine import Database
from promptkeeper.evaluations.worker import Worker
from promptkeeper.experiments.jobs import Scheduler
from promptkeeper.experiments.serving import StickyAssignments
from promptkeeper.runtime.resolver import Resolver
from promptkeeper.runtime.runtime import Runtime


@dataclass
class AppContext:
    settings: Settings
    db: Database
    auth: Authenticator
    runtime: Runtime
    dispatcher: Dispatcher
    sticky: StickyAssignments
    worker: Worker | None = None
    scheduler: Scheduler | None = None

    @property
    def resolver(self) -> Resolver:
        return self.runtime.resolver
