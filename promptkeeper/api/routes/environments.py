"""Environment routes: list, create and configure the environments releases live in."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from promptkeeper.api.deps import (
    Admin,
    ReadDB,
    Reader,
    WriteDB,
)
from promptkeeper.api.error_responses import ERROR_RESPONSES
from promptkeeper.core.fields import ENVIRONMENT_PATTERN
from promptkeeper.prompts import service
from promptkeeper.prompts.schemas import (
    EnvironmentCreate,
    EnvironmentRead,
    EnvironmentUpdate,
)

router = APIRouter(prefix="/v1", tags=["registry"], responses=ERROR_RESPONSES)
# --- environments -------------------------------------------------------------------------------


@router.get("/environments", response_model=list[EnvironmentRead])
def list_environments(session: ReadDB, caller: Reader) -> list[EnvironmentRead]:
    return [
        EnvironmentRead.model_validate(e)
        for e in service.list_environments(session=session, project_id=caller.project_id)
    ]


@router.post("/environments", status_code=status.HTTP_201_CREATED, response_model=EnvironmentRead)
def create_environment(body: EnvironmentCreate, session: WriteDB, caller: Admin) -> EnvironmentRead:
    environment = service.create_environment(session=session, actor=caller, data=body)
    session.commit()
    return EnvironmentRead.model_validate(environment)


@router.patch("/environments/{environment}", response_model=EnvironmentRead)
def update_environment(
    environment: Annotated[str, Path(pattern=ENVIRONMENT_PATTERN)],
    body: EnvironmentUpdate,
    session: WriteDB,
    caller: Admin,
) -> EnvironmentRead:
    """Change an environment's description and policy: protection, approvals, override, promotion path."""
    updated = service.update_environment(session=session, actor=caller, name=environment, data=body)
    session.commit()
    return EnvironmentRead.model_validate(updated)
