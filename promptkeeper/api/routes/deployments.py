"""Deployment routes: deploy, promote, rollback and the history, through `deployments/` (the one room
where a release changes, asking gates and reviews as policy)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from promptkeeper.api.deps import (
    ContextDep,
    Editor,
    Limit,
    Offset,
    PromptNameDep,
    ReadDB,
    Reader,
    WriteDB,
)
from promptkeeper.api.error_responses import ERROR_RESPONSES
from promptkeeper.core.fields import ENVIRONMENT_PATTERN, Page
from promptkeeper.deployments import pending, policy, releases
from promptkeeper.evaluations.models import PendingDeployment
from promptkeeper.evaluations.schemas import PendingDeploymentRead
from promptkeeper.prompts.models import Deployment
from promptkeeper.prompts.schemas import (
    DeploymentCreate,
    DeploymentRead,
    PromoteCreate,
    RollbackCreate,
)

router = APIRouter(prefix="/v1", tags=["registry"], responses=ERROR_RESPONSES)
# --- deployments --------------------------------------------------------------------------------


WAITS = {
    status.HTTP_202_ACCEPTED: {
        "model": PendingDeploymentRead,
        "description": "The gate runs the evaluation first (its `auto_run`): a pending deploy, "
        "deployed by the worker when the run passes (`GET .../pending-deployments/{id}`).",
    }
}


def deployed_or_pending(
    session: Session, name: str, environment: str, outcome: Deployment | PendingDeployment
) -> DeploymentRead | JSONResponse:
    if isinstance(outcome, Deployment):
        return DeploymentRead.of(outcome, prompt=name, environment=environment)
    body = pending.pending_read(session, outcome)
    return JSONResponse(body.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/prompts/{name}/deployments",
    status_code=status.HTTP_201_CREATED,
    response_model=DeploymentRead,
    responses=WAITS,  # type: ignore[arg-type]
)
def deploy(
    name: PromptNameDep, body: DeploymentCreate, session: WriteDB, context: ContextDep, caller: Editor
) -> DeploymentRead | JSONResponse:
    """Make an environment serve a version; appended to the deployment history.

    Protected environments need an approved review (or an admin's audited `override`); an
    environment with `requires_environment` only takes versions that were deployed there first.
    A gated environment whose gate has `auto_run` answers `202` with a pending deploy when the
    version has no valid run yet.
    """
    outcome = pending.deploy(
        session=session,
        actor=caller,
        name=name,
        environment=body.environment,
        version=body.version,
        reason=body.reason,
        expected_revision=body.expected_revision,
        review_id=body.review_id,
        override=body.override,
        default_concurrency=context.settings.provider_concurrency,
    )
    session.commit()
    return deployed_or_pending(session, name, body.environment, outcome)


@router.post(
    "/prompts/{name}/promote",
    status_code=status.HTTP_201_CREATED,
    response_model=DeploymentRead,
    responses=WAITS,  # type: ignore[arg-type]
)
def promote(
    name: PromptNameDep, body: PromoteCreate, session: WriteDB, context: ContextDep, caller: Editor
) -> DeploymentRead | JSONResponse:
    """Deploy to `to` the version `from` serves now (history action `promote`), with `to`'s policies."""
    outcome = pending.promote(
        session=session,
        actor=caller,
        name=name,
        source=body.from_environment,
        target=body.to_environment,
        reason=body.reason,
        review_id=body.review_id,
        override=body.override,
        default_concurrency=context.settings.provider_concurrency,
    )
    session.commit()
    return deployed_or_pending(session, name, body.to_environment, outcome)


@router.post("/prompts/{name}/rollback", status_code=status.HTTP_201_CREATED, response_model=DeploymentRead)
def rollback(name: PromptNameDep, body: RollbackCreate, session: WriteDB, caller: Editor) -> DeploymentRead:
    """Serve the version live before the current one, or a named version."""
    deployment = policy.rollback(
        session=session,
        actor=caller,
        name=name,
        environment=body.environment,
        version=body.version,
        reason=body.reason,
    )
    session.commit()
    return DeploymentRead.of(deployment, prompt=name, environment=body.environment)


@router.get("/prompts/{name}/deployments", response_model=Page[DeploymentRead])
def list_deployments(
    name: PromptNameDep,
    session: ReadDB,
    caller: Reader,
    environment: Annotated[str | None, Query(pattern=ENVIRONMENT_PATTERN)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[DeploymentRead]:
    """The deployment history, newest first."""
    rows, total = releases.list_deployments(
        session=session,
        project_id=caller.project_id,
        name=name,
        environment=environment,
        limit=limit,
        offset=offset,
    )
    return Page[DeploymentRead](
        items=[DeploymentRead.of(d, prompt=name, environment=env) for d, env in rows],
        total=total,
        limit=limit,
        offset=offset,
    )
