"""Deploys that wait for their evaluation: a gate with `auto_run` starts the runs it needs.

Without `auto_run`, a deploy to a gated environment with no valid run is a `409 gate_failed`.
With it, every other policy (promotion path, role, reviews) is checked at once, the missing runs
are queued as ordinary evaluation jobs (the candidate's, and the baseline's when the gate limits
the drop), and the deploy is stored as a `PendingDeployment` row; the caller gets `202` with its
id. The worker that finishes the last of those runs settles it in the same transaction that
records the run's result: it deploys through `deployments.policy.deploy` with the requester as
actor, so the gate and every policy are checked again on the fresh evidence, or records why not.
Nothing lives in a process's memory: a restart, a dead worker or another instance changes nothing.

The prompt's row lock is taken before a pending row's, here and by the deploy path, so two workers
finishing a candidate's and a baseline's run at once never deadlock and never both wait.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from promptkeeper.access.service import Actor, Role
from promptkeeper.audit.service import record
from promptkeeper.core.fields import path_segment
from promptkeeper.db.base import utcnow
from promptkeeper.deployments import policy as deployments
from promptkeeper.deployments import releases
from promptkeeper.errors import Conflict, GateFailed, NotFound, PromptKeeperError, ValidationFailed
from promptkeeper.evaluations import gates, runs
from promptkeeper.evaluations.models import EvalRun, EvalSuite, PendingDeployment
from promptkeeper.evaluations.schemas import PendingDeploymentRead, RunCreate
from promptkeeper.prompts.models import Deployment, Environment, Prompt
from promptkeeper.prompts.service import get_environment, get_prompt, get_version

IN_FLIGHT = ("queued", "running")


def deploy(
    *,
    session: Session,
    actor: Actor,
    name: str,
    environment: str,
    version: int,
    default_concurrency: int,
    reason: str = "",
    expected_revision: int | None = None,
    review_id: int | None = None,
    override: bool = False,
    action: str = "deploy",
) -> Deployment | PendingDeployment:
    """Deploy now if every policy allows it; else, if only the evaluation is missing and the gate
    runs evaluations itself, queue the runs and return the pending deploy."""
    try:
        with session.begin_nested():
            return deployments.deploy(
                session=session,
                actor=actor,
                name=name,
                environment=environment,
                version=version,
                reason=reason,
                expected_revision=expected_revision,
                review_id=review_id,
                override=override,
                action=action,
            )
    except GateFailed as exc:
        prompt = get_prompt(session=session, project_id=actor.project_id, name=name, lock=True)
        env = get_environment(session=session, project_id=actor.project_id, name=environment)
        if not waits_for_evaluation(session=session, project_id=actor.project_id, failure=exc):
            raise
        gate = gates.get_gate(session=session, environment=env)
        assert gate is not None
        return _queue(
            session=session,
            actor=actor,
            prompt=prompt,
            env=env,
            version=version,
            missing=gates.missing_runs(
                session=session, gate=gate, prompt=prompt, environment=env, version=version
            ),
            reason=reason,
            expected_revision=expected_revision,
            review_id=review_id,
            action=action,
            default_concurrency=default_concurrency,
        )


def waits_for_evaluation(*, session: Session, project_id: int, failure: GateFailed) -> bool:
    """Whether a deploy refused with `failure` would wait for the gate's runs instead."""
    env = get_environment(session=session, project_id=project_id, name=str(failure.details["environment"]))
    gate = gates.get_gate(session=session, environment=env)
    failures = failure.details.get("failures", [])
    return gate is not None and gate.auto_run is not None and all(f["kind"] == "no_run" for f in failures)


def promote(
    *, session: Session, actor: Actor, name: str, source: str, target: str, **kwargs: Any
) -> Deployment | PendingDeployment:
    """Deploy to `target` what `source` serves now, waiting for the evaluation like `deploy`."""
    prompt = get_prompt(session=session, project_id=actor.project_id, name=name)
    release = releases.current_release(
        session=session,
        prompt=prompt,
        environment=get_environment(session=session, project_id=actor.project_id, name=source),
    )
    if release is None:
        raise Conflict(
            f"nothing of '{name}' is deployed to '{source}': there is nothing to promote",
            details={"environment": source},
        )
    return deploy(
        session=session,
        actor=actor,
        name=name,
        environment=target,
        version=release.version_number,
        action="promote",
        **kwargs,
    )


def _queue(
    *,
    session: Session,
    actor: Actor,
    prompt: Prompt,
    env: Environment,
    version: int,
    missing: list[int],
    reason: str,
    expected_revision: int | None,
    review_id: int | None,
    action: str,
    default_concurrency: int,
) -> PendingDeployment:
    get_version(session=session, prompt=prompt, number=version)
    deployments.authorize(
        session=session, actor=actor, prompt=prompt, env=env, version=version, review_id=review_id, gate=False
    )
    release = releases.current_release(session=session, prompt=prompt, environment=env)
    revision = release.revision if release is not None else 0
    if expected_revision is not None and expected_revision != revision:
        raise Conflict(
            f"'{env.name}' of '{prompt.name}' is at revision {revision}, not {expected_revision}",
            details={"revision": revision, "expected_revision": expected_revision},
        )
    waiting = session.scalar(
        select(PendingDeployment).where(
            PendingDeployment.prompt_id == prompt.id,
            PendingDeployment.environment_id == env.id,
            PendingDeployment.status == "waiting",
        )
    )
    if waiting is not None:
        if waiting.version == version:
            return waiting  # asking again for the same deploy is not a second deploy
        raise Conflict(
            f"pending deploy #{waiting.id} of version {waiting.version} of '{prompt.name}' to "
            f"'{env.name}' waits for its evaluation; cancel it first "
            f"(POST /v1/prompts/{path_segment(prompt.name)}/pending-deployments/{waiting.id}/cancel)",
            details={"pending_deployment": waiting.id, "version": waiting.version},
        )
    gate = gates.get_gate(session=session, environment=env)
    assert gate is not None and gate.auto_run is not None
    suite = session.get(EvalSuite, gate.suite_id)
    assert suite is not None
    suite_version = gates.required_suite_version(gate, suite)
    started = {
        number: _run_for(
            session, actor, prompt, suite, suite_version, number, gate.auto_run, default_concurrency
        )
        for number in missing
    }
    baseline = next((number for number in started if number != version), None)
    pending = PendingDeployment(
        project_id=prompt.project_id,
        prompt_id=prompt.id,
        environment_id=env.id,
        version=version,
        action=action,
        run_id=started.get(version),
        baseline_run_id=started[baseline] if baseline is not None else None,
        actor=actor.name,
        actor_role=actor.role.value,
        actor_key_id=actor.key_id,
        actor_user_id=actor.user_id,
        reason=reason,
        review_id=review_id,
        expected_revision=expected_revision,
        details={"suite": suite.name, "suite_version": suite_version},
    )
    session.add(pending)
    session.flush()
    _audit(session, actor, pending, prompt, env, "deployment.pending", "info")
    return pending


def _run_for(
    session: Session,
    actor: Actor,
    prompt: Prompt,
    suite: EvalSuite,
    suite_version: int,
    version: int,
    settings: dict[str, Any],
    default_concurrency: int,
) -> int:
    """A run of `version` on the suite version: one already queued or running, or a new one."""
    running = session.scalar(
        select(EvalRun.id)
        .where(
            EvalRun.prompt_id == prompt.id,
            EvalRun.prompt_version == version,
            EvalRun.suite_id == suite.id,
            EvalRun.suite_version == suite_version,
            EvalRun.status.in_(IN_FLIGHT),
        )
        .order_by(EvalRun.id.desc())
        .limit(1)
    )
    if running is not None:
        return int(running)
    data = RunCreate(suite=suite.name, suite_version=suite_version, version=version, **settings)
    try:
        run = runs.create_run(
            session=session, actor=actor, name=prompt.name, data=data, default_concurrency=default_concurrency
        )
    except ValidationFailed as exc:
        raise Conflict(
            f"the gate cannot start the evaluation of version {version}: {exc.message}",
            details={"field": "auto_run", "version": version},
        ) from None
    return run.id


def finish_for_run(*, session: Session, run: EvalRun) -> None:
    """Settle the pending deploys that waited for `run`, now succeeded or failed (caller commits)."""
    ids = session.scalars(
        select(PendingDeployment.id).where(
            PendingDeployment.status == "waiting",
            or_(PendingDeployment.run_id == run.id, PendingDeployment.baseline_run_id == run.id),
        )
    ).all()
    for pending_id in ids:
        _settle(session, pending_id, run)


def _settle(session: Session, pending_id: int, finished: EvalRun) -> None:
    first = session.get(PendingDeployment, pending_id)
    assert first is not None
    prompt = session.get(Prompt, first.prompt_id)
    assert prompt is not None
    get_prompt(session=session, project_id=prompt.project_id, name=prompt.name, lock=True)
    pending = session.scalar(
        select(PendingDeployment)
        .where(PendingDeployment.id == pending_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert pending is not None
    if pending.status != "waiting":
        return
    waited = []
    for run_id in (pending.run_id, pending.baseline_run_id):
        if run_id is None:
            continue
        if run_id == finished.id:
            waited.append(finished)
            continue
        other = session.scalar(
            select(EvalRun).where(EvalRun.id == run_id).execution_options(populate_existing=True)
        )
        if other is not None:
            waited.append(other)
    if any(run.status in IN_FLIGHT for run in waited):
        return  # the worker that finishes the other run settles it
    env = session.get(Environment, pending.environment_id)
    assert env is not None
    actor = Actor(
        name=pending.actor,
        project_id=pending.project_id,
        role=Role(pending.actor_role),
        key_id=pending.actor_key_id,
        user_id=pending.actor_user_id,
    )
    failed = next((run for run in waited if run.status == "failed"), None)
    pending.finished_at = utcnow()
    if failed is not None:
        pending.status = "refused"
        pending.message = f"evaluation run {failed.id} failed: {failed.error}"
        pending.details = {**pending.details, "run": failed.id}
        _audit(session, actor, pending, prompt, env, "deployment.pending_refused", "warning")
        return
    try:
        with session.begin_nested():
            deployment = deployments.deploy(
                session=session,
                actor=actor,
                name=prompt.name,
                environment=env.name,
                version=pending.version,
                reason=pending.reason or f"pending deploy #{pending.id}: its evaluation passed",
                expected_revision=pending.expected_revision,
                review_id=pending.review_id,
                action=pending.action,
            )
    except PromptKeeperError as exc:
        pending.status = "refused"
        pending.message = exc.message
        pending.details = {**pending.details, "code": exc.code, **exc.details}
        _audit(session, actor, pending, prompt, env, "deployment.pending_refused", "warning")
        return
    pending.status = "deployed"
    pending.deployment_id = deployment.id


def get_pending(*, session: Session, project_id: int, name: str, pending_id: int) -> PendingDeployment:
    prompt = get_prompt(session=session, project_id=project_id, name=name)
    pending = session.scalar(
        select(PendingDeployment).where(
            PendingDeployment.id == pending_id, PendingDeployment.prompt_id == prompt.id
        )
    )
    if pending is None:
        raise NotFound(
            f"prompt '{name}' has no pending deploy {pending_id}", details={"pending_deployment": pending_id}
        )
    return pending


def list_pending(
    *, session: Session, project_id: int, name: str, status: str | None = None, limit: int = 50
) -> list[PendingDeployment]:
    """Newest first."""
    prompt = get_prompt(session=session, project_id=project_id, name=name)
    query = select(PendingDeployment).where(PendingDeployment.prompt_id == prompt.id)
    if status is not None:
        query = query.where(PendingDeployment.status == status)
    return list(session.scalars(query.order_by(PendingDeployment.id.desc()).limit(limit)))


def cancel(*, session: Session, actor: Actor, name: str, pending_id: int) -> PendingDeployment:
    """Stop waiting; the runs go on (their results stay useful), but nothing is deployed."""
    prompt = get_prompt(session=session, project_id=actor.project_id, name=name, lock=True)
    pending = get_pending(session=session, project_id=actor.project_id, name=name, pending_id=pending_id)
    session.refresh(pending)
    if pending.status != "waiting":
        raise Conflict(
            f"pending deploy #{pending_id} is already {pending.status}",
            details={"pending_deployment": pending_id, "status": pending.status},
        )
    env = session.get(Environment, pending.environment_id)
    assert env is not None
    pending.status = "cancelled"
    pending.message = f"cancelled by {actor.name}"
    pending.finished_at = utcnow()
    _audit(session, actor, pending, prompt, env, "deployment.pending_cancelled", "info")
    return pending


def _audit(
    session: Session,
    actor: Actor,
    pending: PendingDeployment,
    prompt: Prompt,
    env: Environment,
    action: str,
    severity: str,
) -> None:
    record(
        session=session,
        actor=actor,
        action=action,
        target_type="deployment",
        target=f"{prompt.name}@{env.name}",
        prompt=prompt.name,
        environment=env.name,
        after={
            "pending_deployment": pending.id,
            "version": pending.version,
            "status": pending.status,
            "run": pending.run_id,
            "baseline_run": pending.baseline_run_id,
            **({"message": pending.message} if pending.message else {}),
        },
        severity=severity,
    )


def pending_read(session: Session, pending: PendingDeployment) -> PendingDeploymentRead:
    prompt = session.get(Prompt, pending.prompt_id)
    env = session.get(Environment, pending.environment_id)
    assert prompt is not None and env is not None

    def status_of(run_id: int | None) -> Any:
        run = session.get(EvalRun, run_id) if run_id is not None else None
        return run.status if run is not None else None

    return PendingDeploymentRead.of(
        pending,
        prompt=prompt.name,
        environment=env.name,
        run_status=status_of(pending.run_id),
        baseline_run_status=status_of(pending.baseline_run_id),
    )
