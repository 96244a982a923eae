"""Draft pages: save an edit as a draft, keep editing it, merge it as a new version, and resolve
conflicts when the prompt moved on meanwhile (base, draft and head side by side)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from promptkeeper.core.fields import path_segment
from promptkeeper.errors import Conflict, ValidationFailed
from promptkeeper.prompts import service
from promptkeeper.ui import diffview
from promptkeeper.ui.prompt_pages import content_from_form
from promptkeeper.ui.web import (
    SignedIn,
    actor_of,
    first,
    form_of,
    is_count,
    page,
    prompt_name_of,
    pydantic_message,
    read,
    redirect,
    require_editor,
    ui_page,
    write,
)
from promptkeeper.workflow import drafts
from promptkeeper.workflow.schemas import DraftCreate, DraftUpdate

router = APIRouter(include_in_schema=False)


def _content(fields: dict[str, list[str]]) -> Any:
    try:
        return service.parse_content(content_from_form(fields))
    except ValueError as exc:
        raise ValidationFailed(pydantic_message(exc)) from None


@router.post("/ui/prompts/{name}/drafts")
@ui_page
async def create_draft(request: Request, user: SignedIn, name: str) -> Response:
    fields = await form_of(request, user)
    require_editor(user)
    prompt_name = prompt_name_of(name)
    base = first(fields, "base_version")
    data = DraftCreate(
        base_version=int(base) if is_count(base) else None,
        content=_content(fields),
        title=first(fields, "message") or "draft",
    )

    def run(session: Session) -> int:
        prompt = service.get_prompt(
            session=session, project_id=user.principal.project_id, name=prompt_name, lock=True
        )
        return drafts.create_draft(
            session=session, actor=actor_of(request, user), prompt=prompt, data=data
        ).id

    draft_id = await write(request, run)
    return redirect(f"/ui/prompts/{path_segment(prompt_name)}/drafts/{draft_id}")


def _load(session: Session, project_id: int, prompt_name: str, draft_id: int) -> dict[str, Any]:
    prompt = service.get_prompt(session=session, project_id=project_id, name=prompt_name)
    draft = drafts.get_draft(session=session, prompt=prompt, draft_id=draft_id)
    base = service.get_version(session=session, prompt=prompt, number=draft.base_version)
    head = service.get_version(session=session, prompt=prompt, number=prompt.head_version)
    return {
        "prompt": prompt,
        "draft": draft,
        "base": base,
        "head": head,
        "sections": diffview.diff_contents(base.content, draft.content),
    }


@router.get("/ui/prompts/{name}/drafts/{draft_id}")
@ui_page
async def draft_page(request: Request, user: SignedIn, name: str, draft_id: int) -> Response:
    prompt_name = prompt_name_of(name)
    data = await read(
        request, lambda session: _load(session, user.principal.project_id, prompt_name, draft_id)
    )
    return page(
        request, "draft.html", user, segment=path_segment(prompt_name), conflicts=None, error=None, **data
    )


@router.post("/ui/prompts/{name}/drafts/{draft_id}")
@ui_page
async def draft_action(request: Request, user: SignedIn, name: str, draft_id: int) -> Response:
    """`intent`: save (optionally re-based onto the head), merge, or discard."""
    fields = await form_of(request, user)
    require_editor(user)
    prompt_name = prompt_name_of(name)
    intent = first(fields, "intent")
    revision = first(fields, "revision")
    expected = int(revision) if is_count(revision) else None
    actor = actor_of(request, user)

    def run(session: Session) -> str:
        prompt = service.get_prompt(
            session=session, project_id=user.principal.project_id, name=prompt_name, lock=True
        )
        if intent == "discard":
            drafts.discard_draft(session=session, actor=actor, prompt=prompt, draft_id=draft_id)
            return f"/ui/prompts/{path_segment(prompt_name)}"
        if intent == "merge":
            _, version = drafts.merge_draft(
                session=session, actor=actor, prompt=prompt, draft_id=draft_id, expected_revision=expected
            )
            return f"/ui/prompts/{path_segment(prompt_name)}?saved={version.number}"
        rebase = first(fields, "rebase") == "on"
        data = DraftUpdate(
            content=_content(fields),
            title=first(fields, "title"),
            base_version=prompt.head_version if rebase else None,
            expected_revision=expected,
        )
        drafts.update_draft(session=session, actor=actor, prompt=prompt, draft_id=draft_id, data=data)
        return f"/ui/prompts/{path_segment(prompt_name)}/drafts/{draft_id}"

    try:
        return redirect(await write(request, run))
    except Conflict as exc:
        if intent != "merge" or "conflicts" not in exc.details:
            raise
        data = await read(
            request, lambda session: _load(session, user.principal.project_id, prompt_name, draft_id)
        )
        conflicts = [
            {**c, **{side: _show(c.get(side)) for side in ("base", "ours", "theirs")}}
            for c in exc.details["conflicts"]
        ]
        return page(
            request,
            "draft.html",
            user,
            status_code=409,
            segment=path_segment(prompt_name),
            conflicts=conflicts,
            error=exc.message,
            **data,
        )


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
