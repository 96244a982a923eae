"""Experiments: create (draft) → start (running) → change weights → stop with a decision.

Starting, changing weights and stopping are release changes: each appends a deployment-history row
(`experiment_start` / `experiment_update` / `experiment_stop`, linked to the experiment), bumps the
release revision and so propagates to every server and SDK exactly like a rollback. The control is
the version the environment serves; it stays the release's version while the experiment runs, so
"what ran at T" keeps answering with the control (the history row says an experiment ran).

A deploy or rollback of the same `(prompt, environment)` while an experiment runs ends it
(decision `inconclusive`): the new release no longer carries the experiment, and the registry calls
back into this module (`releases.CHANGE_HOOKS`) to record that.

The pre-registered sample size is computed once, at creation, from alpha, power, the minimum
detectable effect and the baseline (binary) or standard deviation (continuous) of the primary metric,
with alpha split over the candidates (Bonferroni, conservative next to the Holm correction the
analysis applies), and never below 500 units per variant.
"""

from __future__ import annotations

import secrets

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from promptkeeper.access.service import Actor
from promptkeeper.audit.service import record
from promptkeeper.core import experiment_stats
from promptkeeper.db.base import utcnow
from promptkeeper.deployments import policy as deployments
from promptkeeper.deployments import releases
from promptkeeper.errors import Conflict, NotFound, ValidationFailed
from promptkeeper.experiments.metrics import MetricSpec, metric_spec
from promptkeeper.experiments.models import Experiment
from promptkeeper.experiments.schemas import ExperimentCreate, ExperimentStop
from promptkeeper.prompts.models import Deployment, Environment, Prompt
from promptkeeper.prompts.service import get_environment, get_prompt, get_version
from promptkeeper.workflow import reviews

CONTROL = "control"
EXPERIMENT_ACTIONS = frozenset({"experiment_start", "experiment_update", "experiment_stop"})


# -- reading -----------------------------------------------------------------------------------------


def get_experiment(*, session: Session, project_id: int, experiment_id: int) -> Experiment:
    experiment = session.scalar(
        select(Experiment).where(Experiment.id == experiment_id, Experiment.project_id == project_id)
    )
    if experiment is None:
        raise NotFound(f"experiment {experiment_id} not found", details={"experiment_id": experiment_id})
    return experiment


def names_of(session: Session, experiment: Experiment) -> tuple[str, str]:
    """The prompt's and the environment's names."""
    prompt = session.get(Prompt, experiment.prompt_id)
    env = session.get(Environment, experiment.environment_id)
    assert prompt is not None and env is not None  # foreign keys
    return prompt.name, env.name


def list_experiments(
    *,
    session: Session,
    project_id: int,
    prompt: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Experiment], int]:
    query = select(Experiment).where(Experiment.project_id == project_id)
    if prompt is not None:
        prompt_row = get_prompt(session=session, project_id=project_id, name=prompt)
        query = query.where(Experiment.prompt_id == prompt_row.id)
    if status is not None:
        query = query.where(Experiment.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Experiment.id.desc()).limit(limit).offset(offset))
    return list(rows), total


def running_experiment(*, session: Session, prompt_id: int, environment_id: int) -> Experiment | None:
    return session.scalar(
        select(Experiment).where(
            Experiment.prompt_id == prompt_id,
            Experiment.environment_id == environment_id,
            Experiment.status == "running",
        )
    )


# -- creating ------------------------------------------------------------------------------------------


def planned_sample_size(spec: MetricSpec, data: ExperimentCreate) -> int:
    """Units per variant for the primary metric (see the module docstring)."""
    alpha = data.alpha / len(data.candidates)
    try:
        if spec.kind == "binary":
            if data.baseline is None:
                raise ValidationFailed(
                    f"body.baseline: the primary metric '{spec.name}' is binary: give the control's "
                    "expected rate (e.g. 0.5) to compute the sample size",
                    details={"field": "body.baseline"},
                )
            return experiment_stats.sample_size_proportions(
                data.baseline, data.mde, alpha, data.power, relative=data.mde_relative
            )
        if data.std_dev is None:
            raise ValidationFailed(
                f"body.std_dev: the primary metric '{spec.name}' is continuous: give its expected "
                "standard deviation per unit to compute the sample size",
                details={"field": "body.std_dev"},
            )
        if data.mde_relative:
            raise ValidationFailed(
                "body.mde_relative: a relative effect needs a binary primary metric; give 'mde' in "
                f"the units of '{spec.name}'",
                details={"field": "body.mde_relative"},
            )
        return experiment_stats.sample_size_means(data.std_dev, data.mde, alpha, data.power)
    except ValueError as exc:
        raise ValidationFailed(f"body.mde: {exc}", details={"field": "body.mde"}) from None


def create_experiment(*, session: Session, actor: Actor, data: ExperimentCreate) -> Experiment:
    """A draft experiment; the control is what the environment serves now."""
    prompt = get_prompt(session=session, project_id=actor.project_id, name=data.prompt)
    env = get_environment(session=session, project_id=actor.project_id, name=data.environment)
    release = releases.current_release(session=session, prompt=prompt, environment=env)
    if release is None:
        raise Conflict(
            f"nothing of '{data.prompt}' is deployed to '{data.environment}': deploy the control first",
            details={"environment": data.environment},
        )
    spec = metric_spec(
        session=session, project_id=actor.project_id, name=data.primary_metric, field="body.primary_metric"
    )
    for index, name in enumerate(data.guardrails):
        metric_spec(
            session=session, project_id=actor.project_id, name=name, field=f"body.guardrails[{index}]"
        )
    if data.mode == "ucb" and spec.kind != "binary":
        raise ValidationFailed(
            "body.mode: 'ucb' needs a binary primary metric; use 'thompson' for continuous ones",
            details={"field": "body.mode"},
        )
    keys = [CONTROL]
    versions = [release.version_number]
    for index, candidate in enumerate(data.candidates):
        field = f"body.candidates[{index}]"
        get_version(session=session, prompt=prompt, number=candidate.version)
        if candidate.version in versions:
            raise ValidationFailed(
                f"{field}.version: version {candidate.version} is already in the experiment "
                f"(the control is version {release.version_number}, the live one)",
                details={"field": f"{field}.version"},
            )
        key = candidate.key or f"v{candidate.version}"
        if key in keys:
            raise ValidationFailed(f"{field}.key: '{key}' is used twice", details={"field": f"{field}.key"})
        keys.append(key)
        versions.append(candidate.version)
    raw = [data.control_weight] + [c.weight for c in data.candidates]
    weights = _normalized(raw)
    planned = planned_sample_size(spec, data)
    experiment = Experiment(
        project_id=actor.project_id,
        prompt_id=prompt.id,
        environment_id=env.id,
        name=data.name,
        hypothesis=data.hypothesis,
        status="draft",
        mode=data.mode,
        seed=data.seed or f"pk-{secrets.token_hex(8)}",
        hash_version=2,
        coverage=data.coverage,
        variants=[
            {"key": k, "version": v, "weight": w} for k, v, w in zip(keys, versions, weights, strict=True)
        ],
        primary_metric=data.primary_metric,
        guardrails=list(data.guardrails),
        alpha=data.alpha,
        power=data.power,
        mde=data.mde,
        mde_relative=data.mde_relative,
        baseline=data.baseline,
        std_dev=data.std_dev,
        planned_sample_size=planned,
        sequential=data.sequential,
        stop_on_guardrail=data.stop_on_guardrail,
        burn_in=data.burn_in,
        min_share=data.min_share,
        weight_history=[],
        created_by=actor.name,
    )
    session.add(experiment)
    session.flush()
    record(
        session=session,
        actor=actor,
        action="experiment.created",
        target_type="experiment",
        target=f"{experiment.id}",
        prompt=prompt.name,
        environment=env.name,
        after={"name": data.name, "variants": experiment.variants, "planned_sample_size": planned},
    )
    return experiment


def _normalized(weights: list[float]) -> list[float]:
    total = sum(weights)
    return [round(w / total, 6) for w in weights]


# -- lifecycle -------------------------------------------------------------------------------------------


def lock_experiment(
    session: Session, actor: Actor, experiment_id: int
) -> tuple[Experiment, Prompt, Environment]:
    """The experiment with its prompt row locked (the lock every release change takes)."""
    experiment = get_experiment(session=session, project_id=actor.project_id, experiment_id=experiment_id)
    prompt_name, env_name = names_of(session, experiment)
    prompt = get_prompt(session=session, project_id=actor.project_id, name=prompt_name, lock=True)
    env = get_environment(session=session, project_id=actor.project_id, name=env_name)
    session.refresh(experiment)  # re-read under the lock: a concurrent stop may have committed
    return experiment, prompt, env


def _require_status(experiment: Experiment, *allowed: str, doing: str) -> None:
    if experiment.status not in allowed:
        raise Conflict(
            f"experiment {experiment.id} is {experiment.status}: cannot {doing}",
            details={"experiment_id": experiment.id, "status": experiment.status},
        )


def _release_change(
    session: Session,
    actor: Actor,
    experiment: Experiment,
    prompt: Prompt,
    env: Environment,
    *,
    action: str,
    version: int,
    reason: str,
) -> Deployment:
    release = releases.current_release(session=session, prompt=prompt, environment=env)
    return releases.change_release(
        session=session,
        prompt=prompt,
        environment=env,
        version=version,
        action=action,
        actor=actor,
        reason=reason or f"experiment {experiment.id}: {experiment.name}",
        release=release,
        experiment_id=experiment.id,
    )


def _log_weights(experiment: Experiment, weights: list[float]) -> None:
    now = utcnow()
    experiment.weight_history = [*experiment.weight_history, {"at": now.isoformat(), "weights": weights}]
    experiment.weights_updated_at = now
    experiment.updated_at = now


def start_experiment(*, session: Session, actor: Actor, experiment_id: int, reason: str = "") -> Experiment:
    experiment, prompt, env = lock_experiment(session, actor, experiment_id)
    _require_status(experiment, "draft", doing="start it")
    release = releases.current_release(session=session, prompt=prompt, environment=env)
    control = experiment.variants[0]["version"]
    if release is None or release.version_number != control:
        live = release.version_number if release is not None else None
        raise Conflict(
            f"the control, version {control}, is no longer what '{env.name}' serves (now: {live}); "
            "create a new experiment against the live version",
            details={"control": control, "live": live},
        )
    other = running_experiment(session=session, prompt_id=prompt.id, environment_id=env.id)
    if other is not None:
        raise Conflict(
            f"experiment {other.id} ('{other.name}') already runs on '{prompt.name}' in '{env.name}'",
            details={"experiment_id": other.id},
        )
    for variant in experiment.variants[1:]:
        deployments.check_experiment_candidate(
            session=session, actor=actor, prompt=prompt, env=env, version=variant["version"]
        )
    deployment = _release_change(
        session, actor, experiment, prompt, env, action="experiment_start", version=control, reason=reason
    )
    experiment.status = "running"
    experiment.started_at = deployment.at
    experiment.release_revision = deployment.revision
    _log_weights(experiment, [v["weight"] for v in experiment.variants])
    return experiment


def set_weights(
    *,
    session: Session,
    actor: Actor,
    experiment_id: int,
    weights: dict[str, float],
    reason: str = "",
) -> Experiment:
    """New traffic weights (relative, for every variant); live at once on a running experiment."""
    experiment, prompt, env = lock_experiment(session, actor, experiment_id)
    _require_status(experiment, "draft", "running", doing="change its weights")
    keys = [v["key"] for v in experiment.variants]
    unknown = sorted(set(weights) - set(keys))
    missing = [k for k in keys if k not in weights]
    if unknown or missing:
        raise ValidationFailed(
            f"body.weights: give a weight for each variant ({', '.join(keys)})"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            + (f"; missing: {', '.join(missing)}" if missing else ""),
            details={"field": "body.weights", "variants": keys},
        )
    bad = [k for k, w in weights.items() if not w > 0]
    if bad:
        raise ValidationFailed(
            f"body.weights: weights must be positive ({', '.join(bad)})", details={"field": "body.weights"}
        )
    return apply_weights(
        session=session,
        actor=actor,
        experiment=experiment,
        prompt=prompt,
        env=env,
        weights=_normalized([weights[k] for k in keys]),
        reason=reason,
    )


def apply_weights(
    *,
    session: Session,
    actor: Actor,
    experiment: Experiment,
    prompt: Prompt,
    env: Environment,
    weights: list[float],
    reason: str,
) -> Experiment:
    """Store and (when running) publish new weights; the caller holds the prompt lock."""
    before = [v["weight"] for v in experiment.variants]
    experiment.variants = [{**v, "weight": w} for v, w in zip(experiment.variants, weights, strict=True)]
    if experiment.status == "running":
        deployment = _release_change(
            session,
            actor,
            experiment,
            prompt,
            env,
            action="experiment_update",
            version=experiment.variants[0]["version"],
            reason=reason or f"experiment {experiment.id}: weights {before} -> {weights}",
        )
        experiment.release_revision = deployment.revision
        _log_weights(experiment, weights)
    else:
        experiment.updated_at = utcnow()
        record(
            session=session,
            actor=actor,
            action="experiment.updated",
            target_type="experiment",
            target=f"{experiment.id}",
            prompt=prompt.name,
            environment=env.name,
            before={"weights": before},
            after={"weights": weights},
        )
    return experiment


def stop_experiment(
    *, session: Session, actor: Actor, experiment_id: int, data: ExperimentStop
) -> Experiment:
    """Stop with a decision; `ship` deploys the chosen candidate in the same change (policies apply)."""
    experiment, prompt, env = lock_experiment(session, actor, experiment_id)
    _require_status(experiment, "running", doing="stop it")
    by_key = {v["key"]: v for v in experiment.variants}
    version = experiment.variants[0]["version"]
    review = None
    if data.decision == "ship":
        if data.variant is None or data.variant not in by_key or data.variant == CONTROL:
            candidates = [v["key"] for v in experiment.variants[1:]]
            raise ValidationFailed(
                f"body.variant: name the candidate to ship (one of {', '.join(candidates)})",
                details={"field": "body.variant", "candidates": candidates},
            )
        version = by_key[data.variant]["version"]
        review = deployments.authorize(
            session=session,
            actor=actor,
            prompt=prompt,
            env=env,
            version=version,
            reason=data.reason,
            review_id=data.review_id,
        )
    elif data.variant is not None:
        raise ValidationFailed(
            f"body.variant: only the decision 'ship' names a variant (decision: {data.decision})",
            details={"field": "body.variant"},
        )
    _finish(experiment, data.decision, data.variant if data.decision == "ship" else None, data.reason)
    deployment = _release_change(
        session, actor, experiment, prompt, env, action="experiment_stop", version=version, reason=data.reason
    )
    if review is not None:
        reviews.mark_deployed(
            session=session,
            actor=actor,
            prompt=prompt,
            review=review,
            environment=env.name,
            deployment_id=deployment.id,
        )
    return experiment


def _finish(experiment: Experiment, decision: str, variant: str | None, reason: str) -> None:
    now = utcnow()
    experiment.status = "stopped"
    experiment.decision = decision
    experiment.decision_variant = variant
    experiment.decision_reason = reason
    experiment.stopped_at = now
    experiment.updated_at = now


def _end_superseded(session: Session, deployment: Deployment, actor: Actor) -> None:
    """Release-change hook: a deploy or rollback around a running experiment ends it."""
    if deployment.action in EXPERIMENT_ACTIONS:
        return
    experiment = running_experiment(
        session=session, prompt_id=deployment.prompt_id, environment_id=deployment.environment_id
    )
    if experiment is None:
        return
    reason = (
        f"ended by {deployment.action} of version {deployment.version_number} "
        f"(history #{deployment.id}) while it ran"
    )
    _finish(experiment, "inconclusive", None, reason)
    record(
        session=session,
        actor=actor,
        action="experiment.stopped",
        target_type="experiment",
        target=f"{experiment.id}",
        after={"decision": "inconclusive", "reason": reason},
        severity="warning",
    )


releases.CHANGE_HOOKS.append(_end_superseded)
