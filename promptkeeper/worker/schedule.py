"""Clock-driven rounds: experiment rounds (bandit weights, guardrail stops) and housekeeping.

Every `experiment_update_interval` seconds: expired idempotency keys are forgotten, then every
running experiment with scheduled work gets its round (`experiments.jobs`, which holds what a
round does and why it is applied once when several processes run this scheduler).
"""

from __future__ import annotations

import asyncio
import logging

import anyio.to_thread

from promptkeeper.config import Settings
from promptkeeper.db.engine import Database
from promptkeeper.experiments.jobs import check_guardrails, due, update_bandit
from promptkeeper.idempotency import service as idempotency
from promptkeeper.runtime.resolver import DATABASE_ERRORS

log = logging.getLogger(__name__)


def tick(database: Database, interval: float) -> None:
    with database.write_session() as session:  # housekeeping that needs a clock, not a queue
        idempotency.purge(session=session)
        session.commit()
    for experiment_id in due(database):
        try:
            update_bandit(database, experiment_id, interval)
            check_guardrails(database, experiment_id)
        except DATABASE_ERRORS:
            raise
        except Exception:  # one broken experiment must not stop the others' rounds
            log.exception("scheduled work on experiment %s failed", experiment_id)


class Scheduler:
    """Runs `tick` every `experiment_update_interval` seconds in a worker thread.

    Stopping waits for a round in progress instead of cancelling it: its database work finishes
    before the engine is disposed.
    """

    def __init__(self, database: Database, settings: Settings) -> None:
        self._database = database
        self._interval = settings.experiment_update_interval
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.rounds = 0

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self._interval)
                return
            except TimeoutError:
                pass
            try:
                await anyio.to_thread.run_sync(tick, self._database, self._interval)
                self.rounds += 1
            except DATABASE_ERRORS as exc:
                log.warning("experiment scheduler cannot reach the database: %s", exc)

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="promptkeeper-experiments")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
