"""Review pages: request a review from a deploy confirmation, discuss, decide, deploy."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from promptkeeper.core.fields import path_segment
from promptkeeper.errors import ValidationFailed
from promptkeeper.prompts import service
from promptkeeper.prompts.models import Environment
from promptkeeper.ui.prompt_pages import change_to
from promptkeeper.ui.web import (
    SignedIn,
    actor_of,
    first,
    form_of,
    is_count,
    page,
    prompt_name_of,
    read,
    redirect,
    require_editor,
    ui_page,
    write,
)
from promptkeeper.workflow import reviews

router = APIRouter(include_in_schema=False)


@router.post("/ui/prompts/{name}/reviews")
@ui_page
async def request_review(request: Request, user: SignedIn, name: str) -> Response:
    fields = await form_of(request, user)
    require_editor(user)
    prompt_name = prompt_name_of(name)
    version = first(fields, "version")
    if not is_count(version):
        raise ValidationFailed("version: choose a version", details={"field": "version"})

    def run(session: Session) -> int:
        review = reviews.request_review(
            session=session,
            actor=actor_of(request, user),
            name=prompt_name,
            environment=first(fields, "environment"),
            version=int(version),
            title=first(fields, "title"),
            description=first(fields, "description"),
        )
        return review.id

    review_id = await write(request, run)
    return redirect(f"/ui/prompts/{path_segment(prompt_name)}/reviews/{review_id}")


@router.get("/ui/prompts/{name}/reviews/{review_id}")
@ui_page
async def review_page(request: Request, user: SignedIn, name: str, review_id: int) -> Response:
    prompt_name = prompt_name_of(name)

    def load(session: Session) -> dict[str, Any]:
        prompt, review = reviews.get_review(
            session=session, project_id=user.principal.project_id, name=prompt_name, review_id=review_id
        )
        env = service.get_environment(
            session=session,
            project_id=user.principal.project_id,
            name=_environment_name(session, review),
        )
        state = reviews.review_state(session=session, review=review, environment=env)
        return {
            "prompt": prompt,
            "review": review,
            "env": env,
            "state": state,
            "events": reviews.events_of(session=session, review=review),
            **change_to(session, prompt, env, review.version_number),
        }

    data = await read(request, load)
    actor = actor_of(request, user)
    return page(
        request,
        "review.html",
        user,
        segment=path_segment(prompt_name),
        is_author=actor.identity == data["review"].author_identity,
        can_decide=user.principal.role.value in ("approver", "admin"),
        **data,
    )


def _environment_name(session: Session, review: Any) -> str:

    env = session.get(Environment, review.environment_id)
    assert env is not None
    return env.name


@router.post("/ui/prompts/{name}/reviews/{review_id}/act")
@ui_page
async def review_act(request: Request, user: SignedIn, name: str, review_id: int) -> Response:
    fields = await form_of(request, user)
    prompt_name = prompt_name_of(name)
    kind = first(fields, "kind")
    if kind not in ("comment", "approve", "request_changes", "withdraw"):
        raise ValidationFailed(f"kind: '{kind}' is not a review action", details={"field": "kind"})

    def run(session: Session) -> None:
        prompt, review = reviews.get_review(
            session=session, project_id=user.principal.project_id, name=prompt_name, review_id=review_id
        )
        reviews.act(
            session=session,
            actor=actor_of(request, user),
            prompt=prompt,
            review=review,
            kind=kind,
            body=first(fields, "body"),
        )

    await write(request, run)
    return redirect(f"/ui/prompts/{path_segment(prompt_name)}/reviews/{review_id}")
