"""Looks at a live version: windows, decisions, alerts and the automatic rollback.

A look happens when a rule is due (`due`: its own scored records cross a multiple of
`check_every` after `min_sample`, or the timer finds it with new records or an unconfirmed
breach), in one write transaction under the monitor's row lock, so two workers finishing batches
at once take one look, not two. Each rule due is judged by `core.monitor_decisions.judge`: the live
version's records since it went live (up to `EVIDENCE_WINDOWS` windows: evidence that grows with
the looks) against the **frozen** window of the previous version, its last `window_size` scores
from before the current version went live; drift reads the live version's latest window. A look
is stored (`MonitorCheck`) with every rule's latest finding; the level a rule acts on is the one
reached by `consecutive` looks at it in a row.

When a rule's acting level rises above what this deployment has already alerted, an alert is stored
and published (audit entry `alert.warning` / `alert.critical`, hence the signed webhooks, and the
log). A critical alert with `auto_rollback` rolls the environment back to the last known-good
version: the most recent earlier version whose latest look was `ok`, never a version that had a
critical alert on this monitor (so a bad version is never brought back automatically), and not
within `cooldown_seconds` of the monitor's previous automatic rollback. The rollback is an ordinary
release change (`auto_rollback` in the history, with the evidence as its reason), so it propagates
to every instance and SDK like any rollback, plus an audit entry `rollback.automatic`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from promptkeeper.access.service import Actor
from promptkeeper.audit.service import record
from promptkeeper.core import monitor_decisions as decisions
from promptkeeper.db.base import utcnow
from promptkeeper.db.engine import Database
from promptkeeper.deployments import releases
from promptkeeper.errors import PromptKeeperError
from promptkeeper.monitoring.models import Monitor, MonitorAlert, MonitorCheck, MonitorScore
from promptkeeper.prompts.models import Deployment, Environment, Prompt, Release

log = logging.getLogger(__name__)
SYSTEM_ACTOR = "monitor"


@dataclass(frozen=True)
class Segment:
    """The live version's current stretch: since the deployment that made it live."""

    version: int
    since: datetime
    deployment_id: int
    baseline_version: int | None


def segment(session: Session, monitor: Monitor) -> Segment | None:
    """The oldest row of the newest run of history rows serving the live version (experiment
    weight changes keep the version, so they do not restart the windows)."""
    release = session.scalar(
        select(Release).where(
            Release.prompt_id == monitor.prompt_id, Release.environment_id == monitor.environment_id
        )
    )
    if release is None:
        return None
    rows = session.scalars(
        select(Deployment)
        .where(Deployment.prompt_id == monitor.prompt_id, Deployment.environment_id == monitor.environment_id)
        .order_by(Deployment.revision.desc())
        .limit(200)
    )
    start: Deployment | None = None
    for row in rows:
        if row.version_number != release.version_number:
            break
        start = row
    assert start is not None  # the release's own row serves its version
    return Segment(release.version_number, start.at, start.id, start.previous_version)


@dataclass(frozen=True)
class Span:
    """A window and the times of its first and last scores."""

    window: decisions.Window
    start: datetime | None
    end: datetime | None


def window(
    session: Session,
    monitor_id: int,
    version: int,
    rule: str,
    *,
    limit: int,
    since: datetime | None = None,
    before: datetime | None = None,
    oldest: bool = False,
) -> Span:
    """A rule's scores for `version`: the newest `limit` (or the oldest, for drift's reference)."""
    query = select(MonitorScore.value, MonitorScore.passed, MonitorScore.at).where(
        MonitorScore.monitor_id == monitor_id, MonitorScore.version == version, MonitorScore.scorer == rule
    )
    if since is not None:
        query = query.where(MonitorScore.at >= since)
    if before is not None:
        query = query.where(MonitorScore.at < before)
    order = (MonitorScore.at, MonitorScore.id) if oldest else (MonitorScore.at.desc(), MonitorScore.id.desc())
    rows = list(session.execute(query.order_by(*order).limit(limit)).all())
    if not oldest:
        rows.reverse()
    return Span(
        decisions.Window([float(r[0]) for r in rows], [bool(r[1]) for r in rows]),
        rows[0][2] if rows else None,
        rows[-1][2] if rows else None,
    )


#: The regression and floor tests read up to this many windows of the live version's records.
EVIDENCE_WINDOWS = 20


def evidence_cap(monitor: Monitor) -> int:
    return monitor.window_size * EVIDENCE_WINDOWS


def evidence_counts(
    session: Session, monitor_id: int, version: int, rule: str, *, limit: int, since: datetime
) -> Span:
    """The newest `limit` scores as counts only (a pass-rate rule's regression and floor tests)."""
    newest = (
        select(MonitorScore.passed, MonitorScore.at)
        .where(
            MonitorScore.monitor_id == monitor_id,
            MonitorScore.version == version,
            MonitorScore.scorer == rule,
            MonitorScore.at >= since,
        )
        .order_by(MonitorScore.at.desc(), MonitorScore.id.desc())
        .limit(limit)
        .subquery()
    )
    passes = func.sum(case((newest.c.passed.is_(True), 1), else_=0))
    row = session.execute(select(func.count(), passes, func.min(newest.c.at), func.max(newest.c.at))).one()
    return Span(decisions.Window.counts(int(row[1] or 0), int(row[0])), row[2], row[3])


_FROZEN: OrderedDict[tuple[Any, ...], Span] = OrderedDict()
_FROZEN_SIZE = 512
_FROZEN_LOCK = threading.Lock()


def _frozen(key: tuple[Any, ...], load: Callable[[], Span]) -> Span:
    """Windows that no longer change (the previous version's last window before the deployment,
    the live version's first window), read once per process instead of at every look. Keys hold
    the deployment's time as well as its id, so two databases used by one process cannot mix."""
    with _FROZEN_LOCK:
        found = _FROZEN.get(key)
        if found is not None:
            _FROZEN.move_to_end(key)
            return found
    span = load()
    with _FROZEN_LOCK:
        _FROZEN[key] = span
        while len(_FROZEN) > _FROZEN_SIZE:
            _FROZEN.popitem(last=False)
    return span


def scored_counts(session: Session, monitor_id: int, version: int, since: datetime) -> dict[str, int]:
    rows = session.execute(
        select(MonitorScore.scorer, func.count())
        .where(
            MonitorScore.monitor_id == monitor_id, MonitorScore.version == version, MonitorScore.at >= since
        )
        .group_by(MonitorScore.scorer)
    )
    return {str(row[0]): int(row[1]) for row in rows}


def _rule(stored: dict[str, Any]) -> decisions.Rule:
    return decisions.Rule(
        scorer=stored["name"],
        kind=stored["kind"],
        warning_margin=stored["warning_margin"],
        critical_margin=stored["critical_margin"],
        floor=stored["floor"],
    )


#: Without new evidence a look is repeated (on the timer) only for a rule whose latest finding is
#: a breach not yet acted on: the looks that confirm it must not wait for traffic.
LEVEL_HISTORY = 50


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    at = datetime.fromisoformat(value)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def due(
    monitor: Monitor, scored: int, before: dict[str, Any] | None, now: datetime, look_interval: float
) -> bool:
    """Whether a rule with `scored` records is looked at now, given its latest finding `before`:
    at its minimum sample, whenever its own evidence crosses a multiple of `check_every`, and on
    the timer when it has new records or a breach waits for the looks that confirm it."""
    if scored < monitor.min_sample:
        return False
    if before is None:
        return True
    last = int(before.get("scored", before.get("current_n", 0)))
    if scored // monitor.check_every > last // monitor.check_every:
        return True
    at = _time(before.get("at"))
    if at is not None and now - at < timedelta(seconds=look_interval):
        return False
    return scored > last or before.get("level") != before.get("acting")


def check(database: Database, monitor_id: int, *, look_interval: float = 30.0) -> MonitorCheck | None:
    """Take a look if one is due; returns the stored look, or None.

    Whether one is due is read first without the write lock: workers call this after every batch
    and on a timer, mostly to find nothing due."""
    with database.session() as session:
        monitor = session.get(Monitor, monitor_id)
        if monitor is None or not monitor.enabled or not _pending(session, monitor, utcnow(), look_interval):
            return None
    with database.write_session() as session:
        query = select(Monitor).where(Monitor.id == monitor_id)
        if database.is_postgres:
            query = query.with_for_update()
        monitor = session.scalar(query)
        if monitor is None or not monitor.enabled:
            return None
        taken = look(session, monitor, look_interval=look_interval)
        session.commit()
        return taken


def _state(session: Session, monitor: Monitor, live: Segment) -> tuple[MonitorCheck | None, dict[str, int]]:
    """The latest look of this deployment and each rule's scored records since it went live."""
    previous = session.scalar(
        select(MonitorCheck)
        .where(MonitorCheck.monitor_id == monitor.id, MonitorCheck.deployment_id == live.deployment_id)
        .order_by(MonitorCheck.id.desc())
        .limit(1)
    )
    return previous, scored_counts(session, monitor.id, live.version, live.since)


def _pending(session: Session, monitor: Monitor, now: datetime, look_interval: float) -> bool:
    live = segment(session, monitor)
    if live is None:
        return False
    previous, counts = _state(session, monitor, live)
    before = {f["scorer"]: f for f in previous.findings} if previous is not None else {}
    return any(
        due(monitor, counts.get(rule["name"], 0), before.get(rule["name"]), now, look_interval)
        for rule in monitor.rules
    )


def look(
    session: Session, monitor: Monitor, now: datetime | None = None, *, look_interval: float = 30.0
) -> MonitorCheck | None:
    """The look itself, in the caller's transaction (which holds the monitor's lock).

    Each rule is judged when it is due (`due`), on its own evidence and with its own look number
    (alpha spending is per rule), so a rule fed slowly (a judge on a sample) is neither starved by
    nor re-tested at the pace of a fast one. The other rules' latest findings are carried into the
    stored look unchanged (`fresh: false`), so the latest look always holds every rule's state."""
    now = now or utcnow()
    live = segment(session, monitor)
    if live is None:
        return None
    previous, counts = _state(session, monitor, live)
    before = {f["scorer"]: f for f in previous.findings} if previous is not None else {}
    rules = [
        stored
        for stored in monitor.rules
        if due(monitor, counts.get(stored["name"], 0), before.get(stored["name"]), now, look_interval)
    ]
    if not rules:
        return None
    live = with_baseline(session, monitor, live)
    number = (previous.look + 1) if previous is not None else 1
    findings: list[decisions.Finding] = []
    stored_findings: list[dict[str, Any]] = []
    acting: dict[str, decisions.Level] = {}
    spans: dict[str, tuple[Span, Span | None]] = {}
    for stored in rules:
        name = stored["name"]
        earlier = before.get(name)
        rule_look = int(earlier.get("look", number - 1)) + 1 if earlier is not None else 1
        finding, spans[name] = _judge_rule(session, monitor, live, stored, counts[name], rule_look)
        findings.append(finding)
        levels = [*(earlier.get("levels", [earlier["level"]]) if earlier else []), finding.level]
        levels = levels[-LEVEL_HISTORY:]
        acting[name] = decisions.acting_level(levels, monitor.consecutive)
        stored_findings.append(
            {
                **finding.as_dict(),
                "acting": acting[name],
                "look": rule_look,
                "scored": counts[name],
                "levels": levels,
                "at": now.isoformat(),
                "fresh": True,
            }
        )
    fresh = {f.scorer for f in findings}
    stored_findings += [{**f, "fresh": False} for name, f in before.items() if name not in fresh]
    ranks = decisions.LEVELS.index
    taken = MonitorCheck(
        monitor_id=monitor.id,
        deployment_id=live.deployment_id,
        version=live.version,
        baseline_version=live.baseline_version,
        at=now,
        look=number,
        scored=max((counts.get(rule["name"], 0) for rule in monitor.rules), default=0),
        level=max((f["level"] for f in stored_findings), key=ranks),
        acting=max((f.get("acting", "ok") for f in stored_findings), key=ranks),
        findings=stored_findings,
    )
    session.add(taken)
    session.flush()
    _alert(session, monitor, live, taken, findings, acting, spans)
    return taken


def _judge_rule(
    session: Session, monitor: Monitor, live: Segment, stored: dict[str, Any], scored: int, rule_look: int
) -> tuple[decisions.Finding, tuple[Span, Span | None]]:
    """One rule at its look `rule_look`: its evidence, its baseline, its drift reference."""
    name = stored["name"]
    recent_span = window(session, monitor.id, live.version, name, limit=monitor.window_size, since=live.since)
    if scored <= monitor.window_size:
        current = recent_span
    elif stored["kind"] == "pass_rate":
        current = evidence_counts(
            session, monitor.id, live.version, name, limit=evidence_cap(monitor), since=live.since
        )
    else:
        current = window(
            session, monitor.id, live.version, name, limit=evidence_cap(monitor), since=live.since
        )
    baseline: Span | None = None
    if live.baseline_version is not None and live.baseline_version != live.version:
        baseline = _frozen(
            (
                "baseline",
                monitor.id,
                live.deployment_id,
                live.since,
                name,
                live.baseline_version,
                monitor.window_size,
            ),
            partial(
                window,
                session,
                monitor.id,
                live.baseline_version or 0,
                name,
                limit=monitor.window_size,
                before=live.since,
            ),
        )
        if baseline.window.n < monitor.min_sample:
            baseline = None
    reference = None  # drift: the version's first window, once the latest window lies after it
    if scored >= 2 * monitor.window_size:
        reference = _frozen(
            (
                "reference",
                monitor.id,
                live.deployment_id,
                live.since,
                name,
                live.version,
                monitor.window_size,
            ),
            partial(
                window,
                session,
                monitor.id,
                live.version,
                name,
                limit=monitor.window_size,
                since=live.since,
                oldest=True,
            ),
        ).window
    finding = decisions.judge(
        _rule(stored),
        current.window,
        baseline.window if baseline else None,
        look=rule_look,
        alpha=monitor.alpha,
        reference=reference,
        recent=recent_span.window,
    )
    return finding, (current, baseline)


def _alert(
    session: Session,
    monitor: Monitor,
    live: Segment,
    taken: MonitorCheck,
    findings: list[decisions.Finding],
    acting: dict[str, decisions.Level],
    spans: dict[str, tuple[Span, Span | None]],
) -> None:
    alerted: dict[str, str] = {}  # each rule's highest level already alerted in this deployment
    for rule, level in session.execute(
        select(MonitorAlert.scorer, MonitorAlert.level).where(
            MonitorAlert.monitor_id == monitor.id, MonitorAlert.deployment_id == live.deployment_id
        )
    ):
        if decisions.LEVELS.index(level) > decisions.LEVELS.index(alerted.get(rule, "ok")):
            alerted[rule] = level
    critical_before = "critical" in alerted.values()
    prompt = session.get(Prompt, monitor.prompt_id)
    env = session.get(Environment, monitor.environment_id)
    assert prompt is not None and env is not None
    new: list[MonitorAlert] = []
    for finding in findings:
        level = acting[finding.scorer]
        if level == "ok":
            continue
        if decisions.LEVELS.index(level) <= decisions.LEVELS.index(alerted.get(finding.scorer, "ok")):
            continue
        current, baseline = spans[finding.scorer]
        evidence = _evidence(monitor, prompt, env, live, taken, finding, level, current, baseline)
        alert = MonitorAlert(
            monitor_id=monitor.id,
            check_id=taken.id,
            deployment_id=live.deployment_id,
            version=live.version,
            baseline_version=live.baseline_version,
            level=level,
            scorer=finding.scorer,
            reason=finding.reason,
            at=taken.at,
            evidence=evidence,
            rollback_note="",
        )
        session.add(alert)
        new.append(alert)
    if not new:
        return
    session.flush()
    for alert in new:
        alert.evidence = {**alert.evidence, "alert_id": alert.id}
        record(
            session=session,
            actor=Actor.system(SYSTEM_ACTOR, monitor.project_id),
            action=f"alert.{alert.level}",
            target_type="monitor",
            target=str(monitor.id),
            prompt=prompt.name,
            environment=env.name,
            after=alert.evidence,
            severity="critical" if alert.level == "critical" else "warning",
        )
        log.warning("monitor alert: %s", json.dumps(alert.evidence, default=str, sort_keys=True))
    critical = [a for a in new if a.level == "critical"]
    if critical and monitor.auto_rollback and not critical_before:
        _roll_back(session, monitor, prompt, env, live, critical[0], taken.at)


def _span(span: Span | None, version: int | None) -> dict[str, Any] | None:
    if span is None or version is None:
        return None
    return {
        "version": version,
        "n": span.window.n,
        "start": span.start.isoformat() if span.start else None,
        "end": span.end.isoformat() if span.end else None,
    }


def _evidence(
    monitor: Monitor,
    prompt: Prompt,
    env: Environment,
    live: Segment,
    taken: MonitorCheck,
    finding: decisions.Finding,
    level: str,
    current: Span,
    baseline: Span | None,
) -> dict[str, Any]:
    summary = finding.as_dict()
    return {
        "monitor_id": monitor.id,
        "prompt": prompt.name,
        "environment": env.name,
        "level": level,
        "scorer": finding.scorer,
        "reason": finding.reason,
        "version": live.version,
        "baseline_version": live.baseline_version,
        "windows": {
            "current": _span(current, live.version),
            "baseline": _span(baseline, live.baseline_version),
        },
        "current": summary["current"],
        "baseline": summary["baseline"],
        "effect": summary["effect"],
        "p_value": summary["p_value"],
        "confidence_bound": summary["bound"],
        "alpha": summary["alpha"],
        "method": summary["method"],
        "tests": summary["tests"],
        "look": taken.look,
        "consecutive": monitor.consecutive,
        "examples": examples_path(monitor.id, live.version, finding.scorer),
    }


def _evidence_line(alert: MonitorAlert) -> str:
    """The alert in one line, for the deployment history's reason."""
    evidence = alert.evidence
    windows = evidence.get("windows") or {}

    def level(value: Any, window: dict[str, Any] | None) -> str:
        if value is None or window is None:
            return "n/a"
        return f"{value:.3f} (n {window['n']})"

    p_value = evidence.get("p_value")
    return (
        f"{alert.scorer} {alert.reason} on v{alert.version}: "
        f"{level(evidence.get('current'), windows.get('current'))} against "
        f"v{alert.baseline_version} {level(evidence.get('baseline'), windows.get('baseline'))}, "
        f"p = {p_value:.2g}"
        if p_value is not None
        else "p n/a"
    ) + f", alert {alert.id}"


def examples_path(monitor_id: int, version: int, rule: str) -> str:
    return f"/v1/monitors/{monitor_id}/examples?version={version}&scorer={rule}&failed=true"


def with_baseline(session: Session, monitor: Monitor, live: Segment) -> Segment:
    """The segment compared with its previous version, or, when that one had a critical alert,
    with the last known-good version: a bad predecessor is no yardstick (a second bad deploy would
    look fine next to it)."""
    if live.baseline_version is None or live.baseline_version not in known_bad(session, monitor.id):
        return live
    good, _ = _last_passed(session, monitor, live)
    return replace(live, baseline_version=good)


def known_bad(session: Session, monitor_id: int) -> set[int]:
    return set(
        session.scalars(
            select(MonitorAlert.version).where(
                MonitorAlert.monitor_id == monitor_id, MonitorAlert.level == "critical"
            )
        )
    )


def _last_passed(session: Session, monitor: Monitor, live: Segment) -> tuple[int | None, set[int]]:
    """The most recent earlier version whose latest look was ok and that never had a critical alert."""
    bad = known_bad(session, monitor.id)
    history = session.scalars(
        select(Deployment.version_number)
        .where(Deployment.prompt_id == monitor.prompt_id, Deployment.environment_id == monitor.environment_id)
        .order_by(Deployment.revision.desc())
        .limit(500)
    )
    seen: set[int] = {live.version}
    for version in history:
        if version in seen:
            continue
        seen.add(version)
        if version in bad:
            continue
        latest = session.scalar(
            select(MonitorCheck.level)
            .where(MonitorCheck.monitor_id == monitor.id, MonitorCheck.version == version)
            .order_by(MonitorCheck.id.desc())
            .limit(1)
        )
        if latest == "ok":
            return version, bad
    return None, bad


def last_known_good(session: Session, monitor: Monitor, live: Segment) -> tuple[int | None, str]:
    """The most recent earlier version whose latest look was ok; else the previous version, unless
    it is known bad. Returns the version and how it was chosen."""
    version, bad = _last_passed(session, monitor, live)
    if version is not None:
        return version, f"v{version} is the most recent earlier version whose windows passed"
    if live.baseline_version is not None and live.baseline_version not in bad:
        return live.baseline_version, (
            f"no earlier version has passed its windows yet; v{live.baseline_version} served before this one"
        )
    return None, "no earlier version qualifies (none passed its windows, or each had a critical alert)"


def _roll_back(
    session: Session,
    monitor: Monitor,
    prompt: Prompt,
    env: Environment,
    live: Segment,
    alert: MonitorAlert,
    now: datetime,
) -> None:
    if monitor.last_rollback_at is not None and now < monitor.last_rollback_at + timedelta(
        seconds=monitor.cooldown_seconds
    ):
        alert.rollback_note = (
            f"no automatic rollback: the previous one was at {monitor.last_rollback_at.isoformat()}, "
            f"within the {monitor.cooldown_seconds:g} s cool-down"
        )
        return
    target, why = last_known_good(session, monitor, live)
    if target is None:
        alert.rollback_note = f"no automatic rollback: {why}"
        return
    actor = Actor.system(SYSTEM_ACTOR, monitor.project_id)
    reason = f"monitor {monitor.id}: {_evidence_line(alert)}; {why}"
    try:  # checks come before writes in `rollback`: a refusal leaves nothing half-done
        deployment = releases.rollback(
            session=session,
            project_id=monitor.project_id,
            name=prompt.name,
            environment=env.name,
            version=target,
            actor=actor,
            reason=reason,
            action="auto_rollback",
        )
    except PromptKeeperError as exc:
        alert.rollback_note = f"automatic rollback failed: {exc}"
        log.error(
            "monitor %s: automatic rollback of %s@%s failed: %s", monitor.id, prompt.name, env.name, exc
        )
        return
    monitor.last_rollback_at = now
    alert.rollback_to = target
    alert.rollback_deployment_id = deployment.id
    alert.rollback_note = why
    evidence = {
        **alert.evidence,
        "rolled_back_from": live.version,
        "rolled_back_to": target,
        "deployment_id": deployment.id,
    }
    record(
        session=session,
        actor=actor,
        action="rollback.automatic",
        target_type="deployment",
        target=f"{prompt.name}@{env.name}",
        prompt=prompt.name,
        environment=env.name,
        before={"version": live.version},
        after=evidence,
        severity="critical",
    )
    log.warning(
        "monitor %s rolled %s@%s back from v%s to v%s",
        monitor.id,
        prompt.name,
        env.name,
        live.version,
        target,
    )
