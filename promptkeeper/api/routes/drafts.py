"""Draft routes: parse, call one service, commit, return."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, status
from sqlalchemy.orm import Session

from promptkeeper.api.deps import Editor, Limit, Offset, PromptNameDep, ReadDB, Reader, WriteDB
from promptkeeper.api.error_responses import ERROR_RESPONSES
from promptkeeper.api.routes.prompts import version_read
from promptkeeper.core.content import content_hash
from promptkeeper.core.fields import MAX_INT, Page
from promptkeeper.prompts import service as prompts
from promptkeeper.prompts.models import Prompt
from promptkeeper.prompts.schemas import ChangeRead
from promptkeeper.workflow import drafts
from promptkeeper.workflow.models import Draft
from promptkeeper.workflow.schemas import (
    DraftCreate,
    DraftDiffRead,
    DraftMerge,
    DraftMerged,
    DraftRead,
    DraftStatusFilter,
    DraftUpdate,
)

router = APIRouter(prefix="/v1", tags=["drafts"], responses=ERROR_RESPONSES)

DraftId = Annotated[int, Path(ge=1, le=MAX_INT, description="The draft's id.")]


def _draft_read(session: Session | None, prompt: Prompt, draft: Draft) -> DraftRead:
    """A draft as the API shows it; with a session, also its diff against the base version."""
    diff = None
    if session is not None:
        changes = drafts.draft_diff(session=session, prompt=prompt, draft=draft)
        diff = DraftDiffRead(
            changed_fields=changes.changed_fields,
            changes=[ChangeRead(**c.as_dict()) for c in changes.changes],
            unified=changes.unified,
        )
    return DraftRead.of(
        draft,
        prompt=prompt.name,
        head_version=prompt.head_version,
        behind=prompt.head_version > draft.base_version,
        content_hash=content_hash(draft.content),
        diff=diff,
    )


@router.post("/prompts/{name}/drafts", status_code=status.HTTP_201_CREATED, response_model=DraftRead)
def create_draft(
    name: PromptNameDep, session: WriteDB, caller: Editor, body: Annotated[DraftCreate | None, Body()] = None
) -> DraftRead:
    """Fork a draft from a version (default: the head); the body may be omitted."""
    prompt = prompts.get_prompt(session=session, project_id=caller.project_id, name=name)
    draft = drafts.create_draft(session=session, actor=caller, prompt=prompt, data=body or DraftCreate())
    session.commit()
    return _draft_read(session, prompt, draft)


@router.get("/prompts/{name}/drafts", response_model=Page[DraftRead])
def list_drafts(
    name: PromptNameDep,
    session: ReadDB,
    caller: Reader,
    draft_status: Annotated[
        DraftStatusFilter, Query(alias="status", description="Which drafts; `all` for every status.")
    ] = "open",
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[DraftRead]:
    """Drafts of a prompt, newest first (without diffs)."""
    prompt = prompts.get_prompt(session=session, project_id=caller.project_id, name=name)
    items, total = drafts.list_drafts(
        session=session, prompt=prompt, status=draft_status, limit=limit, offset=offset
    )
    return Page[DraftRead](
        items=[_draft_read(None, prompt, d) for d in items], total=total, limit=limit, offset=offset
    )


@router.get("/prompts/{name}/drafts/{draft_id}", response_model=DraftRead)
def get_draft(name: PromptNameDep, draft_id: DraftId, session: ReadDB, caller: Reader) -> DraftRead:
    """A draft with the head it would merge onto and its diff against its base."""
    prompt = prompts.get_prompt(session=session, project_id=caller.project_id, name=name)
    draft = drafts.get_draft(session=session, prompt=prompt, draft_id=draft_id)
    return _draft_read(session, prompt, draft)


@router.patch("/prompts/{name}/drafts/{draft_id}", response_model=DraftRead)
def update_draft(
    name: PromptNameDep, draft_id: DraftId, body: DraftUpdate, session: WriteDB, caller: Editor
) -> DraftRead:
    """Edit an open draft; `expected_revision` guards against overwriting someone else's edit."""
    prompt = prompts.get_prompt(session=session, project_id=caller.project_id, name=name)
    draft = drafts.update_draft(session=session, actor=caller, prompt=prompt, draft_id=draft_id, data=body)
    session.commit()
    return _draft_read(session, prompt, draft)


@router.delete("/prompts/{name}/drafts/{draft_id}", response_model=DraftRead)
def discard_draft(name: PromptNameDep, draft_id: DraftId, session: WriteDB, caller: Editor) -> DraftRead:
    """Discard an open draft (kept, with status `discarded`)."""
    prompt = prompts.get_prompt(session=session, project_id=caller.project_id, name=name)
    draft = drafts.discard_draft(session=session, actor=caller, prompt=prompt, draft_id=draft_id)
    session.commit()
    return _draft_read(session, prompt, draft)


@router.post(
    "/prompts/{name}/drafts/{draft_id}/merge", status_code=status.HTTP_201_CREATED, response_model=DraftMerged
)
def merge_draft(
    name: PromptNameDep,
    draft_id: DraftId,
    session: WriteDB,
    caller: Editor,
    body: Annotated[DraftMerge | None, Body()] = None,
) -> DraftMerged:
    """Three-way merge onto the head as a new version; 409 with the conflicts when edits overlap."""
    body = body or DraftMerge()
    prompt = prompts.get_prompt(session=session, project_id=caller.project_id, name=name, lock=True)
    draft, version = drafts.merge_draft(
        session=session,
        actor=caller,
        prompt=prompt,
        draft_id=draft_id,
        message=body.message,
        expected_revision=body.expected_revision,
    )
    session.commit()
    return DraftMerged(
        draft=_draft_read(session, prompt, draft),
        version=version_read(prompt, version, prompts.version_status(session=session, prompt=prompt)),
    )
