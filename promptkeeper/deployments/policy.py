"""Deploys and rollbacks with the project's policies applied: protection, reviews, promotion path.

`deployments.releases` does the mechanics (history row, revision, invalidation); this module decides
whether the change is allowed. Every route, the CLI and the UI deploy through here, so no path can
skip a policy:

- an environment with `requires_environment` (e.g. production requiring staging) only accepts a
  version that has been deployed to that environment before;
- a `protected` environment needs the approver or admin role, and a review of that exact version
  approved by `required_approvals` distinct approvers other than its author; the deploy closes it;
- an environment with an evaluation gate only accepts a version whose newest evaluation run on
  the gate's suite version (its current one, or the one the gate pins) passes it
  (`evaluations.gates`); with the gate's `auto_run`, a deploy that lacks that run waits for it
  (`deployments.pending`) and comes back here when it passed;
- an admin may bypass the reviews and the gate with `override` where the environment allows it,
  giving a reason; the history records action `override` and the audit entry is a warning;
- a rollback to a version that was live in the environment before needs no new review (it was
  reviewed when it went live); a rollback to a version never live there is a deploy and needs one.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from promptkeeper.access.service import Actor, Role
from promptkeeper.core.fields import path_segment
from promptkeeper.deployments import releases
from promptkeeper.errors import Conflict, PermissionDenied, ValidationFailed
from promptkeeper.evaluations import gates
from promptkeeper.prompts.models import Deployment, Environment, Prompt
from promptkeeper.prompts.service import get_environment, get_prompt
from promptkeeper.workflow import reviews
from promptkeeper.workflow.models import Review

log = logging.getLogger(__name__)


def _ever_deployed(session: Session, prompt: Prompt, environment: Environment, version: int) -> bool:
    return (
        session.scalar(
            select(Deployment.id)
            .where(
                Deployment.prompt_id == prompt.id,
                Deployment.environment_id == environment.id,
                Deployment.version_number == version,
            )
            .limit(1)
        )
        is not None
    )


def _check_promotion_path(session: Session, prompt: Prompt, env: Environment, version: int) -> None:
    if env.requires_environment is None:
        return
    required = get_environment(session=session, project_id=prompt.project_id, name=env.requires_environment)
    if not _ever_deployed(session, prompt, required, version):
        raise Conflict(
            f"version {version} of '{prompt.name}' has never been deployed to '{required.name}': "
            f"'{env.name}' accepts only versions that went through '{required.name}' first",
            details={"environment": env.name, "requires_environment": required.name, "version": version},
        )


def _check_protected_role(actor: Actor, env: Environment) -> None:
    if actor.role not in (Role.approver, Role.admin):
        raise PermissionDenied(
            f"'{env.name}' is protected: deploying there needs the approver or admin role "
            f"(this is a '{actor.role.value}')",
            details={"environment": env.name, "role": actor.role.value, "allowed": ["admin", "approver"]},
        )


def _check_override(actor: Actor, env: Environment, reason: str) -> None:
    if not env.protected:
        raise ValidationFailed(
            f"body.override: '{env.name}' is not protected; deploy without override",
            details={"field": "body.override"},
        )
    if not env.allow_override:
        raise PermissionDenied(
            f"emergency override is not enabled for '{env.name}' (an admin can allow it on the environment)",
            details={"environment": env.name},
        )
    if actor.role is not Role.admin:
        raise PermissionDenied(
            "only an admin can override reviews", details={"role": actor.role.value, "allowed": ["admin"]}
        )
    if not reason.strip():
        raise ValidationFailed(
            "body.reason: an emergency override needs a reason", details={"field": "body.reason"}
        )


def _missing_review(
    prompt: Prompt,
    env: Environment,
    version: int,
    review: Review | None,
    state: reviews.ReviewState | None,
) -> Conflict:
    required = max(env.required_approvals, 1)
    if review is None or state is None:
        return Conflict(
            f"'{env.name}' is protected: deploying version {version} of '{prompt.name}' needs a review "
            f"approved by {required} approver(s); none was requested "
            f"(request one: POST /v1/prompts/{path_segment(prompt.name)}/reviews)",
            details={
                "environment": env.name,
                "version": version,
                "required_approvals": required,
                "review": None,
            },
        )
    why = f"{len(state.approvals)} of {state.required} approval(s), {state.missing} missing"
    if state.changes_requested_by:
        why += f"; changes requested by {', '.join(state.changes_requested_by)}"
    return Conflict(
        f"'{env.name}' is protected: review #{review.id} of version {version} is {state.status} ({why})",
        details={
            "environment": env.name,
            "version": version,
            "review": review.id,
            "status": state.status,
            "required_approvals": state.required,
            "approvals": state.approvals,
            "missing_approvals": state.missing,
            "changes_requested_by": state.changes_requested_by,
        },
    )


def authorize(
    *,
    session: Session,
    actor: Actor,
    prompt: Prompt,
    env: Environment,
    version: int,
    reason: str = "",
    review_id: int | None = None,
    override: bool = False,
    gate: bool = True,
) -> Review | None:
    """Raise unless `version` may go live in `env`; returns the review the change closes, if any.

    Shared by plain deploys and by experiments that ship their winner, so both meet one policy.
    `gate=False` checks everything but the evaluation gate: a deploy that waits for its evaluation
    (`deployments.pending`) is told at once about the rest, and meets all of it again when it ships.
    """
    _check_promotion_path(session, prompt, env, version)
    if gate and not override:
        gates.check_gate(session=session, prompt=prompt, environment=env, version=version)
    review = None
    if override:
        _check_override(actor, env, reason)
        log.warning(
            "emergency override: %s deploys %s v%s to %s: %s",
            actor.name,
            prompt.name,
            version,
            env.name,
            reason,
        )
    elif env.protected:
        _check_protected_role(actor, env)
        review, state = reviews.approved_review(
            session=session, prompt=prompt, environment=env, version=version, review_id=review_id
        )
        if review is None or state is None or state.status != "approved":
            raise _missing_review(prompt, env, version, review, state)
    elif review_id is not None:  # not required here, but carried out (and closed) all the same
        review, _ = reviews.approved_review(
            session=session, prompt=prompt, environment=env, version=version, review_id=review_id
        )
    return review


def check_experiment_candidate(
    *, session: Session, actor: Actor, prompt: Prompt, env: Environment, version: int
) -> None:
    """Raise unless `version` may take part of `env`'s traffic in an experiment.

    The promotion path and the evaluation gate apply as to a deploy, and a protected environment
    needs the approver role; a review is not needed until the winner ships (`authorize`).
    """
    _check_promotion_path(session, prompt, env, version)
    gates.check_gate(session=session, prompt=prompt, environment=env, version=version)
    if env.protected:
        _check_protected_role(actor, env)


def deploy(
    *,
    session: Session,
    actor: Actor,
    name: str,
    environment: str,
    version: int,
    reason: str = "",
    expected_revision: int | None = None,
    review_id: int | None = None,
    override: bool = False,
    action: str = "deploy",
) -> Deployment:
    """Deploy `version` to `environment` if the environment's policies allow it."""
    prompt = get_prompt(session=session, project_id=actor.project_id, name=name, lock=True)
    env = get_environment(session=session, project_id=actor.project_id, name=environment)
    review = authorize(
        session=session,
        actor=actor,
        prompt=prompt,
        env=env,
        version=version,
        reason=reason,
        review_id=review_id,
        override=override,
    )
    if override:
        action = "override"
    deployment = releases.deploy(
        session=session,
        project_id=actor.project_id,
        name=name,
        environment=environment,
        version=version,
        actor=actor,
        reason=reason,
        action=action,
        expected_revision=expected_revision,
    )
    if review is not None:
        reviews.mark_deployed(
            session=session,
            actor=actor,
            prompt=prompt,
            review=review,
            environment=environment,
            deployment_id=deployment.id,
        )
    return deployment


def promote(
    *,
    session: Session,
    actor: Actor,
    name: str,
    source: str,
    target: str,
    reason: str = "",
    review_id: int | None = None,
    override: bool = False,
) -> Deployment:
    """Deploy to `target` the version that `source` serves now (action `promote`)."""
    prompt = get_prompt(session=session, project_id=actor.project_id, name=name, lock=True)
    source_env = get_environment(session=session, project_id=actor.project_id, name=source)
    release = releases.current_release(session=session, prompt=prompt, environment=source_env)
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
        reason=reason,
        review_id=review_id,
        override=override,
        action="promote",
    )


def rollback(
    *,
    session: Session,
    actor: Actor,
    name: str,
    environment: str,
    version: int | None,
    reason: str = "",
) -> Deployment:
    """Roll back; on a protected environment only to versions that were live there before."""
    prompt = get_prompt(session=session, project_id=actor.project_id, name=name, lock=True)
    env = get_environment(session=session, project_id=actor.project_id, name=environment)
    if env.protected:
        _check_protected_role(actor, env)
        if version is not None and not _ever_deployed(session, prompt, env, version):
            raise Conflict(
                f"version {version} of '{name}' was never live in protected '{environment}': "
                "that is a deploy, and needs an approved review",
                details={"environment": environment, "version": version},
            )
    return releases.rollback(
        session=session,
        project_id=actor.project_id,
        name=name,
        environment=environment,
        version=version,
        actor=actor,
        reason=reason,
    )
