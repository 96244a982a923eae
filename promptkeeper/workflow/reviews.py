"""Reviews: a request to deploy one version to one environment, and the verdicts on it.

Whether a review is approved is derived from its events each time it is needed (never stored):
each reviewer's latest verdict counts, the author's own verdicts never do (neither the review's
author's nor an approval by the writer of the version under review), reviewers are told apart by
identity (a user; a key is whoever minted it, see `Actor.identity`), and any outstanding change
request blocks. The
environment's *current* `required_approvals` applies, so raising it affects reviews in flight.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from promptkeeper.access.service import Actor, Role
from promptkeeper.audit.service import record
from promptkeeper.db.base import utcnow
from promptkeeper.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from promptkeeper.prompts.models import Environment, Prompt, PromptVersion
from promptkeeper.prompts.service import get_environment, get_prompt, get_version
from promptkeeper.workflow.models import Review, ReviewEvent

VERDICTS = ("approve", "request_changes")


@dataclass
class ReviewState:
    """The derived state of a review."""

    status: str  # pending | approved | changes_requested | withdrawn | deployed
    required: int
    approvals: list[str] = field(default_factory=list)
    changes_requested_by: list[str] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return max(0, self.required - len(self.approvals))


def review_state(*, session: Session, review: Review, environment: Environment) -> ReviewState:
    required = max(environment.required_approvals, 1 if environment.protected else 0)
    latest: dict[str, tuple[str, str]] = {}
    events = session.scalars(
        select(ReviewEvent)
        .where(ReviewEvent.review_id == review.id, ReviewEvent.kind.in_(VERDICTS))
        .order_by(ReviewEvent.id)
    )
    for event in events:
        if event.actor_identity != review.author_identity:
            latest[event.actor_identity] = (event.kind, event.actor)
    writer = _writer(session, review)
    approvals = [
        name
        for identity, (kind, name) in latest.items()
        if kind == "approve" and not _wrote(writer, identity, name)
    ]
    blocking = [name for kind, name in latest.values() if kind == "request_changes"]
    state = ReviewState(
        status="pending", required=required, approvals=approvals, changes_requested_by=blocking
    )
    if review.status in ("withdrawn", "deployed"):
        state.status = review.status
    elif blocking:
        state.status = "changes_requested"
    elif len(approvals) >= required:
        state.status = "approved"
    return state


def _writer(session: Session, review: Review) -> tuple[str | None, str]:
    """The identity (None for versions written before it was kept) and name of the version's author."""
    row = session.execute(
        select(PromptVersion.author_identity, PromptVersion.author).where(
            PromptVersion.prompt_id == review.prompt_id, PromptVersion.number == review.version_number
        )
    ).first()
    return (row[0], row[1]) if row is not None else (None, "")


def _wrote(writer: tuple[str | None, str], identity: str, name: str) -> bool:
    written_by, author = writer
    return identity == written_by if written_by is not None else name == author


def _target(prompt: Prompt, review: Review) -> str:
    return f"{prompt.name}#{review.id}"


def request_review(
    *,
    session: Session,
    actor: Actor,
    name: str,
    environment: str,
    version: int,
    title: str = "",
    description: str = "",
) -> Review:
    prompt = get_prompt(session=session, project_id=actor.project_id, name=name, lock=True)
    env = get_environment(session=session, project_id=actor.project_id, name=environment)
    get_version(session=session, prompt=prompt, number=version)
    existing = session.scalar(
        select(Review.id).where(
            Review.prompt_id == prompt.id,
            Review.environment_id == env.id,
            Review.version_number == version,
            Review.status == "open",
        )
    )
    if existing is not None:
        raise Conflict(
            f"review #{existing} already asks to deploy version {version} of '{name}' to '{environment}'",
            details={"review": existing},
        )
    now = utcnow()
    review = Review(
        project_id=actor.project_id,
        prompt_id=prompt.id,
        environment_id=env.id,
        version_number=version,
        title=title or f"Deploy version {version} to {environment}",
        description=description,
        author=actor.name,
        author_identity=actor.identity,
        created_at=now,
        updated_at=now,
    )
    session.add(review)
    session.flush()
    record(
        session=session,
        actor=actor,
        action="review.created",
        target_type="review",
        target=_target(prompt, review),
        prompt=prompt.name,
        environment=environment,
        after={"review": review.id, "version": version, "title": review.title},
    )
    return review


def get_review(*, session: Session, project_id: int, name: str, review_id: int) -> tuple[Prompt, Review]:
    prompt = get_prompt(session=session, project_id=project_id, name=name)
    review = session.scalar(
        select(Review).where(
            Review.id == review_id, Review.prompt_id == prompt.id, Review.project_id == project_id
        )
    )
    if review is None:
        raise NotFound(f"review {review_id} not found", details={"review": review_id})
    return prompt, review


def list_reviews(
    *,
    session: Session,
    project_id: int,
    name: str | None = None,
    status: str | None = None,
    environment: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[tuple[Review, Prompt, Environment]], int]:
    """Reviews newest first; `status` is the stored one (`open`, `withdrawn`, `deployed`)."""
    query = (
        select(Review, Prompt, Environment)
        .join(Prompt, Prompt.id == Review.prompt_id)
        .join(Environment, Environment.id == Review.environment_id)
        .where(Review.project_id == project_id)
    )
    if name is not None:
        prompt = get_prompt(session=session, project_id=project_id, name=name)
        query = query.where(Review.prompt_id == prompt.id)
    if status is not None:
        query = query.where(Review.status == status)
    if environment is not None:
        query = query.where(Environment.name == environment)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(query.order_by(Review.id.desc()).limit(limit).offset(offset))
    return [(row[0], row[1], row[2]) for row in rows], total


def events_of(*, session: Session, review: Review) -> list[ReviewEvent]:
    return list(
        session.scalars(
            select(ReviewEvent).where(ReviewEvent.review_id == review.id).order_by(ReviewEvent.id)
        )
    )


def _open(review: Review) -> None:
    if review.status != "open":
        raise Conflict(
            f"review #{review.id} is {review.status}", details={"review": review.id, "status": review.status}
        )


def _add_event(session: Session, actor: Actor, review: Review, kind: str, body: str) -> ReviewEvent:
    event = ReviewEvent(
        review_id=review.id, actor=actor.name, actor_identity=actor.identity, kind=kind, body=body
    )
    session.add(event)
    review.updated_at = utcnow()
    session.flush()
    return event


_AUDIT = {
    "comment": "review.commented",
    "approve": "review.approved",
    "request_changes": "review.changes_requested",
    "withdraw": "review.withdrawn",
}


def act(
    *, session: Session, actor: Actor, prompt: Prompt, review: Review, kind: str, body: str = ""
) -> ReviewEvent:
    """Comment on, approve, request changes on, or withdraw an open review."""
    _open(review)
    if kind in VERDICTS:
        if actor.role not in (Role.approver, Role.admin):
            raise PermissionDenied(
                f"a '{actor.role.value}' cannot {kind.replace('_', ' ')}: reviews are decided by approvers",
                details={"role": actor.role.value, "allowed": ["admin", "approver"]},
            )
        if actor.identity == review.author_identity:
            raise PermissionDenied(
                "the author of a review cannot decide it: another approver must",
                details={"review": review.id},
            )
        if kind == "approve" and _wrote(_writer(session, review), actor.identity, actor.name):
            raise PermissionDenied(
                f"you wrote version {review.version_number}: its approval must come from someone else",
                details={"review": review.id, "version": review.version_number},
            )
    if kind == "request_changes" and not body.strip():
        raise ValidationFailed("body.comment: say what should change", details={"field": "body.comment"})
    if kind == "comment" and not body.strip():
        raise ValidationFailed("body.body: a comment cannot be empty", details={"field": "body.body"})
    if kind == "withdraw":
        if actor.identity != review.author_identity and actor.role is not Role.admin:
            raise PermissionDenied(
                "only the author of a review or an admin can withdraw it", details={"review": review.id}
            )
        review.status = "withdrawn"
    event = _add_event(session, actor, review, kind, body)
    environment = session.get(Environment, review.environment_id)
    record(
        session=session,
        actor=actor,
        action=_AUDIT[kind],
        target_type="review",
        target=_target(prompt, review),
        prompt=prompt.name,
        environment=environment.name if environment else None,
        after={"review": review.id, "version": review.version_number, "comment": body[:500]},
    )
    return event


def mark_deployed(
    *, session: Session, actor: Actor, prompt: Prompt, review: Review, environment: str, deployment_id: int
) -> None:
    review.status = "deployed"
    review.deployment_id = deployment_id
    _add_event(session, actor, review, "deploy", "")
    record(
        session=session,
        actor=actor,
        action="review.deployed",
        target_type="review",
        target=_target(prompt, review),
        prompt=prompt.name,
        environment=environment,
        after={"review": review.id, "version": review.version_number, "deployment": deployment_id},
    )


def approved_review(
    *, session: Session, prompt: Prompt, environment: Environment, version: int, review_id: int | None
) -> tuple[Review | None, ReviewState | None]:
    """The review that allows deploying `version` here (approved), else the closest candidate."""
    query = select(Review).where(
        Review.prompt_id == prompt.id,
        Review.environment_id == environment.id,
        Review.version_number == version,
        Review.status == "open",
    )
    if review_id is not None:
        query = query.where(Review.id == review_id)
    candidates = list(session.scalars(query.order_by(Review.id.desc())))
    if review_id is not None and not candidates:
        raise Conflict(
            f"review #{review_id} is not an open review of version {version} of '{prompt.name}' "
            f"for '{environment.name}'",
            details={"review": review_id, "version": version, "environment": environment.name},
        )
    best: tuple[Review | None, ReviewState | None] = (None, None)
    for review in candidates:
        state = review_state(session=session, review=review, environment=environment)
        if state.status == "approved":
            return review, state
        if best[0] is None:
            best = (review, state)
    return best
