"""Monitoring routes: monitors, their status, alerts and the scored outputs behind them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from promptkeeper.api.deps import Editor, IdPath, Limit, Offset, ReadDB, Reader, WriteDB
from promptkeeper.api.error_responses import ERROR_RESPONSES
from promptkeeper.core.fields import MAX_INT, Page
from promptkeeper.monitoring import generations, service  # noqa: F401 - generations: the generation sink
from promptkeeper.monitoring import status as monitor_status
from promptkeeper.monitoring.schemas import (
    AlertRead,
    ExampleRead,
    MonitorCreate,
    MonitorRead,
    MonitorStatus,
    MonitorUpdate,
)

router = APIRouter(prefix="/v1", tags=["monitoring"], responses=ERROR_RESPONSES)

MonitorId = IdPath


@router.post("/monitors", status_code=status.HTTP_201_CREATED, response_model=MonitorRead)
def create_monitor(body: MonitorCreate, session: WriteDB, caller: Editor) -> MonitorRead:
    """Score a sample of a prompt's production outputs in one environment and act on regressions."""
    monitor = service.create_monitor(session=session, actor=caller, data=body)
    session.commit()
    return service.monitor_read(session, monitor)


@router.get("/monitors", response_model=Page[MonitorRead])
def list_monitors(
    session: ReadDB,
    caller: Reader,
    prompt: Annotated[str | None, Query(max_length=128, description="Only this prompt's.")] = None,
    environment: Annotated[str | None, Query(max_length=64, description="Only this environment's.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[MonitorRead]:
    rows, total = service.list_monitors(
        session=session,
        project_id=caller.project_id,
        prompt=prompt,
        environment=environment,
        limit=limit,
        offset=offset,
    )
    return Page(
        items=[service.monitor_read(session, m) for m in rows], total=total, limit=limit, offset=offset
    )


@router.get("/monitors/{monitor_id}", response_model=MonitorRead)
def get_monitor(monitor_id: MonitorId, session: ReadDB, caller: Reader) -> MonitorRead:
    monitor = service.get_monitor(session=session, project_id=caller.project_id, monitor_id=monitor_id)
    return service.monitor_read(session, monitor)


@router.patch("/monitors/{monitor_id}", response_model=MonitorRead)
def update_monitor(
    monitor_id: MonitorId, body: MonitorUpdate, session: WriteDB, caller: Editor
) -> MonitorRead:
    """Change sampling, scorers or decision settings; windows and looks already taken stay."""
    monitor = service.get_monitor(
        session=session, project_id=caller.project_id, monitor_id=monitor_id, lock=True
    )
    service.update_monitor(session=session, actor=caller, monitor=monitor, data=body)
    session.commit()
    return service.monitor_read(session, monitor)


@router.delete("/monitors/{monitor_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_monitor(monitor_id: MonitorId, session: WriteDB, caller: Editor) -> None:
    """Delete the monitor with its scores, looks and alerts (generation records stay)."""
    monitor = service.get_monitor(
        session=session, project_id=caller.project_id, monitor_id=monitor_id, lock=True
    )
    service.delete_monitor(session=session, actor=caller, monitor=monitor)
    session.commit()


@router.get("/monitors/{monitor_id}/status", response_model=MonitorStatus)
def monitor_state(monitor_id: MonitorId, session: ReadDB, caller: Reader) -> MonitorStatus:
    """Live and baseline windows per scorer, looks over time (scores and decisions), alerts."""
    monitor = service.get_monitor(session=session, project_id=caller.project_id, monitor_id=monitor_id)
    return monitor_status.status(session, monitor)


@router.get("/monitors/{monitor_id}/alerts", response_model=Page[AlertRead])
def list_alerts(
    monitor_id: MonitorId, session: ReadDB, caller: Reader, limit: Limit = 50, offset: Offset = 0
) -> Page[AlertRead]:
    """Warnings and critical alerts with their evidence, newest first."""
    monitor = service.get_monitor(session=session, project_id=caller.project_id, monitor_id=monitor_id)
    items, total = monitor_status.list_alerts(session, monitor.id, limit, offset)
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.get("/monitors/{monitor_id}/examples", response_model=list[ExampleRead])
def list_examples(
    monitor_id: MonitorId,
    session: ReadDB,
    caller: Reader,
    version: Annotated[
        int | None, Query(ge=1, le=MAX_INT, description="Only this version's outputs.")
    ] = None,
    scorer: Annotated[str | None, Query(max_length=64, description="Only this rule's scores.")] = None,
    failed: Annotated[bool | None, Query(description="Only failed (true) or passed (false) scores.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[ExampleRead]:
    """Scored production outputs, newest first (the `examples` link of an alert)."""
    monitor = service.get_monitor(session=session, project_id=caller.project_id, monitor_id=monitor_id)
    return monitor_status.examples(
        session, monitor, version=version, rule=scorer, failed=failed, limit=limit, offset=offset
    )
