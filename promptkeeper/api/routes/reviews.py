"""Review routes: request, discuss, decide and carry out a deploy to a protected environment."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from promptkeeper.access.service import Actor
from promptkeeper.api.deps import (
    Approver,
    ContextDep,
    Editor,
    IdPath,
    Limit,
    Offset,
    PromptNameDep,
    ReadDB,
    Reader,
    WriteDB,
)
from promptkeeper.api.error_responses import ERROR_RESPONSES
from promptkeeper.api.routes.deployments import WAITS, deployed_or_pending
from promptkeeper.core.fields import ENVIRONMENT_PATTERN, Page
from promptkeeper.deployments import pending, releases
from promptkeeper.prompts.models import Environment, Prompt
from promptkeeper.prompts.schemas import DeploymentRead
from promptkeeper.workflow import reviews
from promptkeeper.workflow.models import Review
from promptkeeper.workflow.review_schemas import (
    CommentCreate,
    ReviewCreate,
    ReviewDeploy,
    ReviewRead,
    VerdictCreate,
)

router = APIRouter(prefix="/v1", tags=["reviews"], responses=ERROR_RESPONSES)

ReviewId = IdPath
StatusFilter = Annotated[
    Literal["open", "withdrawn", "deployed", "all"],
    Query(alias="status", description="Stored status; `all` for every review."),
]
EnvironmentFilter = Annotated[str | None, Query(pattern=ENVIRONMENT_PATTERN)]


def _review_read(
    session: Session, review: Review, prompt: Prompt, environment: Environment, *, with_events: bool
) -> ReviewRead:
    state = reviews.review_state(session=session, review=review, environment=environment)
    release = releases.current_release(session=session, prompt=prompt, environment=environment)
    events = reviews.events_of(session=session, review=review) if with_events else None
    return ReviewRead.of(
        review,
        prompt=prompt.name,
        environment=environment.name,
        status=state.status,
        required_approvals=state.required,
        approvals=state.approvals,
        missing_approvals=state.missing,
        changes_requested_by=state.changes_requested_by,
        live_version=release.version_number if release is not None else None,
        events=events,
    )


def _one(session: Session, caller_project: int, name: str, review_id: int) -> ReviewRead:
    prompt, review = reviews.get_review(
        session=session, project_id=caller_project, name=name, review_id=review_id
    )
    environment = session.get(Environment, review.environment_id)
    assert environment is not None
    return _review_read(session, review, prompt, environment, with_events=True)


@router.post("/prompts/{name}/reviews", status_code=status.HTTP_201_CREATED, response_model=ReviewRead)
def request_review(name: PromptNameDep, body: ReviewCreate, session: WriteDB, caller: Editor) -> ReviewRead:
    """Ask for approval to deploy a version to an environment."""
    review = reviews.request_review(
        session=session,
        actor=caller,
        name=name,
        environment=body.environment,
        version=body.version,
        title=body.title,
        description=body.description,
    )
    session.commit()
    return _one(session, caller.project_id, name, review.id)


def _page(
    session: Session,
    caller_project: int,
    name: str | None,
    status_: str,
    environment: str | None,
    limit: int,
    offset: int,
) -> Page[ReviewRead]:
    rows, total = reviews.list_reviews(
        session=session,
        project_id=caller_project,
        name=name,
        status=None if status_ == "all" else status_,
        environment=environment,
        limit=limit,
        offset=offset,
    )
    items = [_review_read(session, r, p, e, with_events=False) for r, p, e in rows]
    return Page[ReviewRead](items=items, total=total, limit=limit, offset=offset)


@router.get("/reviews", response_model=Page[ReviewRead])
def list_project_reviews(
    session: ReadDB,
    caller: Reader,
    status_: StatusFilter = "open",
    environment: EnvironmentFilter = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ReviewRead]:
    """Reviews across the project's prompts, newest first (default: the open ones, an inbox)."""
    return _page(session, caller.project_id, None, status_, environment, limit, offset)


@router.get("/prompts/{name}/reviews", response_model=Page[ReviewRead])
def list_reviews(
    name: PromptNameDep,
    session: ReadDB,
    caller: Reader,
    status_: StatusFilter = "all",
    environment: EnvironmentFilter = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ReviewRead]:
    """A prompt's reviews, newest first."""
    return _page(session, caller.project_id, name, status_, environment, limit, offset)


@router.get("/prompts/{name}/reviews/{review_id}", response_model=ReviewRead)
def get_review(name: PromptNameDep, review_id: ReviewId, session: ReadDB, caller: Reader) -> ReviewRead:
    """One review with its comments and verdicts."""
    return _one(session, caller.project_id, name, review_id)


def _act(session: Session, caller: Actor, name: str, review_id: int, kind: str, body: str) -> ReviewRead:
    prompt, review = reviews.get_review(
        session=session, project_id=caller.project_id, name=name, review_id=review_id
    )
    reviews.act(session=session, actor=caller, prompt=prompt, review=review, kind=kind, body=body)
    session.commit()
    return _one(session, caller.project_id, name, review_id)


@router.post(
    "/prompts/{name}/reviews/{review_id}/comments",
    status_code=status.HTTP_201_CREATED,
    response_model=ReviewRead,
)
def comment(
    name: PromptNameDep, review_id: ReviewId, body: CommentCreate, session: WriteDB, caller: Editor
) -> ReviewRead:
    return _act(session, caller, name, review_id, "comment", body.body)


@router.post("/prompts/{name}/reviews/{review_id}/approve", response_model=ReviewRead)
def approve(
    name: PromptNameDep, review_id: ReviewId, body: VerdictCreate, session: WriteDB, caller: Approver
) -> ReviewRead:
    """Approve (an approver other than the author); replaces this approver's earlier verdict."""
    return _act(session, caller, name, review_id, "approve", body.comment)


@router.post("/prompts/{name}/reviews/{review_id}/request-changes", response_model=ReviewRead)
def request_changes(
    name: PromptNameDep, review_id: ReviewId, body: VerdictCreate, session: WriteDB, caller: Approver
) -> ReviewRead:
    """Block the review until this approver approves (a comment saying what to change is required)."""
    return _act(session, caller, name, review_id, "request_changes", body.comment)


@router.post("/prompts/{name}/reviews/{review_id}/withdraw", response_model=ReviewRead)
def withdraw(name: PromptNameDep, review_id: ReviewId, session: WriteDB, caller: Editor) -> ReviewRead:
    """Close the review without deploying (its author or an admin)."""
    return _act(session, caller, name, review_id, "withdraw", "")


@router.post(
    "/prompts/{name}/reviews/{review_id}/deploy",
    status_code=status.HTTP_201_CREATED,
    response_model=DeploymentRead,
    responses=WAITS,  # type: ignore[arg-type]
)
def deploy_review(
    name: PromptNameDep,
    review_id: ReviewId,
    body: ReviewDeploy,
    session: WriteDB,
    context: ContextDep,
    caller: Approver,
) -> DeploymentRead | JSONResponse:
    """Carry out an approved review: deploy its version to its environment (`202` with a pending
    deploy when the environment's gate runs the evaluation first)."""
    _, review = reviews.get_review(
        session=session, project_id=caller.project_id, name=name, review_id=review_id
    )
    environment = session.get(Environment, review.environment_id)
    assert environment is not None
    outcome = pending.deploy(
        session=session,
        actor=caller,
        name=name,
        environment=environment.name,
        version=review.version_number,
        reason=body.reason or f"review #{review.id}",
        review_id=review.id,
        default_concurrency=context.settings.provider_concurrency,
    )
    session.commit()
    return deployed_or_pending(session, name, environment.name, outcome)
