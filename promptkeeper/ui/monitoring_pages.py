"""Monitoring pages: monitors, their windows, a chart of scores over looks, alerts, failing outputs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from promptkeeper.monitoring import service as monitor_service
from promptkeeper.monitoring import status as monitor_status
from promptkeeper.ui import charts
from promptkeeper.ui.web import SignedIn, page, read, ui_page

router = APIRouter(include_in_schema=False)


@router.get("/ui/monitors")
@ui_page
async def monitors_page(request: Request, user: SignedIn) -> Response:

    def load(session: Session) -> dict[str, Any]:
        rows, _ = monitor_service.list_monitors(
            session=session,
            project_id=user.principal.project_id,
            prompt=None,
            environment=None,
            limit=500,
            offset=0,
        )
        return {"monitors": [monitor_status.status(session, m, checks=1) for m in rows]}

    return page(request, "monitors.html", user, **(await read(request, load)))


@router.get("/ui/monitors/{monitor_id}")
@ui_page
async def monitor_page(request: Request, user: SignedIn, monitor_id: int) -> Response:

    def load(session: Session) -> Any:
        monitor = monitor_service.get_monitor(
            session=session, project_id=user.principal.project_id, monitor_id=monitor_id
        )
        return monitor_status.status(session, monitor, checks=500)

    status = await read(request, load)
    series: dict[str, list[tuple[float, float]]] = {}
    for check in reversed(status.checks):
        for finding in check.findings:
            if finding.get("current") is not None:
                series.setdefault(f"{finding['scorer']} v{check.version}", []).append(
                    (float(check.id), float(finding["current"]))
                )
    chart = charts.line_chart(
        "Score of the live version at each look (pass rate or mean)",
        series,
        y_min=0.0,
        y_max=1.0,
        x_label="looks",
    )
    return page(request, "monitor.html", user, status=status, chart=chart)


@router.get("/ui/monitors/{monitor_id}/examples")
@ui_page
async def monitor_examples(
    request: Request,
    user: SignedIn,
    monitor_id: int,
    version: int | None = None,
    scorer: str | None = None,
    failed: bool | None = None,
) -> Response:

    def load(session: Session) -> dict[str, Any]:
        monitor = monitor_service.get_monitor(
            session=session, project_id=user.principal.project_id, monitor_id=monitor_id
        )
        rows = monitor_status.examples(
            session, monitor, version=version, rule=scorer, failed=failed, limit=100, offset=0
        )
        return {"monitor": monitor_service.monitor_read(session, monitor), "examples": rows}

    data = await read(request, load)
    return page(request, "examples.html", user, version=version, scorer=scorer, failed=failed, **data)
