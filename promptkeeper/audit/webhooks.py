"""Webhooks: subscriptions of a URL to audit actions, and the log of their deliveries.

A webhook's `secret` signs every delivery (`promptkeeper.audit.signing.sign`). It is returned once,
by `create_webhook`, and never again: reads, the audit log and logs leave it out.

Every change to a webhook is itself an audit entry (`webhook.created`, `webhook.updated`, ...),
so a `*` webhook hears about changes to webhooks too. Queueing a delivery (`ping`, `redeliver`)
emits `DeliveriesQueued`, which wakes the dispatcher once the caller has committed.

A URL's userinfo and query values are credentials as often as not (`?token=…`): the audit log
(which viewers read, and which `*` webhooks receive) and ping bodies show the URL with them masked
(`core.urls.redact_url`); only the webhook routes, for admins, return it whole. Creating or changing
a URL checks it against the egress policy (`promptkeeper.core.egress`); the dispatcher checks
again, against what the host resolves to, whenever it connects.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from promptkeeper.audit.models import Webhook, WebhookDelivery
from promptkeeper.audit.schemas import WebhookCreate, WebhookUpdate
from promptkeeper.audit.service import DeliveriesQueued, record
from promptkeeper.core.actor import Actor
from promptkeeper.core.egress import EgressPolicy
from promptkeeper.core.secrets import PREFIX, SecretBox
from promptkeeper.core.urls import redact_url
from promptkeeper.db.base import utcnow
from promptkeeper.db.engine import emit, secret_box
from promptkeeper.errors import Conflict, NotFound, ValidationFailed

PING = "ping"


def generate_secret() -> str:
    return secrets.token_urlsafe(32)


def _settings_of(webhook: Webhook) -> dict[str, Any]:
    """What describes a webhook, but the secret (the audit log masks the URL: `_audited`)."""
    return {
        "url": webhook.url,
        "events": list(webhook.events),
        "description": webhook.description,
        "active": webhook.active,
    }


def _audited(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: redact_url(v) if k == "url" else v for k, v in settings.items()}


def _check_egress(egress: EgressPolicy, url: str) -> None:
    """422 naming `url` when the URL itself names an address the policy refuses."""
    try:
        egress.check_url(url)
    except ValueError as exc:
        error = {"field": "body.url", "message": str(exc), "type": "egress_refused"}
        raise ValidationFailed(f"body.url: {exc}", details={"errors": [error]}) from None


def _record(session: Session, actor: Actor, action: str, webhook: Webhook, **summary: Any) -> None:
    record(
        session=session,
        actor=actor,
        action=action,
        target_type="webhook",
        target=str(webhook.id),
        project_id=webhook.project_id,
        **summary,
    )


def create_webhook(
    *, session: Session, actor: Actor, data: WebhookCreate, egress: EgressPolicy
) -> tuple[Webhook, str]:
    """The new webhook and its secret (the only time the secret is handed out)."""
    _check_egress(egress, data.url)
    secret = data.secret if data.secret is not None else generate_secret()
    webhook = Webhook(
        project_id=actor.project_id,
        url=data.url,
        events=list(data.events),
        description=data.description,
        secret=secret_box(session).seal(secret),  # encrypted at rest; signing needs it back
        active=data.active,
        created_by=actor.name,
        created_at=utcnow(),
    )
    session.add(webhook)
    session.flush()
    _record(session, actor, "webhook.created", webhook, after=_audited(_settings_of(webhook)))
    return webhook, secret


def seal_secrets(*, session: Session, box: SecretBox, reseal: bool = False) -> int:
    """Encrypt secrets stored before encryption existed (at start-up), or every secret with the
    first key (`reseal`, after a key rotation); returns how many were rewritten."""
    query = select(Webhook)
    if not reseal:
        query = query.where(Webhook.secret.not_like(f"{PREFIX}%"))
    changed = 0
    for webhook in session.scalars(query.with_for_update()):
        webhook.secret = box.reseal(webhook.secret)
        changed += 1
    return changed


def list_webhooks(*, session: Session, project_id: int) -> list[Webhook]:
    return list(session.scalars(select(Webhook).where(Webhook.project_id == project_id).order_by(Webhook.id)))


def get_webhook(*, session: Session, project_id: int, webhook_id: int, lock: bool = False) -> Webhook:
    """A webhook of the project; another project's webhook is as absent as a deleted one."""
    query = select(Webhook).where(Webhook.id == webhook_id, Webhook.project_id == project_id)
    if lock:
        query = query.with_for_update()
    webhook = session.scalar(query)
    if webhook is None:
        raise NotFound(f"webhook {webhook_id} not found", details={"webhook": webhook_id})
    return webhook


def update_webhook(
    *, session: Session, actor: Actor, webhook: Webhook, data: WebhookUpdate, egress: EgressPolicy
) -> Webhook:
    changes = {k: v for k, v in data.model_dump(exclude_unset=True).items() if v is not None}
    if "url" in changes:
        _check_egress(egress, changes["url"])
    before = _settings_of(webhook)
    for field, value in changes.items():
        setattr(webhook, field, value)
    session.flush()
    after = _settings_of(webhook)
    if after != before:
        _record(
            session,
            actor,
            "webhook.updated",
            webhook,
            # Compared whole, shown masked: a new token is a change even where it is hidden.
            before=_audited({k: v for k, v in before.items() if after[k] != v}),
            after=_audited({k: v for k, v in after.items() if before[k] != v}),
        )
    return webhook


def delete_webhook(*, session: Session, actor: Actor, webhook: Webhook) -> None:
    """Delete the webhook and its delivery log (the foreign key cascades)."""
    settings = _settings_of(webhook)
    session.delete(webhook)
    session.flush()
    # Recorded after the delete, so that the webhook does not queue a delivery of its own deletion.
    _record(session, actor, "webhook.deleted", webhook, before=_audited(settings))


def list_deliveries(
    *, session: Session, webhook: Webhook, status: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[WebhookDelivery], int]:
    """The delivery log, newest first."""
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit).offset(offset))
    return list(rows), total


def _require_active(webhook: Webhook, what: str) -> None:
    if not webhook.active:
        raise Conflict(
            f"webhook {webhook.id} is inactive: activate it (PATCH active=true) to {what}",
            details={"webhook": webhook.id},
        )


def redeliver(*, session: Session, actor: Actor, webhook: Webhook, delivery_id: int) -> WebhookDelivery:
    """Send a delivery again from scratch: pending now, with a fresh allowance of attempts."""
    _require_active(webhook, "redeliver")
    query = select(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.webhook_id == webhook.id
    )
    delivery = session.scalar(query.with_for_update())
    if delivery is None:
        raise NotFound(f"delivery {delivery_id} not found", details={"delivery": delivery_id})
    delivery.status = "pending"
    delivery.attempts = 0
    delivery.next_attempt_at = utcnow()
    delivery.delivered_at = None
    session.flush()
    _record(
        session,
        actor,
        "webhook.redelivered",
        webhook,
        after={"delivery": delivery.id, "event": delivery.event},
    )
    emit(session, DeliveriesQueued(1))
    return delivery


def ping(*, session: Session, actor: Actor, webhook: Webhook) -> WebhookDelivery:
    """Queue a `ping` event to this webhook alone, whatever its patterns: a test of the receiver."""
    _require_active(webhook, "ping it")
    now = utcnow()
    delivery = WebhookDelivery(
        webhook_id=webhook.id,
        project_id=webhook.project_id,
        event=PING,
        payload={
            "event": PING,
            "at": now.isoformat(),
            "actor": actor.name,
            "webhook": {"id": webhook.id, "url": redact_url(webhook.url), "events": list(webhook.events)},
            "request_id": actor.request_id,
        },
        next_attempt_at=now,
        created_at=now,
    )
    session.add(delivery)
    session.flush()
    _record(session, actor, "webhook.pinged", webhook, after={"delivery": delivery.id})
    emit(session, DeliveriesQueued(1))
    return delivery
