"""Audit log and webhook routes: parse, call one service, commit, return."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status

from promptkeeper.api.deps import Admin, ContextDep, Limit, Offset, ReadDB, Reader, WriteDB
from promptkeeper.api.error_responses import ERROR_RESPONSES
from promptkeeper.audit import service, webhooks
from promptkeeper.audit.schemas import (
    AuditEntryRead,
    DeliveryRead,
    DeliveryStatus,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
    WebhookUpdate,
)
from promptkeeper.core.egress import EgressPolicy
from promptkeeper.core.fields import MAX_INT, Page

router = APIRouter(prefix="/v1", tags=["audit"], responses=ERROR_RESPONSES)

WebhookId = Annotated[int, Path(ge=1, le=MAX_INT, description="The webhook's id.")]


def egress_policy(context: ContextDep) -> EgressPolicy:
    return EgressPolicy.from_settings(context.settings)


Egress = Annotated[EgressPolicy, Depends(egress_policy)]


def _utc(value: datetime | None) -> datetime | None:
    """Query times without a zone are UTC, like every time the API returns."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- audit log ----------------------------------------------------------------------------------


@router.get("/audit", response_model=Page[AuditEntryRead])
def list_audit(
    session: ReadDB,
    caller: Reader,
    prompt: Annotated[
        str | None, Query(max_length=128, description="Only entries about this prompt.")
    ] = None,
    actor: Annotated[str | None, Query(max_length=128, description="Only entries by this actor.")] = None,
    action: Annotated[
        str | None,
        Query(
            pattern=r"^[a-z_.]{0,64}\*?$",
            description="An action (`version.created`) or a prefix ending in `*` (`deployment.*`).",
        ),
    ] = None,
    since: Annotated[
        datetime | None, Query(description="Entries at or after (ISO-8601; UTC if no zone).")
    ] = None,
    until: Annotated[datetime | None, Query(description="Entries before (ISO-8601; UTC if no zone).")] = None,
    request_id: Annotated[
        str | None, Query(max_length=64, description="Entries written by the request with this X-Request-ID.")
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[AuditEntryRead]:
    """The project's audit log, newest first."""
    entries, total = service.list_entries(
        session=session,
        project_id=caller.project_id,
        prompt=prompt,
        actor=actor,
        action=action,
        since=_utc(since),
        until=_utc(until),
        request_id=request_id,
        limit=limit,
        offset=offset,
    )
    return Page[AuditEntryRead](
        items=[AuditEntryRead.model_validate(e) for e in entries], total=total, limit=limit, offset=offset
    )


# --- webhooks -----------------------------------------------------------------------------------


@router.get("/webhooks", response_model=list[WebhookRead])
def list_webhooks(session: ReadDB, caller: Admin) -> list[WebhookRead]:
    return [
        WebhookRead.model_validate(w)
        for w in webhooks.list_webhooks(session=session, project_id=caller.project_id)
    ]


@router.post("/webhooks", status_code=status.HTTP_201_CREATED, response_model=WebhookCreated)
def create_webhook(body: WebhookCreate, session: WriteDB, caller: Admin, egress: Egress) -> WebhookCreated:
    """Subscribe a URL to audit actions; the response carries the signing secret, once."""
    webhook, secret = webhooks.create_webhook(session=session, actor=caller, data=body, egress=egress)
    session.commit()
    return WebhookCreated.of(webhook, secret=secret)  # the plain secret, not the sealed column


@router.get("/webhooks/{webhook_id}", response_model=WebhookRead)
def get_webhook(webhook_id: WebhookId, session: ReadDB, caller: Admin) -> WebhookRead:
    return WebhookRead.model_validate(
        webhooks.get_webhook(session=session, project_id=caller.project_id, webhook_id=webhook_id)
    )


@router.patch("/webhooks/{webhook_id}", response_model=WebhookRead)
def update_webhook(
    webhook_id: WebhookId, body: WebhookUpdate, session: WriteDB, caller: Admin, egress: Egress
) -> WebhookRead:
    """Change the URL, the event patterns, the description or whether it is active."""
    webhook = webhooks.get_webhook(
        session=session, project_id=caller.project_id, webhook_id=webhook_id, lock=True
    )
    webhooks.update_webhook(session=session, actor=caller, webhook=webhook, data=body, egress=egress)
    session.commit()
    return WebhookRead.model_validate(webhook)


@router.delete("/webhooks/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(webhook_id: WebhookId, session: WriteDB, caller: Admin) -> None:
    """Delete the webhook and its delivery log; pending deliveries are not sent."""
    webhook = webhooks.get_webhook(
        session=session, project_id=caller.project_id, webhook_id=webhook_id, lock=True
    )
    webhooks.delete_webhook(session=session, actor=caller, webhook=webhook)
    session.commit()


@router.get("/webhooks/{webhook_id}/deliveries", response_model=Page[DeliveryRead])
def list_deliveries(
    webhook_id: WebhookId,
    session: ReadDB,
    caller: Admin,
    state: Annotated[
        DeliveryStatus | None, Query(alias="status", description="Only deliveries in this state.")
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[DeliveryRead]:
    """The delivery log, newest first: attempts, the receiver's last status code or error."""
    webhook = webhooks.get_webhook(session=session, project_id=caller.project_id, webhook_id=webhook_id)
    rows, total = webhooks.list_deliveries(
        session=session, webhook=webhook, status=state, limit=limit, offset=offset
    )
    return Page[DeliveryRead](
        items=[DeliveryRead.model_validate(d) for d in rows], total=total, limit=limit, offset=offset
    )


@router.post("/webhooks/{webhook_id}/ping", status_code=status.HTTP_202_ACCEPTED, response_model=DeliveryRead)
def ping_webhook(webhook_id: WebhookId, session: WriteDB, caller: Admin) -> DeliveryRead:
    """Queue a `ping` delivery to this webhook (whatever its patterns), to test the receiver."""
    webhook = webhooks.get_webhook(session=session, project_id=caller.project_id, webhook_id=webhook_id)
    delivery = webhooks.ping(session=session, actor=caller, webhook=webhook)
    session.commit()
    return DeliveryRead.model_validate(delivery)


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryRead,
)
def redeliver(
    webhook_id: WebhookId,
    delivery_id: Annotated[int, Path(ge=1, le=MAX_INT, description="The delivery's id.")],
    session: WriteDB,
    caller: Admin,
) -> DeliveryRead:
    """Send a delivery again, with a fresh allowance of attempts."""
    webhook = webhooks.get_webhook(session=session, project_id=caller.project_id, webhook_id=webhook_id)
    delivery = webhooks.redeliver(session=session, actor=caller, webhook=webhook, delivery_id=delivery_id)
    session.commit()
    return DeliveryRead.model_validate(delivery)
