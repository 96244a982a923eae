"""The job loop: in-process in embedded mode (a task of each server), or `promptkeeper worker`.

The domains hold what a job does (`evaluations.execute`, `monitoring.scoring`); this loop claims,
runs and paces them, and hands the executor what a finished run sets off
(`deployments.promotion.run_finished`), which evaluations cannot import.

It claims one evaluation run at a time and executes it; with no run waiting, it scores a batch of
production outputs for the monitors (`monitoring.scoring`). With neither, it sleeps
`worker_poll_interval` seconds, or less when a run is queued in this process (`wake`). Every
`monitor_look_interval` seconds, busy or not, it looks at every monitor (`MonitorScorer.look_all`):
feedback becomes evidence without any scoring, so no batch would trigger its looks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

from promptkeeper.config import Settings
from promptkeeper.db.engine import Database
from promptkeeper.deployments.promotion import run_finished
from promptkeeper.evaluations.execute import Executor
from promptkeeper.evaluations.runs import RunQueued
from promptkeeper.monitoring.scoring import MonitorScorer
from promptkeeper.runtime.resolver import DATABASE_ERRORS

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, db: Database, settings: Settings, name: str | None = None) -> None:
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.executor = Executor(db, settings, self.name, on_finished=run_finished)
        self.monitors = MonitorScorer(db, settings, self.name)
        self._interval = settings.worker_poll_interval
        self._look_interval = settings.monitor_look_interval
        self._next_looks = time.monotonic() + self._look_interval
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.completed = 0

    @property
    def scored(self) -> int:
        """Generations this process scored for the monitors."""
        return self.monitors.scored

    @property
    def judge_calls(self) -> int:
        return self.monitors.judge_calls

    def on_commit(self, event: object) -> None:
        """Post-commit listener: a run queued in this process starts without waiting for a poll."""
        if isinstance(event, RunQueued) and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self, *, until_idle: bool = False) -> None:
        """Claim and execute runs until stopped (or, with `until_idle`, until none is waiting)."""
        self._loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            if time.monotonic() >= self._next_looks:
                self._next_looks = time.monotonic() + self._look_interval
                try:
                    await self.executor.in_thread(self.monitors.look_all)
                except DATABASE_ERRORS as exc:
                    log.warning("worker %s cannot reach the database: %s", self.name, exc)
            try:
                run_id = await self.executor.in_thread(self.executor.claim)
            except DATABASE_ERRORS as exc:
                log.warning("worker %s cannot reach the database: %s", self.name, exc)
                run_id = None
            if run_id is not None:
                await self.executor.execute(run_id)
                self.completed += 1
                continue
            try:
                claimed = await self.executor.in_thread(self.monitors.step)
            except DATABASE_ERRORS as exc:
                log.warning("worker %s cannot reach the database: %s", self.name, exc)
                claimed = 0
            if claimed:
                continue
            if until_idle:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            except TimeoutError:
                pass

    def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self.run(), name="promptkeeper-worker")

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop between jobs or interrupt the current run (it stays leased and is resumed later),
        and wait for the database work in threads, so no connection outlives the engine."""
        self._stop.set()
        self._wake.set()
        self.executor.stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=timeout)
            except TimeoutError:
                self._task.cancel()
                try:
                    await self._task
                except asyncio.CancelledError:
                    pass
            self._task = None
        await self.executor.drain()
