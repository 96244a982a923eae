"""Registry routes: parse, call one service, commit, return."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from sqlalchemy.orm import Session

from promptkeeper.api.deps import (
    Editor,
    Limit,
    Offset,
    PromptNameDep,
    ReadDB,
    Reader,
    WriteDB,
)
from promptkeeper.api.error_responses import ERROR_RESPONSES
from promptkeeper.core.fields import MAX_INT, Page
from promptkeeper.prompts import service
from promptkeeper.prompts.models import Prompt, PromptVersion, Release
from promptkeeper.prompts.schemas import (
    ChangeRead,
    DiffRead,
    PromptCreate,
    PromptCreated,
    PromptRead,
    PromptUpdate,
    VersionCreate,
    VersionRead,
)

router = APIRouter(prefix="/v1", tags=["registry"], responses=ERROR_RESPONSES)


def _releases_of(session: Session, prompt: Prompt) -> dict[str, Release | None]:
    by_prompt = service.releases_by_environment(
        session=session, project_id=prompt.project_id, prompt_ids=[prompt.id]
    )
    return by_prompt[prompt.id]


def _prompt_with_releases(session: Session, prompt: Prompt) -> PromptRead:
    return PromptRead.of(prompt, environments=_releases_of(session, prompt))


def version_read(prompt: Prompt, version: PromptVersion, status_of: service.StatusOf) -> VersionRead:
    state, serving = status_of(version.number)
    return VersionRead.of(version, prompt=prompt.name, status=state, environments=serving)


# --- prompts ------------------------------------------------------------------------------------


@router.post("/prompts", status_code=status.HTTP_201_CREATED, response_model=PromptCreated)
def create_prompt(body: PromptCreate, session: WriteDB, caller: Editor) -> PromptCreated:
    """Create a prompt and its version 1."""
    prompt, version = service.create_prompt(session=session, actor=caller, data=body)
    session.commit()
    status_of = service.version_status(session=session, prompt=prompt)
    return PromptCreated.of(
        prompt, environments=_releases_of(session, prompt), version=version_read(prompt, version, status_of)
    )


@router.get("/prompts", response_model=Page[PromptRead])
def list_prompts(
    session: ReadDB,
    caller: Reader,
    tag: Annotated[str | None, Query(max_length=64, description="Only prompts with this tag.")] = None,
    search: Annotated[
        str | None, Query(max_length=200, description="Substring of the name or description.")
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[PromptRead]:
    prompts, total = service.list_prompts(
        session=session, project_id=caller.project_id, tag=tag, search=search, limit=limit, offset=offset
    )
    releases_of = service.releases_by_environment(
        session=session, project_id=caller.project_id, prompt_ids=[p.id for p in prompts]
    )
    return Page[PromptRead](
        items=[PromptRead.of(p, environments=releases_of[p.id]) for p in prompts],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/prompts/{name}", response_model=PromptRead)
def get_prompt(name: PromptNameDep, session: ReadDB, caller: Reader) -> PromptRead:
    """A prompt with what each environment of the project serves."""
    prompt = service.get_prompt(session=session, project_id=caller.project_id, name=name)
    return _prompt_with_releases(session, prompt)


@router.patch("/prompts/{name}", response_model=PromptRead)
def update_prompt(name: PromptNameDep, body: PromptUpdate, session: WriteDB, caller: Editor) -> PromptRead:
    """Change metadata (description, owner, tags, target model); content changes are new versions."""
    prompt = service.get_prompt(session=session, project_id=caller.project_id, name=name, lock=True)
    service.update_prompt(session=session, actor=caller, prompt=prompt, data=body)
    session.commit()
    return _prompt_with_releases(session, prompt)


# --- versions -----------------------------------------------------------------------------------


@router.post("/prompts/{name}/versions", status_code=status.HTTP_201_CREATED, response_model=VersionRead)
def create_version(name: PromptNameDep, body: VersionCreate, session: WriteDB, caller: Editor) -> VersionRead:
    """Append an immutable version; 409 if `base_version` is not the head or the content is unchanged."""
    prompt = service.get_prompt(session=session, project_id=caller.project_id, name=name, lock=True)
    version = service.create_version(
        session=session,
        prompt=prompt,
        content=body.content,
        actor=caller,
        message=body.message,
        base_version=body.base_version,
        allow_duplicate=body.allow_duplicate,
    )
    session.commit()
    return version_read(prompt, version, service.version_status(session=session, prompt=prompt))


@router.get("/prompts/{name}/versions", response_model=Page[VersionRead])
def list_versions(
    name: PromptNameDep, session: ReadDB, caller: Reader, limit: Limit = 50, offset: Offset = 0
) -> Page[VersionRead]:
    """Versions, newest first, each with its derived status."""
    prompt = service.get_prompt(session=session, project_id=caller.project_id, name=name)
    versions, total = service.list_versions(session=session, prompt=prompt, limit=limit, offset=offset)
    status_of = service.version_status(session=session, prompt=prompt)
    return Page[VersionRead](
        items=[version_read(prompt, v, status_of) for v in versions], total=total, limit=limit, offset=offset
    )


@router.get("/prompts/{name}/versions/{number}", response_model=VersionRead)
def get_version(
    name: PromptNameDep, number: Annotated[int, Path(ge=1, le=MAX_INT)], session: ReadDB, caller: Reader
) -> VersionRead:
    prompt = service.get_prompt(session=session, project_id=caller.project_id, name=name)
    version = service.get_version(session=session, prompt=prompt, number=number)
    return version_read(prompt, version, service.version_status(session=session, prompt=prompt))


@router.get("/prompts/{name}/diff", response_model=DiffRead)
def diff_versions(
    name: PromptNameDep,
    session: ReadDB,
    caller: Reader,
    from_version: Annotated[int, Query(alias="from", ge=1, le=MAX_INT, description="Older version.")],
    to_version: Annotated[int, Query(alias="to", ge=1, le=MAX_INT, description="Newer version.")],
) -> DiffRead:
    """Structured changes and a unified diff per field (template, messages, examples, config)."""
    prompt = service.get_prompt(session=session, project_id=caller.project_id, name=name)
    diff = service.diff_versions(
        session=session, prompt=prompt, from_number=from_version, to_number=to_version
    )
    return DiffRead(
        prompt=prompt.name,
        from_version=from_version,
        to_version=to_version,
        changed_fields=diff.changed_fields,
        changes=[ChangeRead(**c.as_dict()) for c in diff.changes],
        unified=diff.unified,
    )
