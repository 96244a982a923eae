"""Scoring generations: claimed in batches from the database, by any number of workers.

A batch is claimed in one short write transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so
workers take disjoint batches; SQLite's write lock serialises claimers) and leased for
`worker_lease` seconds. Scores are stored in transactions that mark their rows done, only for the
rows this worker still holds: a worker that died or stalled past its lease stores nothing, and the
rows go to whoever claims them next. `monitor_scores` is unique per (generation, scorer) as well,
so a generation is never scored twice; a crash loses at most a lease's delay.

A paid judge must also be *called* once per record, so a live batch never looks abandoned: a
heartbeat renews its lease every quarter of the lease while it is worked on, whatever one call takes,
and a claim takes only as many judged records as the judge delivers in a third of the lease (at
`monitor_judge_rate`, or the calls' measured pace if slower), so other workers share the rest.
While a batch is judged, what is done is stored (and looked at) every `worker_poll_interval`, and
the monitors are read again: a monitor disabled meanwhile gets no more calls, and its queued rows
are marked `skipped`.

Costly scorers (LLM judges, embeddings) run on the monitor's sample only; cheap heuristics on every
generation of the monitor (`service.costly`). After storing, the worker takes a look at each
monitor it scored for (`looks.check`); `look_all` looks at every monitor on a timer, for the
evidence that arrives without scoring (feedback) and for looks that wait on time alone.

LLM-judge scorers call the monitor's judge model, at most `monitor_judge_rate` calls per second per
worker (a token bucket), and each score keeps the call's cost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session, aliased

from promptkeeper import tracing
from promptkeeper.config import Settings
from promptkeeper.core import scorers as scoring
from promptkeeper.db.base import utcnow
from promptkeeper.db.engine import Database
from promptkeeper.evaluations.costs import cost_usd, price_of
from promptkeeper.evaluations.execute import provider_settings
from promptkeeper.evaluations.providers import ProviderRequest, get_provider
from promptkeeper.monitoring import looks
from promptkeeper.monitoring.limits import RateLimiter
from promptkeeper.monitoring.models import Generation, Monitor
from promptkeeper.monitoring.scores import insert_scores
from promptkeeper.monitoring.service import FEEDBACK, costly, sampled

log = logging.getLogger(__name__)
__all__ = ["MonitorScorer", "RateLimiter"]


class _Batch:
    """The rows of one claim not yet stored, shared by the scoring loop and its heartbeat."""

    def __init__(self, ids: list[int]) -> None:
        self.open = set(ids)
        self.lock = threading.Lock()

    def held(self, generation_id: int) -> bool:
        with self.lock:
            return generation_id in self.open

    def close(self, ids: Iterable[int]) -> None:
        with self.lock:
            self.open.difference_update(ids)


class MonitorScorer:
    def __init__(self, db: Database, settings: Settings, worker: str) -> None:
        self._db = db
        self._settings = settings
        self.worker = worker
        self.batch = settings.monitor_batch
        self.lease = settings.worker_lease
        self.checkpoint = settings.worker_poll_interval
        self.look_interval = settings.monitor_look_interval
        self.limiter = RateLimiter(settings.monitor_judge_rate)
        self.scored = 0
        self.judge_calls = 0
        self.renewals = 0
        self._call_seconds = 0.0  # the judge calls' pace, measured (moving average)
        self._sizing: dict[int, Monitor] = {}
        self._sized_at = 0.0

    # -- claiming ----------------------------------------------------------------------------------

    def _claimable(self) -> Any:
        return or_(
            Generation.score_state == "pending",
            (Generation.score_state == "leased") & (Generation.lease_until < utcnow()),
        )

    def judge_budget(self) -> int:
        """Judge calls one claim may take: what the judge delivers in a third of the lease."""
        pace = max(1.0 / self.limiter.rate, self._call_seconds)
        return max(1, int(self.lease / 3.0 / pace))

    def claim(self, limit: int | None = None) -> list[int]:
        """Lease up to `limit` generations (default `monitor_batch`), and no more judge calls than
        `judge_budget`; blocking, call from a thread.

        A plain read first: idle workers poll, and taking the write lock to find nothing would slow
        every writer.
        """
        limit = limit or self.batch
        with self._db.session() as session:
            if session.scalar(select(Generation.id).where(self._claimable()).limit(1)) is None:
                return []
        with self._db.write_session() as session:
            query = (
                select(Generation.id, Generation.monitor_id, Generation.request_id)
                .where(self._claimable())
                .order_by(Generation.id)
                .limit(limit)
            )
            if self._db.is_postgres:
                query = query.with_for_update(skip_locked=True)
            found = list(session.execute(query).all())
            if not found:
                return []
            monitors = self._claim_monitors(session, {row[1] for row in found if row[1] is not None})
            budget, ids = self.judge_budget(), list[int]()
            for generation_id, monitor_id, request_id in found:
                cost = len(self._costly_rules(monitors.get(monitor_id or 0), request_id))
                if ids and cost > budget:
                    break
                budget -= cost
                ids.append(generation_id)
            session.execute(
                update(Generation)
                .where(Generation.id.in_(ids))
                .values(
                    score_state="leased",
                    worker=self.worker,
                    lease_until=utcnow() + timedelta(seconds=self.lease),
                    claims=Generation.claims + 1,
                )
            )
            session.commit()
            return ids

    def _claim_monitors(self, session: Session, ids: set[int]) -> dict[int, Monitor]:
        """The monitors a claim sizes its batch by, read at most once a checkpoint: claims are the
        hot path of heuristic scoring, and a stale copy only misjudges one batch's size."""
        fresh = time.monotonic() - self._sized_at < self.checkpoint
        if not (fresh and ids <= self._sizing.keys()):
            self._sizing = self._load_monitors(session, ids)
            self._sized_at = time.monotonic()
        return self._sizing

    def _update_held(self, session: Session, ids: list[int], **values: Any) -> set[int]:
        """Update the rows of `ids` this worker still holds; returns them.

        PostgreSQL: the rows are locked in id order by a subquery (`ORDER BY id FOR NO KEY UPDATE`),
        in the same statement. A plain `UPDATE … WHERE id IN (…)` locks in its plan's order
        (physical order on a sequential scan), and a feedback batch locking the same rows in
        another order deadlocked against it: PostgreSQL aborted the store, and its batch waited
        for the lease to run out. Feedback locks in id order too (`generations.apply_feedback`).
        SQLite has no row locks: the write session holds the database's write lock.
        """

        def held(rows: Any) -> ColumnElement[bool]:
            return and_(rows.id.in_(ids), rows.worker == self.worker, rows.score_state == "leased")

        where = held(Generation)
        if self._db.is_postgres:
            locked = aliased(Generation, name="locked")
            where = Generation.id.in_(
                select(locked.id).where(held(locked)).order_by(locked.id).with_for_update(key_share=True)
            )
        statement = update(Generation).where(where).values(**values).returning(Generation.id)
        return set(session.scalars(statement))

    def renew(self, ids: Iterable[int]) -> set[int]:
        """Extend the lease of rows this worker still holds; returns them."""
        wanted = list(ids)
        if not wanted:
            return set()
        with self._db.write_session() as session:
            held = self._update_held(session, wanted, lease_until=utcnow() + timedelta(seconds=self.lease))
            session.commit()
        self.renewals += 1
        return held

    @contextmanager
    def _heartbeat(self, batch: _Batch) -> Iterator[None]:
        """Renew the batch's lease every quarter of it until the block ends; rows found lost (the
        worker stalled past its lease and another took them) leave the batch, uncalled."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.lease / 4.0):
                with batch.lock:
                    open_ids = set(batch.open)
                try:
                    held = self.renew(open_ids)
                except Exception as exc:  # the database is away: the next beat tries again
                    log.warning("worker %s could not renew its lease: %s", self.worker, exc)
                    continue
                if open_ids - held:
                    batch.close(open_ids - held)

        thread = threading.Thread(target=beat, name=f"lease-{self.worker}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    # -- scoring -----------------------------------------------------------------------------------

    @staticmethod
    def _load_monitors(session: Session, ids: set[int]) -> dict[int, Monitor]:
        monitors = {m.id: m for m in session.scalars(select(Monitor).where(Monitor.id.in_(ids)))}
        for monitor in monitors.values():
            session.expunge(monitor)
        return monitors

    @staticmethod
    def _costly_rules(monitor: Monitor | None, request_id: str) -> list[dict[str, Any]]:
        if monitor is None or not monitor.enabled or not sampled(request_id, monitor.sample_rate):
            return []
        return [rule for rule in monitor.rules if costly(rule)]

    def score(self, ids: list[int]) -> list[dict[str, Any]]:
        """The scores of the claimed generations (no database writes)."""
        rows: list[dict[str, Any]] = []
        for _, scores in self._scored(ids, _Batch(ids)):
            rows.extend(scores or ())
        return rows

    def _scored(self, ids: list[int], batch: _Batch) -> Iterator[tuple[int, list[dict[str, Any]] | None]]:
        """(generation, its scores) in order, or (generation, None) when its monitor is deleted or
        disabled; rows the batch lost are left out. The monitors are read again every checkpoint."""
        with self._db.session() as session:
            generations = list(
                session.scalars(select(Generation).where(Generation.id.in_(ids)).order_by(Generation.id))
            )
            monitor_ids = {g.monitor_id for g in generations if g.monitor_id is not None}
            monitors = self._load_monitors(session, monitor_ids)
            session.expunge_all()
        read_at = time.monotonic()
        for generation in generations:
            if time.monotonic() - read_at >= self.checkpoint:
                read_at = time.monotonic()
                with self._db.session() as session:
                    monitors = self._load_monitors(session, monitor_ids)
            if not batch.held(generation.id):
                continue
            monitor = monitors.get(generation.monitor_id or 0)
            if monitor is None or not monitor.enabled:
                yield generation.id, None
                continue
            yield generation.id, self._score_one(monitor, generation)

    def _score_one(self, monitor: Monitor, generation: Generation) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        now = utcnow()
        variables = generation.input if isinstance(generation.input, dict) else {}
        judged = sampled(generation.request_id, monitor.sample_rate)
        for rule in monitor.rules:
            if rule["scorer"] in FEEDBACK:
                continue  # scored when the feedback arrives
            if costly(rule) and not judged:
                continue  # costly scorers score the sample only
            judge, cost = self._judge(monitor)
            data = scoring.ScoreInput(output=generation.output, variables=variables, judge=judge)
            try:
                result = scoring.score(rule["scorer"], data, rule["params"], rule["threshold"])
                value, passed, detail = result.value, result.passed, result.detail
            except scoring.ScorerError as exc:  # e.g. the judge is no longer configured
                value, passed, detail = 0.0, False, {"error": str(exc)}
            rows.append(
                {
                    "monitor_id": monitor.id,
                    "generation_id": generation.id,
                    "version": generation.version,
                    "scorer": rule["name"],
                    "value": value,
                    "passed": passed,
                    "at": generation.at,
                    "scored_at": now,
                    "cost_usd": cost[0] if judge is not None else None,
                    "detail": None if passed else detail,
                }
            )
        return rows

    def _judge(self, monitor: Monitor) -> tuple[Callable[[list[dict[str, str]]], str] | None, list[float]]:
        """The monitor's judge call (rate-limited), and a cell that sums its cost."""
        cost = [0.0]
        if not (monitor.judge_provider and monitor.judge_model):
            return None, cost
        provider_name, model = monitor.judge_provider, monitor.judge_model

        def judge(messages: list[dict[str, str]]) -> str:
            started = time.monotonic()
            self.limiter.acquire()
            providers = provider_settings(self._settings)
            provider = get_provider(provider_name, providers)
            request = ProviderRequest(model=model, messages=messages, params={"temperature": 0})
            try:
                with tracing.span("promptkeeper.llm.judge", **{"gen_ai.request.model": model}):
                    completion = provider.complete(request, timeout=providers.timeout)
            finally:
                took = time.monotonic() - started
                self._call_seconds = took if not self._call_seconds else 0.8 * self._call_seconds + 0.2 * took
            self.judge_calls += 1
            spent = cost_usd(price_of(model), completion.input_tokens, completion.output_tokens, cached=False)
            cost[0] += spent or 0.0
            return completion.text

        return judge, cost

    # -- storing -----------------------------------------------------------------------------------

    def store(self, ids: list[int], rows: list[dict[str, Any]], skipped: Iterable[int] = ()) -> set[int]:
        """Mark rows done (`skipped`: their monitor is gone or disabled) and store their scores, for
        the rows this worker still holds. Returns the monitors scored for."""
        skip = set(skipped)
        with self._db.write_session() as session:
            held = self._update_held(session, ids, score_state="done", lease_until=None)
            if skip & held:
                session.execute(
                    update(Generation)
                    .where(Generation.id.in_(list(skip & held)))
                    .values(score_state="skipped")
                )
            if len(held) < len(ids):
                log.warning(
                    "worker %s lost the lease of %s generations (another worker scores them)",
                    self.worker,
                    len(ids) - len(held),
                )
            kept = [row for row in rows if row["generation_id"] in held]
            if kept:
                insert_scores(session, kept)
            session.commit()
        self.scored += len(held - skip)
        return {row["monitor_id"] for row in kept}

    def _look(self, monitor_ids: Iterable[int]) -> None:
        for monitor_id in sorted(monitor_ids):
            try:
                looks.check(self._db, monitor_id, look_interval=self.look_interval)
            except Exception:  # one monitor's failed look must not stop the scoring of others
                log.exception("monitor %s: the look failed", monitor_id)

    def step(self) -> int:
        """Claim, score, store and look: one batch. Returns the generations claimed (0: idle)."""
        ids = self.claim()
        if not ids:
            return 0
        batch = _Batch(ids)
        done: list[int] = []
        skipped: list[int] = []
        rows: list[dict[str, Any]] = []
        stored_at = time.monotonic()

        def flush() -> None:
            if done or skipped:
                self._look(self.store(done + skipped, rows, skipped))
                batch.close(done + skipped)
            done.clear()
            skipped.clear()
            rows.clear()

        with self._heartbeat(batch):
            for generation_id, scores in self._scored(ids, batch):
                if scores is None:
                    skipped.append(generation_id)
                else:
                    done.append(generation_id)
                    rows.extend(scores)
                if time.monotonic() - stored_at >= self.checkpoint:
                    flush()
                    stored_at = time.monotonic()
            flush()
        return len(ids)

    def look_all(self) -> int:
        """A look at every enabled monitor that has one due (feedback, timers); returns the looks."""
        with self._db.session() as session:
            ids = list(session.scalars(select(Monitor.id).where(Monitor.enabled.is_(True))))
        taken = 0
        for monitor_id in ids:
            try:
                taken += looks.check(self._db, monitor_id, look_interval=self.look_interval) is not None
            except Exception:
                log.exception("monitor %s: the look failed", monitor_id)
        return taken
