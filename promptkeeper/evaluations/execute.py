"""Executing an evaluation run: claim it, call the model for every case and repeat, score, summarise.

Claiming: one short write transaction takes the oldest queued run, or a running one whose lease
ran out (its worker died), with `FOR UPDATE SKIP LOCKED` on PostgreSQL (SQLite's write lock
serialises claimers), and sets a lease that a heartbeat renews while the run executes. A worker
that loses its lease stops.

Resuming: the results already stored are skipped, and `eval_results` has one row per (run, case,
repeat) under a unique constraint, so a run taken over from a dead worker neither repeats finished
cases nor scores one twice, even if the dead worker's last writes race with the new one.

Provider responses go through the response cache (`eval_response_cache`, keyed by provider, model,
messages, params and repeat index): the keys a run needs are read in one query before it starts,
so re-running an unchanged suite makes no provider call at all.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import anyio
import anyio.to_thread
from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from promptkeeper import tracing
from promptkeeper.config import Settings
from promptkeeper.core import scorers as scoring
from promptkeeper.core.eval_stats import summarize
from promptkeeper.core.intervals import variance
from promptkeeper.core.templates import TemplateError, render_content
from promptkeeper.db.base import utcnow
from promptkeeper.db.engine import Database
from promptkeeper.evaluations.costs import cost_usd, price_of
from promptkeeper.evaluations.models import EvalCacheEntry, EvalCase, EvalResult, EvalRun, EvalSuiteVersion
from promptkeeper.evaluations.providers import (
    Call,
    Completion,
    Outcome,
    Provider,
    ProviderRequest,
    ProviderSettings,
    get_provider,
    run_calls,
)
from promptkeeper.evaluations.suites import iter_cases
from promptkeeper.prompts.models import PromptVersion

log = logging.getLogger(__name__)

#: What ending a run sets off, in the transaction that ends it (the deploys waiting for it, the
#: gates' auto-promotion: `deployments.promotion.run_finished`, which the worker hands in, since
#: evaluations sit below the deployment policy). Returns what to add to the run's summary.
RunFinished = Callable[[Session, EvalRun], dict[str, Any]]


#: Keys of a version's `config` that are passed to the model as parameters.
MODEL_PARAMS = ("temperature", "max_tokens", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty")


def provider_settings(settings: Settings) -> ProviderSettings:
    def secret(value: Any) -> str | None:
        return value.get_secret_value() if value is not None else None

    return ProviderSettings(
        openai_base_url=settings.openai_base_url,
        openai_api_key=secret(settings.openai_api_key),
        anthropic_base_url=settings.anthropic_base_url,
        anthropic_api_key=secret(settings.anthropic_api_key),
        timeout=settings.provider_timeout,
        max_retries=settings.provider_max_retries,
        retry_base=settings.provider_retry_base,
        concurrency=settings.provider_concurrency,
    )


class RunCache:
    """The run's view of the response cache: prefetched reads; new answers wait for their result.

    `put` is called by the executor on the event loop, so it must not touch the database (a
    blocked loop can deadlock with a request thread holding SQLite's write lock): the answer is
    kept in memory and `take` hands it to the thread that stores the scored result, which writes
    both in one transaction.
    """

    def __init__(self, entries: dict[str, Completion]) -> None:
        self._entries = entries
        self._new: dict[str, Completion] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Completion | None:
        return self._entries.get(key)

    def put(self, key: str, completion: Completion) -> None:
        with self._lock:
            self._entries[key] = completion
            self._new[key] = completion

    def take(self, key: str) -> Completion | None:
        """A new answer to persist now (once), if any."""
        with self._lock:
            return self._new.pop(key, None)


def persist_answer(session: Session, key: str, completion: Completion) -> None:
    """Add a cache entry unless another run stored the same request meanwhile."""
    try:
        with session.begin_nested():
            session.add(EvalCacheEntry(key=key, completion=completion.to_dict()))
    except IntegrityError:
        pass


@dataclass
class _Plan:
    run: EvalRun
    content: dict[str, Any]
    suite_scorers: list[dict[str, Any]]
    cases: dict[int, EvalCase]
    price: tuple[float, float] | None = None
    calls: list[Call] = field(default_factory=list)
    keys: dict[tuple[int, int], str] = field(default_factory=dict)  # (case id, repeat) -> cache key
    cache: RunCache = field(default_factory=lambda: RunCache({}))
    failed_renders: list[tuple[EvalCase, int, str]] = field(default_factory=list)


def _messages(rendered: str | list[dict[str, Any]]) -> list[dict[str, str]]:
    if isinstance(rendered, str):
        return [{"role": "user", "content": rendered}]
    return [{"role": str(m.get("role", "user")), "content": str(m.get("content", ""))} for m in rendered]


class Executor:
    """Claims and executes runs for one worker (embedded in a server, or `promptkeeper worker`)."""

    def __init__(self, db: Database, settings: Settings, worker: str, *, on_finished: RunFinished) -> None:
        self._db = db
        self._on_finished = on_finished
        self._settings = settings
        self._providers = provider_settings(settings)
        self.worker = worker
        self._lease = timedelta(seconds=settings.worker_lease)
        self._limiter: anyio.CapacityLimiter | None = None
        self._count_lock = threading.Lock()
        self._in_threads = 0
        #: Set to make `execute` stop its run early (the run stays leased, and is resumed later).
        self.stopping = asyncio.Event()

    # -- claiming ----------------------------------------------------------------------------------

    def claim(self) -> int | None:
        """Take the next runnable run; blocking (call from a thread).

        A plain read first: idle workers poll every second, and taking SQLite's write lock (or row
        locks) to find nothing would slow every writer for no job.
        """
        now = utcnow()
        runnable = or_(
            EvalRun.status == "queued", and_(EvalRun.status == "running", EvalRun.lease_until < now)
        )
        with self._db.session() as session:
            if session.scalar(select(EvalRun.id).where(runnable).limit(1)) is None:
                return None
        with self._db.write_session() as session:
            query = select(EvalRun).where(runnable).order_by(EvalRun.id).limit(1)
            if self._db.is_postgres:
                query = query.with_for_update(skip_locked=True)
            run = session.scalar(query)
            if run is None:
                return None
            run.status = "running"
            run.lease_until = now + self._lease
            run.worker = self.worker
            run.claims += 1
            run.started_at = run.started_at or now
            session.commit()
            log.info("worker %s took evaluation run %s (claim %s)", self.worker, run.id, run.claims)
            return run.id

    def _renew(self, run_id: int) -> bool:
        with self._db.write_session() as session:
            result = session.execute(
                update(EvalRun)
                .where(EvalRun.id == run_id, EvalRun.worker == self.worker, EvalRun.status == "running")
                .values(lease_until=utcnow() + self._lease)
            )
            session.commit()
            return bool(result.rowcount)  # type: ignore[attr-defined]

    # -- executing ---------------------------------------------------------------------------------

    async def in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Blocking database work in a thread, counted so that `drain` can wait for it.

        A cancelled await does not stop its thread: stopping the worker waits until every thread
        is done (and has returned its connection) before the engine is disposed.
        """
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(4)

        def tracked() -> Any:
            try:
                return fn(*args)
            finally:
                with self._count_lock:
                    self._in_threads -= 1

        with self._count_lock:
            self._in_threads += 1
        return await anyio.to_thread.run_sync(tracked, limiter=self._limiter)

    async def drain(self, timeout: float = 15.0) -> None:
        """Wait until no database work of this executor is running in a thread."""
        deadline = time.monotonic() + timeout
        while self._in_threads and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def execute(self, run_id: int) -> None:
        """Run to completion (or until the lease is lost); never raises for a failed run."""
        try:
            plan = await self.in_thread(self._plan, run_id)
        except Exception as exc:  # a broken run must not take the worker down
            log.exception("evaluation run %s cannot start", run_id)
            await self.in_thread(self._fail, run_id, f"cannot start: {exc}")
            return
        run = plan.run
        provider = get_provider(run.provider, self._providers)
        judge, judge_provider = self._judge(run, plan.cache)
        embed = self._embedder(plan)
        for case, repeat, error in plan.failed_renders:
            await self.in_thread(self._store, run_id, case, repeat, None, error, plan, judge, embed)
        lost = asyncio.Event()

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(self._lease.total_seconds() / 3)
                if not await self.in_thread(self._renew, run_id):
                    log.warning("worker %s lost the lease of run %s; stopping", self.worker, run_id)
                    lost.set()
                    return

        async def on_outcome(outcome: Outcome) -> None:
            case_id, repeat = outcome.key
            await self.in_thread(
                self._store,
                run_id,
                plan.cases[case_id],
                repeat,
                outcome.completion,
                outcome.error,
                plan,
                judge,
                embed,
            )

        beat = asyncio.create_task(heartbeat())
        calls = asyncio.create_task(
            run_calls(
                provider,
                plan.calls,
                concurrency=int(run.params.get("concurrency") or self._providers.concurrency),
                timeout=self._providers.timeout,
                max_retries=self._providers.max_retries,
                retry_base=self._providers.retry_base,
                cache=plan.cache,
                on_outcome=on_outcome,
            )
        )
        stopper = asyncio.create_task(lost.wait())
        shutdown = asyncio.create_task(self.stopping.wait())
        try:
            done, _ = await asyncio.wait({calls, stopper, shutdown}, return_when=asyncio.FIRST_COMPLETED)
            if calls not in done:
                calls.cancel()
                return
            calls.result()
            await self.in_thread(self._finish, run_id)
        except asyncio.CancelledError:
            calls.cancel()
            raise
        except Exception as exc:
            log.exception("evaluation run %s failed", run_id)
            await self.in_thread(self._fail, run_id, str(exc))
        finally:
            beat.cancel()
            stopper.cancel()
            shutdown.cancel()
            await _close(provider)
            await _close(judge_provider)

    def _plan(self, run_id: int) -> _Plan:
        with self._db.session() as session:
            run = session.get(EvalRun, run_id)
            assert run is not None
            version = session.scalar(
                select(PromptVersion).where(
                    PromptVersion.prompt_id == run.prompt_id, PromptVersion.number == run.prompt_version
                )
            )
            suite_version = session.scalar(
                select(EvalSuiteVersion).where(
                    EvalSuiteVersion.suite_id == run.suite_id, EvalSuiteVersion.number == run.suite_version
                )
            )
            assert version is not None and suite_version is not None
            done = {
                (row[0], row[1])
                for row in session.execute(
                    select(EvalResult.case_id, EvalResult.repeat).where(EvalResult.run_id == run.id)
                )
            }
            cases = list(iter_cases(session=session, version=suite_version))
            session.expunge_all()
        plan = _Plan(
            price=price_of(run.model, run.params.get("prices")),
            run=run,
            content=version.content,
            suite_scorers=suite_version.scorers,
            cases={c.id: c for c in cases},
        )
        config = version.content.get("config", {})
        params = {k: config[k] for k in MODEL_PARAMS if k in config}
        params.update(run.params.get("model", {}))
        for case in cases:
            try:
                rendered = render_content(version.content, case.variables)
                request = ProviderRequest(model=run.model, messages=_messages(rendered), params=params)
            except TemplateError as exc:
                for repeat in range(run.repeats):
                    if (case.id, repeat) not in done:
                        plan.failed_renders.append((case, repeat, f"render failed: {exc}"))
                continue
            for repeat in range(run.repeats):
                if (case.id, repeat) not in done:
                    plan.calls.append(Call(key=(case.id, repeat), request=request, repeat=repeat))
        plan.keys = {call.key: call.request.cache_key(run.provider, call.repeat) for call in plan.calls}
        keys = list(plan.keys.values())
        entries: dict[str, Completion] = {}
        with self._db.session() as session:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                for entry in session.scalars(select(EvalCacheEntry).where(EvalCacheEntry.key.in_(chunk))):
                    entries[entry.key] = Completion.from_dict(entry.completion)
        plan.cache = RunCache(entries)
        return plan

    def _judge(self, run: EvalRun, cache: RunCache) -> tuple[Callable[[list[dict[str, str]]], str], _Lazy]:
        """The judge scorers' model call (cached like any call), and its provider to close after the run."""
        provider_name = str(run.params.get("judge_provider") or run.provider)
        model = str(run.params.get("judge_model") or run.model)
        params = {"temperature": 0, **run.params.get("judge_params", {})}
        lazy = _Lazy(lambda: get_provider(provider_name, self._providers))

        def judge(messages: list[dict[str, str]]) -> str:
            provider = lazy.get()
            request = ProviderRequest(model=model, messages=messages, params=params)
            key = request.cache_key(f"judge:{provider_name}", 0)
            cached = cache.get(key)
            if cached is not None:
                return cached.text
            with tracing.span("promptkeeper.llm.judge", **{"gen_ai.request.model": model}):
                completion = provider.complete(request, timeout=self._providers.timeout)
            cache.put(key, completion)
            return completion.text

        return judge, lazy

    def _embedder(self, plan: _Plan) -> Callable[[list[str]], list[list[float]]] | None:
        names = {s["name"] for s in plan.suite_scorers}
        names.update(s["name"] for case in plan.cases.values() for s in (case.scorers or []))
        if not any(scoring.get_scorer(name).needs_embedder for name in names):
            return None
        from promptkeeper.evaluations.embeddings import embed

        return embed

    def _store(
        self,
        run_id: int,
        case: EvalCase,
        repeat: int,
        completion: Completion | None,
        error: str | None,
        plan: _Plan,
        judge: Callable[[list[dict[str, str]]], str],
        embed: Callable[[list[str]], list[list[float]]] | None,
    ) -> None:
        """Score one output and store it with its scores (once: a duplicate is dropped)."""
        configs = case.scorers or plan.suite_scorers
        scores: list[dict[str, Any]] = []
        output = completion.text if completion is not None else ""
        data = scoring.ScoreInput(
            output=output, expected=case.expected, variables=case.variables, judge=judge, embed=embed
        )
        for config in configs:
            if error is not None:
                threshold = config.get("threshold", scoring.get_scorer(config["name"]).default_threshold)
                scores.append(
                    {"scorer": config["name"], "value": 0.0, "passed": False, "threshold": threshold}
                )
                continue
            try:
                result = scoring.score(
                    config["name"], data, config.get("params") or {}, config.get("threshold")
                )
                scores.append(
                    {
                        "scorer": result.scorer,
                        "value": result.value,
                        "passed": result.passed,
                        "threshold": result.threshold,
                        **({"detail": result.detail} if result.detail else {}),
                    }
                )
            except scoring.ScorerError as exc:
                scores.append(
                    {
                        "scorer": config["name"],
                        "value": 0.0,
                        "passed": False,
                        "threshold": config.get("threshold", 1.0),
                        "detail": {"error": str(exc)},
                    }
                )
        row = EvalResult(
            run_id=run_id,
            case_id=case.id,
            case_key=case.key,
            repeat=repeat,
            output=output,
            error=error,
            scores=scores,
            passed=error is None and all(s["passed"] for s in scores),
            latency_ms=completion.latency_ms if completion else None,
            ttft_ms=completion.ttft_ms if completion else None,
            input_tokens=completion.input_tokens if completion else None,
            output_tokens=completion.output_tokens if completion else None,
            cached=bool(completion and completion.cached),
            cost_usd=cost_usd(
                plan.price,
                completion.input_tokens if completion else None,
                completion.output_tokens if completion else None,
                cached=bool(completion and completion.cached),
            )
            if completion is not None
            else None,
        )
        key = plan.keys.get((case.id, repeat))
        answer = plan.cache.take(key) if key is not None else None
        try:
            with self._db.write_session() as session:
                if key is not None and answer is not None:
                    persist_answer(session, key, answer)
                session.add(row)
                session.flush()
                session.execute(update(EvalRun).where(EvalRun.id == run_id).values(done=EvalRun.done + 1))
                session.commit()
        except IntegrityError:
            log.info("run %s: case %s repeat %s was already stored; dropped", run_id, case.key, repeat)

    def _finish(self, run_id: int) -> None:
        with self._db.write_session() as session:
            run = session.get(EvalRun, run_id)
            assert run is not None
            if run.worker != self.worker or run.status != "running":
                return  # another worker took over
            results = list(session.scalars(select(EvalResult).where(EvalResult.run_id == run_id)))
            tags = {
                c.id: c.tags
                for c in session.scalars(
                    select(EvalCase).where(EvalCase.id.in_({r.case_id for r in results}))
                )
            }
            run.summary = summarize_results(results, tags)
            run.done = len(results)
            run.status = "succeeded"
            run.finished_at = utcnow()
            run.lease_until = None
            session.flush()
            run.summary = {**run.summary, **self._on_finished(session, run)}
            session.commit()

    def _fail(self, run_id: int, message: str) -> None:
        with self._db.write_session() as session:
            run = session.get(EvalRun, run_id)
            if run is None:
                return
            run.status = "failed"
            run.error = message[:2000]
            run.finished_at = utcnow()
            run.lease_until = None
            session.flush()
            self._on_finished(session, run)
            session.commit()


class _Lazy:
    """A provider built on first use (most runs never call a judge)."""

    def __init__(self, build: Callable[[], Provider]) -> None:
        self._build = build
        self.value: Provider | None = None
        self._lock = threading.Lock()

    def get(self) -> Provider:
        with self._lock:
            if self.value is None:
                self.value = self._build()
            return self.value


async def _close(provider: Provider | _Lazy) -> None:
    """Release a provider's connections (SDK providers have `aclose`; `local` has nothing)."""
    target = provider.value if isinstance(provider, _Lazy) else provider
    close = getattr(target, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:  # closing must not turn a finished run into a failure
            log.warning("closing provider %s failed", getattr(target, "name", "?"), exc_info=True)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summarize_results(results: list[EvalResult], tags: dict[int, list[str]]) -> dict[str, Any]:
    """The run summary: per scorer (mean, pass rate, intervals), per tag, consistency, cost."""

    def block(items: list[EvalResult]) -> dict[str, Any]:
        summaries = summarize(
            (s["scorer"], float(s["value"]), bool(s["passed"]), float(s["threshold"]))
            for r in items
            for s in r.scores
        )
        return {
            name: {
                "n": s.n,
                "mean": s.mean,
                # scores live in [0, 1]: a t interval of few values can reach past it
                "mean_ci": [max(0.0, s.mean_ci.low), min(1.0, s.mean_ci.high)],
                "pass_rate": s.pass_rate,
                "pass_ci": [s.pass_ci.low, s.pass_ci.high],
                "threshold": s.threshold,
            }
            for name, s in summaries.items()
        }

    by_tag: dict[str, list[EvalResult]] = {}
    by_case: dict[int, list[EvalResult]] = {}
    for result in results:
        for tag in tags.get(result.case_id, []):
            by_tag.setdefault(tag, []).append(result)
        by_case.setdefault(result.case_id, []).append(result)
    consistency: dict[str, Any] = {}
    repeated = [items for items in by_case.values() if len(items) > 1]
    if repeated:
        agreements = [scoring.consistency([r.output for r in items])["agreement"] for items in repeated]
        spread: dict[str, list[float]] = {}
        for items in repeated:
            values: dict[str, list[float]] = {}
            for result in items:
                for s in result.scores:
                    values.setdefault(s["scorer"], []).append(float(s["value"]))
            for scorer, vs in values.items():
                spread.setdefault(scorer, []).append(variance(vs))
        consistency = {
            "agreement": statistics.fmean(agreements),
            "score_variance": {scorer: statistics.fmean(vs) for scorer, vs in spread.items()},
            "cases": len(repeated),
        }
    latencies = [r.latency_ms for r in results if r.latency_ms is not None and not r.cached]
    return {
        "scorers": block(results),
        "tags": {tag: block(items) for tag, items in sorted(by_tag.items())},
        "consistency": consistency,
        "results": len(results),
        "passed": sum(1 for r in results if r.passed),
        "errors": sum(1 for r in results if r.error),
        "cached": sum(1 for r in results if r.cached),
        "tokens": {
            "input": sum(r.input_tokens or 0 for r in results),
            "output": sum(r.output_tokens or 0 for r in results),
        },
        "cost_usd": sum(r.cost_usd for r in results if r.cost_usd is not None)
        if any(r.cost_usd is not None for r in results)
        else None,
        "latency_ms": {"p50": _percentile(latencies, 0.5), "p95": _percentile(latencies, 0.95)},
    }
