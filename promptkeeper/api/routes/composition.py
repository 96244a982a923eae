"""Composition routes: what a version includes, and which prompts include a prompt."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from promptkeeper.api.deps import PromptNameDep, ReadDB, Reader
from promptkeeper.api.error_responses import ERROR_RESPONSES
from promptkeeper.core.fields import MAX_INT
from promptkeeper.prompts import composition, service
from promptkeeper.prompts.schemas import (
    DependantRead,
    DependantsRead,
    IncludesRead,
    ReferenceRead,
)

router = APIRouter(prefix="/v1", tags=["registry"], responses=ERROR_RESPONSES)


@router.get("/prompts/{name}/versions/{number}/includes", response_model=IncludesRead)
def get_includes(
    name: PromptNameDep, number: Annotated[int, Path(ge=1, le=MAX_INT)], session: ReadDB, caller: Reader
) -> IncludesRead:
    """The references in a version's content (stored at save) and the version each resolves to now."""
    prompt = service.get_prompt(session=session, project_id=caller.project_id, name=name)
    version = service.get_version(session=session, prompt=prompt, number=number)
    found = composition.includes_of(session=session, project_id=caller.project_id, version=version)
    return IncludesRead(name=name, version=number, includes=[ReferenceRead(**item) for item in found])


@router.get("/prompts/{name}/dependants", response_model=DependantsRead)
def get_dependants(
    name: PromptNameDep,
    session: ReadDB,
    caller: Reader,
    live: Annotated[bool, Query(description="Only versions that some environment serves now.")] = False,
) -> DependantsRead:
    """The versions of other prompts that include this one (one indexed lookup), and where each is live."""
    service.get_prompt(session=session, project_id=caller.project_id, name=name)
    found = composition.dependants(session=session, project_id=caller.project_id, name=name, live_only=live)
    return DependantsRead(name=name, dependants=[DependantRead(**d.as_dict()) for d in found])
