"""Pending deploys: deploys to a gated environment that wait for the evaluation their gate runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from promptkeeper.api.deps import Editor, IdPath, Limit, PromptNameDep, ReadDB, Reader, WriteDB
from promptkeeper.api.error_responses import ERROR_RESPONSES
from promptkeeper.deployments import pending
from promptkeeper.evaluations.schemas import PendingDeploymentRead, PendingStatus

router = APIRouter(prefix="/v1", tags=["evaluations"], responses=ERROR_RESPONSES)


@router.get("/prompts/{name}/pending-deployments", response_model=list[PendingDeploymentRead])
def list_pending(
    name: PromptNameDep,
    session: ReadDB,
    caller: Reader,
    status: Annotated[PendingStatus | None, Query(description="Only these.")] = None,
    limit: Limit = 50,
) -> list[PendingDeploymentRead]:
    """A prompt's deploys that waited or wait for their evaluation, newest first."""
    rows = pending.list_pending(
        session=session, project_id=caller.project_id, name=name, status=status, limit=limit
    )
    return [pending.pending_read(session, row) for row in rows]


@router.get("/prompts/{name}/pending-deployments/{pending_id}", response_model=PendingDeploymentRead)
def get_pending(
    name: PromptNameDep, pending_id: IdPath, session: ReadDB, caller: Reader
) -> PendingDeploymentRead:
    """Its state (waiting, deployed, refused, cancelled), its runs and, once deployed, the history row."""
    row = pending.get_pending(session=session, project_id=caller.project_id, name=name, pending_id=pending_id)
    return pending.pending_read(session, row)


@router.post("/prompts/{name}/pending-deployments/{pending_id}/cancel", response_model=PendingDeploymentRead)
def cancel_pending(
    name: PromptNameDep, pending_id: IdPath, session: WriteDB, caller: Editor
) -> PendingDeploymentRead:
    """Stop waiting: nothing will be deployed (the runs finish anyway; 409 unless it waits)."""
    row = pending.cancel(session=session, actor=caller, name=name, pending_id=pending_id)
    session.commit()
    return pending.pending_read(session, row)
