"""Appending to and reading the audit log; queueing the webhook deliveries an entry triggers.

`record` is called by every service that changes something, inside the caller's transaction:
the entry, and a delivery row for each webhook subscribed to the action, commit or roll back with
the change itself. Delivery happens after the commit (`promptkeeper.audit.delivery`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from promptkeeper.audit.models import AuditEntry, Webhook, WebhookDelivery
from promptkeeper.core.actor import Actor
from promptkeeper.db.base import utcnow
from promptkeeper.db.engine import emit


@dataclass(frozen=True, slots=True)
class DeliveriesQueued:
    """Post-commit event: webhook deliveries are waiting (the dispatcher wakes up at once)."""

    count: int


def record(
    *,
    session: Session,
    actor: Actor,
    action: str,
    target_type: str,
    target: str,
    prompt: str | None = None,
    environment: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    severity: str = "info",
    project_id: int | None = None,
) -> AuditEntry:
    """Append an entry (and queue its webhooks) in the caller's transaction."""
    summary: dict[str, Any] = {}
    if before is not None:
        summary["before"] = before
    if after is not None:
        summary["after"] = after
    entry = AuditEntry(
        project_id=project_id if project_id is not None else actor.project_id,
        at=utcnow(),
        actor=actor.name,
        actor_key_id=actor.key_id,
        actor_user_id=actor.user_id,
        action=action,
        target_type=target_type,
        target=target[:256],
        prompt=prompt,
        environment=environment,
        summary=summary,
        request_id=actor.request_id,
        severity=severity,
    )
    session.add(entry)
    session.flush()
    _enqueue(session, entry)
    return entry


def subscribed(patterns: list[str], action: str) -> bool:
    """`review.*` matches `review.approved`; `*` matches everything."""
    return any(fnmatchcase(action, pattern) for pattern in patterns)


def event_payload(entry: AuditEntry, project: str | None = None) -> dict[str, Any]:
    """The JSON body a webhook receives for an audit entry (also `GET /v1/audit` items)."""
    return {
        "id": entry.id,
        "event": entry.action,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "target_type": entry.target_type,
        "target": entry.target,
        "prompt": entry.prompt,
        "environment": entry.environment,
        "summary": entry.summary,
        "request_id": entry.request_id,
        "severity": entry.severity,
        **({"project": project} if project is not None else {}),
    }


def _enqueue(session: Session, entry: AuditEntry) -> None:
    hooks = session.scalars(
        select(Webhook).where(Webhook.project_id == entry.project_id, Webhook.active.is_(True))
    ).all()
    queued = 0
    for hook in hooks:
        if not subscribed(hook.events, entry.action):
            continue
        session.add(
            WebhookDelivery(
                webhook_id=hook.id,
                project_id=entry.project_id,
                event=entry.action,
                payload=event_payload(entry),
                next_attempt_at=entry.at,
            )
        )
        queued += 1
    if queued:
        session.flush()
        emit(session, DeliveriesQueued(queued))


def list_entries(
    *,
    session: Session,
    project_id: int,
    prompt: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    request_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[AuditEntry], int]:
    """Entries newest first; `action` may end in `*` (`review.*`)."""
    query = select(AuditEntry).where(AuditEntry.project_id == project_id)
    if prompt is not None:
        query = query.where(AuditEntry.prompt == prompt)
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    if action is not None:
        if action.endswith("*"):
            query = query.where(AuditEntry.action.startswith(action[:-1], autoescape=True))
        else:
            query = query.where(AuditEntry.action == action)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    if request_id is not None:
        query = query.where(AuditEntry.request_id == request_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit).offset(offset))
    return list(rows), total
