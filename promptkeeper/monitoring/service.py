"""Monitors: create, read, change, delete; which generations they sample; feedback as scores.

A monitor's scorers are offline scorers that need no expected output (format, JSON schema, length,
required fields, safety, blocklists, an LLM judge with a rubric) or user-feedback signals, which
become scores when the feedback arrives (`FEEDBACK`). Their params are checked when the monitor is
saved, so a typo fails the request instead of every scoring job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from promptkeeper.access.service import Actor
from promptkeeper.audit.service import record
from promptkeeper.core import scorers as scoring
from promptkeeper.db.base import utcnow
from promptkeeper.errors import Conflict, NotFound, ValidationFailed
from promptkeeper.monitoring.models import Monitor
from promptkeeper.monitoring.schemas import MonitorCreate, MonitorRead, MonitorUpdate, RuleIn
from promptkeeper.prompts.models import Environment, Prompt
from promptkeeper.prompts.service import get_environment, get_prompt

#: Feedback signals usable as scorers: the score in [0, 1] of a generation's feedback field.
FEEDBACK: dict[str, tuple[str, Callable[[Any], float]]] = {
    "feedback_thumbs": ("thumbs", lambda thumbs: 1.0 if thumbs > 0 else 0.0),
    "feedback_rating": ("rating", lambda rating: (float(rating) - 1.0) / 4.0),
    "feedback_edited": ("edited", lambda edited: 0.0 if edited else 1.0),
    "feedback_regenerated": ("regenerated", lambda regenerated: 0.0 if regenerated else 1.0),
}
_SAMPLE_SALT = b"promptkeeper-monitor:"


def costly(rule: dict[str, Any]) -> bool:
    """Whether a rule's scorer costs money or a model call per record (an LLM judge, embeddings):
    only those are limited to the monitor's sample. Heuristics and feedback count on every
    generation, so sampling never thins the cheap evidence."""
    if rule["scorer"] in FEEDBACK:
        return False
    try:
        spec = scoring.get_scorer(rule["scorer"])
    except scoring.ScorerError:  # a plugin no longer loaded: its score will say so, cheaply
        return False
    return spec.needs_judge or spec.needs_embedder


class WorkerNeed:
    """Whether a monitor's generation is a scoring job: a cheap rule scores every generation, a
    costly one the sample; feedback rules are scored at ingestion. Worked out once per monitor for a
    batch (the rules' scorer lookups cost more than the sampling hash)."""

    __slots__ = ("always", "rate", "sampled")

    def __init__(self, always: bool, sampled: bool, rate: float) -> None:
        self.always, self.sampled, self.rate = always, sampled, rate

    @classmethod
    def of(cls, rules: Sequence[dict[str, Any]], rate: float) -> WorkerNeed:
        worked = [rule for rule in rules if rule["scorer"] not in FEEDBACK]
        return cls(any(not costly(rule) for rule in worked), bool(worked), rate)

    def needs(self, request_id: str) -> bool:
        return self.always or (self.sampled and sampled(request_id, self.rate))


def sampled(request_id: str, rate: float) -> bool:
    """Whether a request falls in a sample of `rate`: a hash of the request id alone, so the same
    request is in or out on every replay, every server and every SDK."""
    if rate >= 1.0:
        return True
    digest = hashlib.blake2b(_SAMPLE_SALT + request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64 < rate


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", details={"field": field})


def check_rules(
    rules: Sequence[RuleIn], judge_provider: str | None, judge_model: str | None
) -> list[dict[str, Any]]:
    """The rules as stored (name, threshold filled in), or the first problem, naming its field."""
    stored: list[dict[str, Any]] = []
    names: set[str] = set()
    for index, rule in enumerate(rules):
        field = f"body.scorers[{index}]"
        name = rule.name or rule.scorer
        if name in names:
            raise _invalid(f"{field}.name", f"'{name}' is used twice (give one of them a name)")
        names.add(name)
        if rule.scorer in FEEDBACK:
            if rule.params:
                raise _invalid(f"{field}.params", f"feedback signal '{rule.scorer}' takes no params")
            threshold = 0.5 if rule.threshold is None else rule.threshold
        else:
            try:
                spec = scoring.get_scorer(rule.scorer)
            except scoring.ScorerError as exc:
                raise _invalid(f"{field}.scorer", str(exc)) from None
            try:
                spec.check_params(rule.params)
            except scoring.ScorerError as exc:
                raise _invalid(f"{field}.params", str(exc)) from None
            if spec.needs_expected or spec.needs_embedder:
                raise _invalid(
                    f"{field}.scorer",
                    f"scorer '{rule.scorer}' needs an expected output, which production traffic lacks",
                )
            if spec.needs_judge and not (judge_provider and judge_model):
                raise _invalid(
                    f"{field}.scorer",
                    f"scorer '{rule.scorer}' needs a judge: set judge_provider and judge_model",
                )
            threshold = spec.default_threshold if rule.threshold is None else rule.threshold
        stored.append(
            {
                "name": name,
                "scorer": rule.scorer,
                "params": dict(rule.params),
                "threshold": threshold,
                "kind": rule.kind,
                "warning_margin": rule.warning_margin,
                "critical_margin": rule.critical_margin,
                "floor": rule.floor,
            }
        )
    return stored


def monitor_read(session: Session, monitor: Monitor) -> MonitorRead:
    prompt = session.get(Prompt, monitor.prompt_id)
    env = session.get(Environment, monitor.environment_id)
    assert prompt is not None and env is not None  # foreign keys
    return MonitorRead.of(monitor, prompt=prompt.name, environment=env.name)


def _settings(monitor: Monitor) -> dict[str, Any]:
    return {
        name: getattr(monitor, name)
        for name in (
            "enabled",
            "sample_rate",
            "rules",
            "window_size",
            "min_sample",
            "check_every",
            "consecutive",
            "alpha",
            "auto_rollback",
            "cooldown_seconds",
            "judge_provider",
            "judge_model",
        )
    }


def create_monitor(*, session: Session, actor: Actor, data: MonitorCreate) -> Monitor:
    prompt = get_prompt(session=session, project_id=actor.project_id, name=data.prompt)
    env = get_environment(session=session, project_id=actor.project_id, name=data.environment)
    rules = check_rules(data.scorers, data.judge_provider, data.judge_model)
    existing = session.scalar(
        select(Monitor.id).where(Monitor.prompt_id == prompt.id, Monitor.environment_id == env.id)
    )
    if existing is not None:
        raise Conflict(
            f"'{data.prompt}' in '{data.environment}' already has monitor {existing} (change it instead)",
            details={"monitor_id": existing},
        )
    values = data.model_dump(exclude={"prompt", "environment", "scorers"})
    monitor = Monitor(
        project_id=actor.project_id,
        prompt_id=prompt.id,
        environment_id=env.id,
        rules=rules,
        created_by=actor.name,
        **values,
    )
    session.add(monitor)
    session.flush()
    _audit(session, actor, "monitor.created", monitor, after=_settings(monitor))
    return monitor


def get_monitor(*, session: Session, project_id: int, monitor_id: int, lock: bool = False) -> Monitor:
    query = select(Monitor).where(Monitor.id == monitor_id, Monitor.project_id == project_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    monitor = session.scalar(query)
    if monitor is None:
        raise NotFound(f"monitor {monitor_id} not found", details={"monitor_id": monitor_id})
    return monitor


def list_monitors(
    *, session: Session, project_id: int, prompt: str | None, environment: str | None, limit: int, offset: int
) -> tuple[list[Monitor], int]:
    query = select(Monitor).where(Monitor.project_id == project_id)
    if prompt is not None:
        query = query.join(Prompt, Prompt.id == Monitor.prompt_id).where(Prompt.name == prompt)
    if environment is not None:
        query = query.join(Environment, Environment.id == Monitor.environment_id).where(
            Environment.name == environment
        )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Monitor.id).limit(limit).offset(offset))
    return list(rows), total


def update_monitor(*, session: Session, actor: Actor, monitor: Monitor, data: MonitorUpdate) -> Monitor:
    before = _settings(monitor)
    changes = data.model_dump(exclude_unset=True, exclude={"scorers"})
    for name, value in changes.items():
        if value is None and name not in ("judge_provider", "judge_model"):
            raise _invalid(f"body.{name}", "must not be null")
    judge_provider = changes.get("judge_provider", monitor.judge_provider)
    judge_model = changes.get("judge_model", monitor.judge_model)
    if data.scorers is not None:
        monitor.rules = check_rules(data.scorers, judge_provider, judge_model)
    elif "judge_provider" in changes or "judge_model" in changes:
        check_rules([RuleIn(**_rule_in(rule)) for rule in monitor.rules], judge_provider, judge_model)
    for name, value in changes.items():
        setattr(monitor, name, value)
    if monitor.min_sample > monitor.window_size:
        raise _invalid("body.min_sample", "must not exceed window_size")
    monitor.updated_at = utcnow()
    _audit(session, actor, "monitor.updated", monitor, before=before, after=_settings(monitor))
    return monitor


def _rule_in(rule: dict[str, Any]) -> dict[str, Any]:
    return {
        key: rule[key]
        for key in (
            "scorer",
            "name",
            "params",
            "threshold",
            "kind",
            "warning_margin",
            "critical_margin",
            "floor",
        )
    }


def delete_monitor(*, session: Session, actor: Actor, monitor: Monitor) -> None:
    _audit(session, actor, "monitor.deleted", monitor, before=_settings(monitor))
    session.delete(monitor)


def _audit(
    session: Session,
    actor: Actor,
    action: str,
    monitor: Monitor,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    prompt = session.get(Prompt, monitor.prompt_id)
    env = session.get(Environment, monitor.environment_id)
    record(
        session=session,
        actor=actor,
        action=action,
        target_type="monitor",
        target=str(monitor.id),
        prompt=prompt.name if prompt else None,
        environment=env.name if env else None,
        before=before,
        after=after,
    )
