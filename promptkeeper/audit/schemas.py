"""Request and response bodies of the audit log and webhook API (Create, Update, Read per entity).

The validators live here, as plain functions, so that the service can apply the same rules to
callers that do not come through HTTP (the CLI, tests).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from promptkeeper.core.bases import ReadModel, RequestBody

EVENT_PATTERN = r"^(\*|[a-z_]+(\.[a-z_*]+)*)$"
_EVENT_RE = re.compile(EVENT_PATTERN)
MAX_URL_LENGTH = 2048
MIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 128
DeliveryStatus = Literal["pending", "delivered", "failed"]


def check_webhook_url(url: str) -> str:
    """Receivers are reached over HTTP(S) by name or address; anything else cannot be POSTed to."""
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"must be at most {MAX_URL_LENGTH} characters")
    if any(c.isspace() for c in url):
        raise ValueError("must not contain whitespace")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise ValueError(f"is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    return url


def check_event_pattern(pattern: str) -> str:
    """`*`, an action (`version.created`) or a pattern over actions (`review.*`)."""
    if len(pattern) > 64 or not _EVENT_RE.match(pattern):
        raise ValueError(
            f"{pattern[:70]!r} is not an event pattern: use '*' or dotted lowercase names such as "
            "'version.created' or 'review.*'"
        )
    return pattern


def check_events(events: list[str]) -> list[str]:
    """A non-empty list of patterns, duplicates dropped (order kept)."""
    if not events:
        raise ValueError("must list at least one event pattern ('*' for every event)")
    return list(dict.fromkeys(check_event_pattern(e) for e in events))


WebhookUrl = Annotated[str, AfterValidator(check_webhook_url)]
EventPatterns = Annotated[list[str], Field(max_length=50), AfterValidator(check_events)]


class WebhookCreate(RequestBody):
    url: WebhookUrl
    events: EventPatterns = Field(
        description="Patterns of actions to receive: `version.created`, `review.*`, `*`."
    )
    description: str = Field(default="", max_length=10_000)
    secret: str | None = Field(
        default=None,
        min_length=MIN_SECRET_LENGTH,
        max_length=MAX_SECRET_LENGTH,
        description="Signing secret; omitted: one is generated. Returned once, in the create response.",
    )
    active: bool = True


class WebhookUpdate(RequestBody):
    """Only the fields given change; `null` is not a value for any of them."""

    url: WebhookUrl | None = None
    events: EventPatterns | None = None
    description: str | None = Field(default=None, max_length=10_000)
    active: bool | None = None

    @field_validator("url", "events", "description", "active")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Runs only for fields that were sent: an omitted field keeps its value, an explicit null
        # would otherwise reach a NOT NULL column.
        if value is None:
            raise ValueError("must not be null (omit the field to leave it unchanged)")
        return value


class WebhookRead(ReadModel):
    id: int
    url: str
    events: list[str]
    description: str
    active: bool
    created_by: str
    created_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(description="The signing secret. Shown only in this response: store it now.")


class DeliveryRead(ReadModel):
    id: int
    webhook_id: int
    event: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = Field(description="When a pending delivery is tried next.")
    last_status_code: int | None = Field(description="The receiver's HTTP status at the last attempt.")
    last_error: str
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any] = Field(description="The body sent, without the `delivery` field.")

    @field_validator("next_attempt_at")
    @classmethod
    def _only_while_pending(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        # The column keeps the time of the last schedule; once settled, nothing is tried next.
        return value if info.data.get("status") == "pending" else None


class AuditEntryRead(ReadModel):
    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target: str
    prompt: str | None
    environment: str | None
    summary: dict[str, Any] = Field(description="`before` and/or `after`: what the action changed.")
    request_id: str | None
    severity: str
