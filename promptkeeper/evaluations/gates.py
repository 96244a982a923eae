"""Promotion gates: an environment accepts a version only with a passing evaluation run.

This module reads gates and runs and decides; it imports no workflow code, because the deploy
policy (`deployments.policy`) calls it: every deploy, promote and review deploy to a gated
environment passes through `check_gate`. (Automatic promotion, which deploys, lives with the runs.)

A gate names a suite and, per scorer, a minimum mean score and a maximum drop of the mean against
the version the environment serves now (the baseline), both evaluated on the same suite version.
The evidence is the newest succeeded run of the candidate on the gate's suite *version*: the one
the gate pins, or else the suite's current version. A run on an older suite version says nothing
about today's cases (their expected answers may all have changed), so it does not count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from promptkeeper.access.service import Actor
from promptkeeper.audit.service import record
from promptkeeper.core.fields import path_segment
from promptkeeper.db.base import utcnow
from promptkeeper.errors import GateFailed, NotFound, ValidationFailed
from promptkeeper.evaluations.models import EvalGate, EvalRun, EvalSuite
from promptkeeper.evaluations.providers.registry import provider_names
from promptkeeper.evaluations.schemas import GateSet
from promptkeeper.prompts.models import Environment, Prompt, Release
from promptkeeper.prompts.service import get_environment


@dataclass
class GateVerdict:
    environment: str
    suite: str
    suite_version: int
    run_id: int | None
    baseline_run_id: int | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def message(self, prompt: str, version: int) -> str:
        parts = []
        for failure in self.failures:
            if failure["kind"] == "no_run":
                parts.append(failure["message"])
            elif failure["kind"] == "min_score":
                parts.append(
                    f"{failure['scorer']} {failure['actual']:.3f} < minimum {failure['required']:.3f}"
                )
            elif failure["kind"] == "max_drop":
                parts.append(
                    f"{failure['scorer']} dropped {failure['actual']:.3f} vs version "
                    f"{failure['baseline_version']} (allowed {failure['required']:.3f})"
                )
            else:
                parts.append(failure["message"])
        return (
            f"the evaluation gate of '{self.environment}' (suite '{self.suite}') refuses "
            f"version {version} of '{prompt}': " + "; ".join(parts)
        )


def get_gate(*, session: Session, environment: Environment) -> EvalGate | None:
    return session.scalar(select(EvalGate).where(EvalGate.environment_id == environment.id))


def set_gate(
    *, session: Session, actor: Actor, environment: str, data: GateSet
) -> tuple[EvalGate, Environment]:
    env = get_environment(session=session, project_id=actor.project_id, name=environment)
    suite = session.scalar(
        select(EvalSuite).where(EvalSuite.project_id == actor.project_id, EvalSuite.name == data.suite)
    )
    if suite is None:
        raise NotFound(f"evaluation suite '{data.suite}' not found", details={"suite": data.suite})
    for what, values in (("min_scores", data.min_scores), ("max_drop", data.max_drop)):
        for scorer, value in values.items():
            if not 0 <= value <= 1:
                raise ValidationFailed(
                    f"body.{what}.{scorer}: must be between 0 and 1", details={"field": f"body.{what}"}
                )
    if data.suite_version is not None and data.suite_version > suite.head_version:
        raise ValidationFailed(
            f"body.suite_version: suite '{suite.name}' has no version {data.suite_version} "
            f"(latest is {suite.head_version})",
            details={"field": "body.suite_version"},
        )
    if data.auto_run is not None:
        known = provider_names()
        for name, provider in (
            ("provider", data.auto_run.provider),
            ("judge_provider", data.auto_run.judge_provider),
        ):
            if provider is not None and provider not in known:
                raise ValidationFailed(
                    f"body.auto_run.{name}: unknown provider '{provider}'; known: {', '.join(known)}",
                    details={"field": f"body.auto_run.{name}"},
                )
    if data.auto_promote and env.protected:
        raise ValidationFailed(
            f"body.auto_promote: '{environment}' is protected; deploys there need an approved review",
            details={"field": "body.auto_promote"},
        )
    gate = get_gate(session=session, environment=env)
    before = _gate_summary(gate, None) if gate is not None else None
    if gate is None:
        gate = EvalGate(
            project_id=actor.project_id, environment_id=env.id, suite_id=suite.id, updated_by=actor.name
        )
        session.add(gate)
    gate.suite_id = suite.id
    gate.min_scores = dict(data.min_scores)
    gate.max_drop = dict(data.max_drop)
    gate.auto_promote = data.auto_promote
    gate.suite_version = data.suite_version
    gate.auto_run = data.auto_run.model_dump(exclude_none=True) if data.auto_run is not None else None
    gate.updated_by = actor.name
    gate.updated_at = utcnow()
    session.flush()
    record(
        session=session,
        actor=actor,
        action="gate.set",
        target_type="environment",
        target=environment,
        environment=environment,
        before=before,
        after=_gate_summary(gate, suite.name),
    )
    return gate, env


def delete_gate(*, session: Session, actor: Actor, environment: str) -> None:
    env = get_environment(session=session, project_id=actor.project_id, name=environment)
    gate = get_gate(session=session, environment=env)
    if gate is None:
        raise NotFound(f"'{environment}' has no evaluation gate", details={"environment": environment})
    before = _gate_summary(gate, None)
    session.delete(gate)
    session.flush()
    record(
        session=session,
        actor=actor,
        action="gate.removed",
        target_type="environment",
        target=environment,
        environment=environment,
        before=before,
        severity="warning",
    )


def _gate_summary(gate: EvalGate, suite: str | None) -> dict[str, Any]:
    return {
        "suite_id": gate.suite_id,
        **({"suite": suite} if suite else {}),
        "min_scores": gate.min_scores,
        "max_drop": gate.max_drop,
        "auto_promote": gate.auto_promote,
        "suite_version": gate.suite_version,
        "auto_run": gate.auto_run,
    }


def required_suite_version(gate: EvalGate, suite: EvalSuite) -> int:
    """The suite version whose runs count: the pinned one, or the suite's current version."""
    return gate.suite_version if gate.suite_version is not None else suite.head_version


def latest_run(
    *, session: Session, prompt_id: int, version: int, suite_id: int, suite_version: int | None = None
) -> EvalRun | None:
    query = select(EvalRun).where(
        EvalRun.prompt_id == prompt_id,
        EvalRun.prompt_version == version,
        EvalRun.suite_id == suite_id,
        EvalRun.status == "succeeded",
    )
    if suite_version is not None:
        query = query.where(EvalRun.suite_version == suite_version)
    return session.scalar(query.order_by(EvalRun.id.desc()).limit(1))


def missing_runs(
    *, session: Session, gate: EvalGate, prompt: Prompt, environment: Environment, version: int
) -> list[int]:
    """The versions whose succeeded run on the required suite version the gate lacks: the
    candidate's, and the baseline's when the gate limits the drop against it."""
    suite = session.get(EvalSuite, gate.suite_id)
    assert suite is not None
    required = required_suite_version(gate, suite)
    wanted = [version]
    release = session.scalar(
        select(Release).where(Release.prompt_id == prompt.id, Release.environment_id == environment.id)
    )
    if gate.max_drop and release is not None and release.version_number != version:
        wanted.append(release.version_number)
    return [
        number
        for number in wanted
        if latest_run(
            session=session, prompt_id=prompt.id, version=number, suite_id=suite.id, suite_version=required
        )
        is None
    ]


def _mean(run: EvalRun, scorer: str) -> float | None:
    value = run.summary.get("scorers", {}).get(scorer, {}).get("mean")
    return float(value) if value is not None else None


def evaluate_gate(
    *,
    session: Session,
    gate: EvalGate,
    prompt: Prompt,
    environment: Environment,
    version: int,
    run: EvalRun | None = None,
) -> GateVerdict:
    """Whether `version` passes `gate`; uses `run` as the evidence, or the newest succeeded run
    on the suite version the gate requires."""
    suite = session.get(EvalSuite, gate.suite_id)
    assert suite is not None
    required = required_suite_version(gate, suite)
    verdict = GateVerdict(environment=environment.name, suite=suite.name, suite_version=required, run_id=None)
    if run is None:
        run = latest_run(
            session=session, prompt_id=prompt.id, version=version, suite_id=suite.id, suite_version=required
        )
    elif run.suite_version != required:
        verdict.run_id = run.id
        verdict.failures.append(
            {
                "kind": "outdated_suite",
                "message": f"run {run.id} used suite '{suite.name}' version {run.suite_version}; "
                f"the gate requires version {required}",
            }
        )
        return verdict
    if run is None:
        failure: dict[str, Any] = {
            "kind": "no_run",
            "version": version,
            "message": f"no succeeded run of version {version} on suite '{suite.name}' version "
            f"{required} (run one: POST /v1/prompts/{path_segment(prompt.name)}/evaluations)",
        }
        outdated = latest_run(session=session, prompt_id=prompt.id, version=version, suite_id=suite.id)
        if outdated is not None:
            failure["message"] += (
                f"; run {outdated.id} used version {outdated.suite_version} of the suite, "
                "which has changed since"
            )
            failure["outdated_run"] = {"id": outdated.id, "suite_version": outdated.suite_version}
        verdict.failures.append(failure)
        return verdict
    verdict.run_id = run.id
    for scorer, minimum in sorted(gate.min_scores.items()):
        actual = _mean(run, scorer)
        if actual is None:
            verdict.failures.append(
                {
                    "kind": "missing_scorer",
                    "scorer": scorer,
                    "message": f"run {run.id} has no scorer '{scorer}'",
                }
            )
        elif actual < minimum:
            verdict.failures.append(
                {"kind": "min_score", "scorer": scorer, "required": minimum, "actual": actual}
            )
    release = session.scalar(
        select(Release).where(Release.prompt_id == prompt.id, Release.environment_id == environment.id)
    )
    if gate.max_drop and release is not None and release.version_number != version:
        baseline = latest_run(
            session=session,
            prompt_id=prompt.id,
            version=release.version_number,
            suite_id=suite.id,
            suite_version=run.suite_version,
        )
        if baseline is None:
            verdict.failures.append(
                {
                    "kind": "no_run",
                    "version": release.version_number,
                    "message": f"no succeeded run of the baseline, version {release.version_number} "
                    f"(live in '{environment.name}'), on suite '{suite.name}' version {run.suite_version} "
                    "to compare with",
                }
            )
            return verdict
        verdict.baseline_run_id = baseline.id
        for scorer, allowed in sorted(gate.max_drop.items()):
            before, after = _mean(baseline, scorer), _mean(run, scorer)
            if before is None or after is None:
                verdict.failures.append(
                    {
                        "kind": "missing_scorer",
                        "scorer": scorer,
                        "message": f"scorer '{scorer}' missing from a run",
                    }
                )
            elif before - after > allowed + 1e-12:
                verdict.failures.append(
                    {
                        "kind": "max_drop",
                        "scorer": scorer,
                        "required": allowed,
                        "actual": before - after,
                        "baseline_version": release.version_number,
                        "baseline": before,
                        "candidate": after,
                    }
                )
    return verdict


def check_gate(
    *, session: Session, prompt: Prompt, environment: Environment, version: int
) -> GateVerdict | None:
    """Raise `GateFailed` (409 `gate_failed`) naming the failing scorers and numbers, if any."""
    gate = get_gate(session=session, environment=environment)
    if gate is None:
        return None
    verdict = evaluate_gate(
        session=session, gate=gate, prompt=prompt, environment=environment, version=version
    )
    if not verdict.passed:
        raise GateFailed(
            verdict.message(prompt.name, version),
            details={
                "environment": environment.name,
                "suite": verdict.suite,
                "suite_version": verdict.suite_version,
                "run": verdict.run_id,
                "baseline_run": verdict.baseline_run_id,
                "failures": verdict.failures,
            },
        )
    return verdict
