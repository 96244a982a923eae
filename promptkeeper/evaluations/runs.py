"""Evaluation runs: queue one, read its summary and results, compare two.

A run is queued by the API or CLI and executed by a worker (`evaluations.execute`), in-process in
embedded mode. This module holds everything about runs that is plain database work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from promptkeeper.access.service import Actor
from promptkeeper.audit.service import record
from promptkeeper.core.eval_stats import paired_difference
from promptkeeper.db.engine import emit
from promptkeeper.errors import NotFound, ValidationFailed
from promptkeeper.evaluations.models import EvalResult, EvalRun, EvalSuite
from promptkeeper.evaluations.providers.registry import provider_names
from promptkeeper.evaluations.schemas import RunCreate
from promptkeeper.evaluations.suites import get_suite, get_suite_version
from promptkeeper.prompts.models import Prompt
from promptkeeper.prompts.service import get_prompt, get_version

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunQueued:
    """Post-commit event: a run waits for a worker (the in-process worker wakes up at once)."""

    run_id: int


def create_run(
    *, session: Session, actor: Actor, name: str, data: RunCreate, default_concurrency: int
) -> EvalRun:
    prompt = get_prompt(session=session, project_id=actor.project_id, name=name)
    version = get_version(session=session, prompt=prompt, number=data.version or prompt.head_version)
    suite = get_suite(session=session, project_id=actor.project_id, name=data.suite)
    suite_version = get_suite_version(session=session, suite=suite, number=data.suite_version)
    if suite_version.case_count == 0:
        raise ValidationFailed(
            f"body.suite: suite '{suite.name}' version {suite_version.number} has no cases",
            details={"field": "body.suite"},
        )
    known = provider_names()
    for field, provider in (("provider", data.provider), ("judge_provider", data.judge_provider)):
        if provider is not None and provider not in known:
            raise ValidationFailed(
                f"body.{field}: unknown provider '{provider}'; known: {', '.join(known)}",
                details={"field": f"body.{field}"},
            )
    model = data.model or str(version.content.get("config", {}).get("model") or "")
    if not model and data.provider != "local":
        raise ValidationFailed(
            "body.model: name a model (the version's config has none)", details={"field": "body.model"}
        )
    run = EvalRun(
        project_id=actor.project_id,
        prompt_id=prompt.id,
        prompt_version=version.number,
        suite_id=suite.id,
        suite_version=suite_version.number,
        repeats=data.repeats,
        provider=data.provider,
        model=model or "local",
        params={
            "model": data.params,
            "concurrency": data.concurrency or default_concurrency,
            "judge_provider": data.judge_provider or data.provider,
            "judge_model": data.judge_model or model or "local",
            "judge_params": data.judge_params,
            "prices": data.prices,
        },
        total=suite_version.case_count * data.repeats,
        created_by=actor.name,
    )
    session.add(run)
    session.flush()
    record(
        session=session,
        actor=actor,
        action="evaluation.created",
        target_type="evaluation",
        target=f"{prompt.name}@{version.number}#{run.id}",
        prompt=prompt.name,
        after={
            "run": run.id,
            "version": version.number,
            "suite": suite.name,
            "suite_version": suite_version.number,
            "provider": run.provider,
            "model": run.model,
            "repeats": run.repeats,
        },
    )
    emit(session, RunQueued(run.id))
    return run


def get_run(*, session: Session, project_id: int, run_id: int) -> EvalRun:
    run = session.scalar(select(EvalRun).where(EvalRun.id == run_id, EvalRun.project_id == project_id))
    if run is None:
        raise NotFound(f"evaluation run {run_id} not found", details={"run": run_id})
    return run


def run_names(session: Session, run: EvalRun) -> tuple[str, str]:
    """The prompt's and the suite's names of a run."""
    prompt = session.get(Prompt, run.prompt_id)
    suite = session.get(EvalSuite, run.suite_id)
    assert prompt is not None and suite is not None
    return prompt.name, suite.name


def list_runs(
    *,
    session: Session,
    project_id: int,
    name: str,
    version: int | None = None,
    suite: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[EvalRun], int]:
    prompt = get_prompt(session=session, project_id=project_id, name=name)
    query = select(EvalRun).where(EvalRun.prompt_id == prompt.id)
    if version is not None:
        query = query.where(EvalRun.prompt_version == version)
    if suite is not None:
        query = query.where(
            EvalRun.suite_id == get_suite(session=session, project_id=project_id, name=suite).id
        )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(EvalRun.id.desc()).limit(limit).offset(offset))
    return list(rows), total


def list_results(
    *, session: Session, run: EvalRun, failed_only: bool = False, limit: int = 50, offset: int = 0
) -> tuple[list[EvalResult], int]:
    query = select(EvalResult).where(EvalResult.run_id == run.id)
    if failed_only:
        query = query.where(EvalResult.passed.is_(False))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(EvalResult.id).limit(limit).offset(offset))
    return list(rows), total


def _case_means(session: Session, run: EvalRun) -> dict[str, dict[str, float]]:
    """Per case, per scorer: the mean value over repeats."""
    sums: dict[str, dict[str, list[float]]] = {}
    for result in session.scalars(select(EvalResult).where(EvalResult.run_id == run.id)):
        for item in result.scores:
            sums.setdefault(result.case_key, {}).setdefault(item["scorer"], []).append(float(item["value"]))
    return {case: {s: sum(v) / len(v) for s, v in by.items()} for case, by in sums.items()}


def compare_runs(
    *, session: Session, baseline: EvalRun, candidate: EvalRun, tolerance: float = 1e-9
) -> dict[str, Any]:
    """Per-case regressions and improvements, and the mean difference per scorer with its interval."""
    if (baseline.suite_id, baseline.suite_version) != (candidate.suite_id, candidate.suite_version):
        raise ValidationFailed(
            "query.baseline: runs on different suites or suite versions cannot be compared case by case",
            details={"field": "query.baseline"},
        )
    before, after = _case_means(session, baseline), _case_means(session, candidate)
    regressions, improvements = [], []
    paired: dict[str, tuple[list[float], list[float]]] = {}
    for case in sorted(set(before) & set(after)):
        for scorer in sorted(set(before[case]) & set(after[case])):
            b, a = before[case][scorer], after[case][scorer]
            pair = paired.setdefault(scorer, ([], []))
            pair[0].append(b)
            pair[1].append(a)
            item = {"case": case, "scorer": scorer, "baseline": b, "candidate": a}
            if a < b - tolerance:
                regressions.append({**item, "change": "regressed"})
            elif a > b + tolerance:
                improvements.append({**item, "change": "improved"})
    scorers: dict[str, dict[str, Any]] = {}
    for scorer, (b_values, a_values) in paired.items():
        difference, interval = paired_difference(b_values, a_values)
        scorers[scorer] = {
            "baseline_mean": sum(b_values) / len(b_values),
            "candidate_mean": sum(a_values) / len(a_values),
            "difference": difference,
            "difference_ci": [interval.low, interval.high],
            "cases": len(b_values),
        }
    return {
        "baseline": baseline.id,
        "candidate": candidate.id,
        "scorers": scorers,
        "regressions": regressions,
        "improvements": improvements,
    }
