"""Scoring sampled generations: claimed in batches from the database, by any number of workers.

A batch is claimed in one short write transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so
workers take disjoint batches; SQLite's write lock serialises claimers) and leased for
`worker_lease` seconds. The scores are stored in one transaction that first marks the batch done,
only for the rows this worker still holds: a worker that died or stalled past its lease stores
nothing, and the rows go to whoever claims them next. `monitor_scores` is unique per (generation,
scorer) as well, so a generation is never scored twice; a crash loses at most a lease's delay.

After storing, the worker takes a look at each monitor it scored for (`detection.check`).

LLM-judge scorers call the monitor's judge model, at most `monitor_judge_rate` calls per second per
worker (a token bucket), and each score keeps the call's cost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from promptkeeper import tracing
from promptkeeper.config import Settings
from promptkeeper.core import scorers as scoring
from promptkeeper.db.base import utcnow
from promptkeeper.db.engine import Database, insert_ignoring_duplicates
from promptkeeper.evaluations.costs import cost_usd, price_of
from promptkeeper.evaluations.execute import provider_settings
from promptkeeper.evaluations.providers import ProviderRequest, get_provider
from promptkeeper.monitoring import detection
from promptkeeper.monitoring.models import Generation, Monitor, MonitorScore
from promptkeeper.monitoring.service import FEEDBACK

log = logging.getLogger(__name__)


class RateLimiter:
    """A token bucket: `rate` calls per second, bursts up to one second's worth."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._tokens = max(1.0, rate)
        self._updated = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for a token; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(max(1.0, self.rate), self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return waited
                delay = (1.0 - self._tokens) / self.rate
            self._sleep(delay)
            waited += delay


_SCORE_COLUMNS = (
    "monitor_id",
    "generation_id",
    "version",
    "scorer",
    "value",
    "passed",
    "at",
    "scored_at",
    "cost_usd",
    "detail",
)
_INSERT_SCORES = (
    f"INSERT INTO monitor_scores ({', '.join(_SCORE_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(_SCORE_COLUMNS))}) ON CONFLICT (generation_id, scorer) DO NOTHING"
)


def _insert_scores(session: Session, rows: list[dict[str, Any]]) -> None:
    """Store a batch's scores, skipping any already stored (the unique key is the last guard).

    PostgreSQL: one prepared statement through psycopg's pipelined executemany; SQLAlchemy's
    multi-row VALUES statements change size with every batch and spent most of a batch's time being
    parsed (profiled). Elsewhere: the portable INSERT ... ON CONFLICT DO NOTHING.
    """
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        insert_ignoring_duplicates(session, MonitorScore, rows, ["generation_id", "scorer"])
        return
    raw = connection.connection.dbapi_connection
    assert raw is not None
    with raw.cursor() as cursor:  # type: ignore[attr-defined]
        cursor.executemany(
            _INSERT_SCORES,
            [
                [
                    Jsonb(row[name]) if name == "detail" and row[name] is not None else row[name]
                    for name in _SCORE_COLUMNS
                ]
                for row in rows
            ],
        )


class MonitorScorer:
    def __init__(self, db: Database, settings: Settings, worker: str) -> None:
        self._db = db
        self._settings = settings
        self.worker = worker
        self.batch = settings.monitor_batch
        self.lease = settings.worker_lease
        self.limiter = RateLimiter(settings.monitor_judge_rate)
        self.scored = 0
        self.judge_calls = 0

    # -- claiming ----------------------------------------------------------------------------------

    def _claimable(self) -> Any:
        return or_(
            Generation.score_state == "pending",
            (Generation.score_state == "leased") & (Generation.lease_until < utcnow()),
        )

    def claim(self, limit: int | None = None) -> list[int]:
        """Lease up to `limit` generations (default `monitor_batch`); blocking, call from a thread.

        A plain read first: idle workers poll, and taking the write lock to find nothing would slow
        every writer.
        """
        limit = limit or self.batch
        with self._db.session() as session:
            if session.scalar(select(Generation.id).where(self._claimable()).limit(1)) is None:
                return []
        with self._db.write_session() as session:
            query = select(Generation.id).where(self._claimable()).order_by(Generation.id).limit(limit)
            if self._db.is_postgres:
                query = query.with_for_update(skip_locked=True)
            ids = list(session.scalars(query))
            if not ids:
                return []
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

    # -- scoring -----------------------------------------------------------------------------------

    def score(self, ids: list[int]) -> list[dict[str, Any]]:
        """The scores of the claimed generations (no database writes)."""
        with self._db.session() as session:
            generations = list(session.scalars(select(Generation).where(Generation.id.in_(ids))))
            monitor_ids = {g.monitor_id for g in generations if g.monitor_id is not None}
            monitors = {m.id: m for m in session.scalars(select(Monitor).where(Monitor.id.in_(monitor_ids)))}
            session.expunge_all()
        now = utcnow()
        rows: list[dict[str, Any]] = []
        for generation in generations:
            monitor = monitors.get(generation.monitor_id or 0)
            if monitor is None:
                continue  # its monitor was deleted: nothing to score it for
            variables = generation.input if isinstance(generation.input, dict) else {}
            for rule in monitor.rules:
                if rule["scorer"] in FEEDBACK:
                    continue  # scored when the feedback arrives
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
            self.limiter.acquire()
            providers = provider_settings(self._settings)
            provider = get_provider(provider_name, providers)
            request = ProviderRequest(model=model, messages=messages, params={"temperature": 0})
            with tracing.span("promptkeeper.llm.judge", **{"gen_ai.request.model": model}):
                completion = provider.complete(request, timeout=providers.timeout)
            self.judge_calls += 1
            spent = cost_usd(price_of(model), completion.input_tokens, completion.output_tokens, cached=False)
            cost[0] += spent or 0.0
            return completion.text

        return judge, cost

    # -- storing -----------------------------------------------------------------------------------

    def store(self, ids: list[int], rows: list[dict[str, Any]]) -> set[int]:
        """Mark the batch done and store its scores, for the rows this worker still holds.

        Returns the monitors scored for.
        """
        with self._db.write_session() as session:
            held = set(
                session.scalars(
                    update(Generation)
                    .where(
                        Generation.id.in_(ids),
                        Generation.worker == self.worker,
                        Generation.score_state == "leased",
                    )
                    .values(score_state="done", lease_until=None)
                    .returning(Generation.id)
                )
            )
            if len(held) < len(ids):
                log.warning(
                    "worker %s lost the lease of %s generations (another worker scores them)",
                    self.worker,
                    len(ids) - len(held),
                )
            kept = [row for row in rows if row["generation_id"] in held]
            if kept:
                _insert_scores(session, kept)
            session.commit()
        self.scored += len(held)
        return {row["monitor_id"] for row in kept}

    def step(self) -> int:
        """Claim, score, store and look: one batch. Returns the generations claimed (0: idle)."""
        ids = self.claim()
        if not ids:
            return 0
        monitors = self.store(ids, self.score(ids))
        for monitor_id in sorted(monitors):
            try:
                detection.check(self._db, monitor_id)
            except Exception:  # one monitor's failed look must not stop the scoring of others
                log.exception("monitor %s: the look failed", monitor_id)
        return len(ids)
