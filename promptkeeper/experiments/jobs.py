"""Scheduled work on running experiments: bandit weight updates and guardrail stops.

Every `experiment_update_interval` seconds (default 300) each running bandit experiment gets new
weights from its primary metric (after `burn_in` units per arm; each arm keeps at least
`min_share`), and each running experiment with `stop_on_guardrail` is stopped (decision
`keep_control`) when a candidate is significantly worse on a guardrail. Both are release changes
made by the system actor `experiments`, so they are in the deployment history and the audit log and
reach every server and SDK like any other change.

This module holds what a round does; `promptkeeper.worker.schedule` calls it on the clock. Several
processes may run the scheduler: each change happens under the prompt's row lock and re-checks,
under it, that it is still due, so a round is applied once.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from sqlalchemy import or_, select

from promptkeeper.access.service import Actor
from promptkeeper.core import bandits
from promptkeeper.db.base import utcnow
from promptkeeper.db.engine import Database
from promptkeeper.experiments import aggregation, analysis, metrics, service
from promptkeeper.experiments.models import Experiment
from promptkeeper.experiments.schemas import ExperimentStop

log = logging.getLogger(__name__)
SYSTEM_ACTOR = "experiments"


def due(database: Database) -> list[int]:
    """Running experiments with scheduled work: bandits, and those that stop on guardrails."""
    with database.session() as session:
        rows = session.scalars(
            select(Experiment.id).where(
                Experiment.status == "running",
                or_(Experiment.mode != "fixed", Experiment.stop_on_guardrail.is_(True)),
            )
        )
        return list(rows)


def new_weights(
    experiment: Experiment, moments: list[aggregation.Moments], higher_is_better: bool, kind: str
) -> list[float] | None:
    """The next allocation, or None while an arm is still in its burn-in."""
    if min(m.n for m in moments) < experiment.burn_in:
        return None
    k = len(moments)
    floor = min(experiment.min_share, 1.0 / k)
    rng = random.Random(f"{experiment.seed}:{len(experiment.weight_history)}")
    if kind == "binary":
        wins = [round(m.total) for m in moments]
        losses = [m.n - w for m, w in zip(moments, wins, strict=True)]
        if not higher_is_better:
            wins, losses = losses, wins
        if experiment.mode == "ucb":
            return bandits.ucb1_weights(wins, [m.n for m in moments], floor=floor)
        return bandits.thompson_weights(wins, losses, rng=rng, floor=floor)
    sign = 1.0 if higher_is_better else -1.0
    return bandits.gaussian_thompson_weights(
        [sign * m.mean for m in moments],
        [m.variance for m in moments],
        [m.n for m in moments],
        rng=rng,
        floor=floor,
    )


def update_bandit(database: Database, experiment_id: int, interval: float) -> bool:
    """One bandit round if it is due; True when the weights changed."""
    with database.write_session() as session:
        found = session.get(Experiment, experiment_id)
        if found is None or found.mode == "fixed":
            return False
        actor = Actor.system(SYSTEM_ACTOR, found.project_id)
        experiment, prompt, env = service.lock_experiment(session, actor, experiment_id)
        recent = utcnow() - timedelta(seconds=interval * 0.9)
        if experiment.status != "running" or (
            experiment.weights_updated_at is not None and experiment.weights_updated_at > recent
        ):
            return False
        spec = metrics.metric_spec(
            session=session,
            project_id=experiment.project_id,
            name=experiment.primary_metric,
            field="primary_metric",
        )
        data = aggregation.aggregate(session, experiment, [spec])
        weights = new_weights(experiment, data.moments[spec.name], spec.higher_is_better, spec.kind)
        if weights is None:
            return False
        weights = [round(w, 6) for w in weights]
        service.apply_weights(
            session=session,
            actor=actor,
            experiment=experiment,
            prompt=prompt,
            env=env,
            weights=weights,
            reason=f"{experiment.mode} update from {sum(m.n for m in data.moments[spec.name])} units",
        )
        session.commit()
        return True


def check_guardrails(database: Database, experiment_id: int) -> bool:
    """Stop an experiment whose candidate is significantly worse on a guardrail; True if stopped."""
    with database.write_session() as session:
        experiment = session.get(Experiment, experiment_id)
        if experiment is None or experiment.status != "running" or not experiment.stop_on_guardrail:
            return False
        result = analysis.results(session=session, experiment=experiment)
        if not result.guardrail_violations:
            return False
        what = ", ".join(f"{v['variant']} worse on {v['metric']}" for v in result.guardrail_violations)
        service.stop_experiment(
            session=session,
            actor=Actor.system(SYSTEM_ACTOR, experiment.project_id),
            experiment_id=experiment_id,
            data=ExperimentStop(
                decision="keep_control", reason=f"stopped automatically: guardrail violated ({what})"
            ),
        )
        session.commit()
        log.warning("experiment %s stopped: guardrail violated (%s)", experiment_id, what)
        return True
