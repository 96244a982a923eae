"""The job loop's room: claiming, leases, pacing and schedules for every background job.

`Jobs` is what one process runs: the loop (`loop.Worker`: evaluation runs, monitor scoring and
looks) and the clock (`schedule.Scheduler`: experiment rounds, housekeeping). `serve` runs them
in-process in embedded mode; `promptkeeper worker` runs them with `run_worker`. What each job does
stays in its domain.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from promptkeeper.config import Settings
from promptkeeper.db.engine import Database
from promptkeeper.db.migrate import ensure_schema
from promptkeeper.worker.announce import Announcer
from promptkeeper.worker.loop import Worker
from promptkeeper.worker.schedule import Scheduler, tick

__all__ = ["Announcer", "Jobs", "Scheduler", "Worker", "run_worker", "tick"]


class Jobs:
    """The job loop and the scheduler of one process, started and stopped together."""

    def __init__(self, database: Database, settings: Settings, name: str | None = None) -> None:
        self.loop = Worker(database, settings, name)
        self.scheduler = Scheduler(database, settings)
        database.listeners.append(self.loop.on_commit)

    def start(self) -> None:
        self.loop.start()
        self.scheduler.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        await self.loop.stop()


def run_worker(database: Database, settings: Settings, *, once: bool, say: Callable[[str], None]) -> None:
    """`promptkeeper worker`: migrate if allowed, then run the jobs until stopped (or, with `once`,
    until none is waiting, and one scheduled round)."""
    ensure_schema(database.engine, auto_migrate=settings.auto_migrate)
    job_loop = Worker(database, settings)
    say(f"worker {job_loop.name} started")
    scheduler = Scheduler(database, settings)
    announcer = None
    if settings.redis_url:
        announcer = Announcer(settings.redis_url, l2_ttl=settings.cache_l2_ttl, prefix=settings.redis_prefix)
        database.listeners.append(announcer.on_commit)

    async def work() -> None:
        try:
            if once:
                await job_loop.run(until_idle=True)
                tick(database, settings.experiment_update_interval)
                return
            scheduler.start()
            try:
                await job_loop.run()
            finally:
                await scheduler.stop()
        finally:
            if announcer is not None:
                await announcer.close()

    try:
        asyncio.run(work())
    except KeyboardInterrupt:  # pragma: no cover - interactive stop
        pass
    say(f"worker {job_loop.name} stopped after {job_loop.completed} job(s)")
