"""Bodies of the review API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from promptkeeper.core.bases import ReadModel, RequestBody
from promptkeeper.core.fields import MAX_INT, EnvironmentName

ReviewStatus = Literal["pending", "approved", "changes_requested", "withdrawn", "deployed"]


class ReviewCreate(RequestBody):
    environment: EnvironmentName
    version: int = Field(ge=1, le=MAX_INT)
    title: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=20_000)


class CommentCreate(RequestBody):
    body: str = Field(min_length=1, max_length=20_000)


class VerdictCreate(RequestBody):
    comment: str = Field(default="", max_length=20_000)


class ReviewDeploy(RequestBody):
    reason: str = Field(default="", max_length=10_000)


class ReviewEventRead(ReadModel):
    id: int
    kind: Literal["comment", "approve", "request_changes", "withdraw", "deploy"]
    actor: str
    body: str
    at: datetime = Field(validation_alias="created_at")


class ReviewRead(ReadModel):
    id: int
    prompt: str
    environment: str
    version: int = Field(validation_alias="version_number")
    title: str
    description: str
    author: str
    status: ReviewStatus
    required_approvals: int
    approvals: list[str] = Field(description="Approvers whose latest verdict is an approval.")
    missing_approvals: int
    changes_requested_by: list[str]
    live_version: int | None = Field(description="What the environment serves now.")
    deployment_id: int | None
    created_at: datetime
    updated_at: datetime
    events: list[ReviewEventRead] | None = Field(
        default=None, description="Comments and verdicts, oldest first (single review only)."
    )
