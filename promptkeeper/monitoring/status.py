"""The monitor status page: live windows, looks over time, alerts, pending work. Read-only."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from promptkeeper.monitoring import looks
from promptkeeper.monitoring.models import Generation, Monitor, MonitorAlert, MonitorCheck, MonitorScore
from promptkeeper.monitoring.schemas import (
    AlertRead,
    CheckRead,
    ExampleRead,
    MonitorStatus,
    ScorerStatus,
    WindowRead,
)
from promptkeeper.monitoring.service import monitor_read


def list_alerts(session: Session, monitor_id: int, limit: int, offset: int) -> tuple[list[AlertRead], int]:
    where = MonitorAlert.monitor_id == monitor_id
    total = session.scalar(select(func.count()).select_from(MonitorAlert).where(where)) or 0
    rows = session.scalars(
        select(MonitorAlert).where(where).order_by(MonitorAlert.id.desc()).limit(limit).offset(offset)
    )
    alerts = [AlertRead.of(a, examples=looks.examples_path(a.monitor_id, a.version, a.scorer)) for a in rows]
    return alerts, total


def _window(span: looks.Span, version: int, kind: str) -> WindowRead:
    level = span.window.level_of(kind) if span.window.n else None
    return WindowRead(version=version, n=span.window.n, level=level, start=span.start, end=span.end)


def status(session: Session, monitor: Monitor, checks: int = 100) -> MonitorStatus:
    read = monitor_read(session, monitor)
    pending = (
        session.scalar(
            select(func.count())
            .select_from(Generation)
            .where(Generation.monitor_id == monitor.id, Generation.score_state.in_(("pending", "leased")))
        )
        or 0
    )
    cost = session.scalar(
        select(func.sum(MonitorScore.cost_usd)).where(MonitorScore.monitor_id == monitor.id)
    )
    alerts, _ = list_alerts(session, monitor.id, 20, 0)
    recent = [
        CheckRead(
            id=c.id,
            at=c.at,
            version=c.version,
            baseline_version=c.baseline_version,
            look=c.look,
            scored=c.scored,
            level=c.level,
            acting=c.acting,
            findings=c.findings,
        )
        for c in session.scalars(
            select(MonitorCheck)
            .where(MonitorCheck.monitor_id == monitor.id)
            .order_by(MonitorCheck.id.desc())
            .limit(checks)
        )
    ]
    live = looks.segment(session, monitor)
    common = {
        "monitor": read,
        "pending": pending,
        "judge_cost_usd": float(cost or 0.0),
        "checks": recent,
        "alerts": alerts,
    }
    if live is None:
        return MonitorStatus(
            live_version=None,
            live_since=None,
            baseline_version=None,
            state="no_release",
            message="nothing is deployed to this environment",
            scored=0,
            scorers=[],
            **common,
        )
    live = looks.with_baseline(session, monitor, live)
    counts = looks.scored_counts(session, monitor.id, live.version, live.since)
    scored = max((counts.get(rule["name"], 0) for rule in monitor.rules), default=0)
    latest = next((c for c in recent if c.version == live.version), None)
    current_look = latest is not None and latest.at >= live.since
    scorers = []
    for rule in monitor.rules:
        name = rule["name"]
        current = looks.window(
            session, monitor.id, live.version, name, limit=monitor.window_size, since=live.since
        )
        baseline = None
        if live.baseline_version is not None:
            span = looks.window(
                session, monitor.id, live.baseline_version, name, limit=monitor.window_size, before=live.since
            )
            baseline = _window(span, live.baseline_version, rule["kind"])
        level = acting = None
        if current_look and latest is not None:
            finding = next((f for f in latest.findings if f["scorer"] == name), None)
            if finding is not None:
                level, acting = finding["level"], finding.get("acting", "ok")
        scorers.append(
            ScorerStatus(
                name=name,
                kind=rule["kind"],
                current=_window(current, live.version, rule["kind"]),
                baseline=baseline,
                level=level,
                acting=acting,
            )
        )
    if not current_look or latest is None:
        state = "collecting"
        message = f"{scored} of {monitor.min_sample} scored records before the first decision"
    else:
        state = latest.acting
        message = f"look {latest.look} at {latest.scored} scored records: acting level {latest.acting}"
    return MonitorStatus(
        live_version=live.version,
        live_since=live.since,
        baseline_version=live.baseline_version,
        state=state,
        message=message,
        scored=scored,
        scorers=scorers,
        **common,
    )


def examples(
    session: Session,
    monitor: Monitor,
    *,
    version: int | None,
    rule: str | None,
    failed: bool | None,
    limit: int,
    offset: int,
) -> list[ExampleRead]:
    """Scored outputs, newest first: what an alert's `examples` link shows."""
    query = (
        select(MonitorScore, Generation)
        .join(Generation, Generation.id == MonitorScore.generation_id)
        .where(MonitorScore.monitor_id == monitor.id)
    )
    if version is not None:
        query = query.where(MonitorScore.version == version)
    if rule is not None:
        query = query.where(MonitorScore.scorer == rule)
    if failed is not None:
        query = query.where(MonitorScore.passed.is_(not failed))
    rows = session.execute(query.order_by(MonitorScore.id.desc()).limit(limit).offset(offset))
    return [
        ExampleRead(
            generation_id=generation.id,
            request_id=generation.request_id,
            at=generation.at,
            version=score.version,
            scorer=score.scorer,
            value=score.value,
            passed=score.passed,
            detail=score.detail,
            output=generation.output,
            input=generation.input,
        )
        for score, generation in rows
    ]
