"""Bodies of the review API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from promptkeeper.core.fields import MAX_INT, EnvironmentName

ReviewStatus = Literal["pending", "approved", "changes_requested", "withdrawn", "deployed"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReviewCreate(_Body):
    environment: EnvironmentName
    version: int = Field(ge=1, le=MAX_INT)
    title: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=20_000)


class CommentCreate(_Body):
    body: str = Field(min_length=1, max_length=20_000)


class VerdictCreate(_Body):
    comment: str = Field(default="", max_length=20_000)


class ReviewDeploy(_Body):
    reason: str = Field(default="", max_length=10_000)


class ReviewEventRead(BaseModel):
    id: int
    kind: Literal["comment", "approve", "request_changes", "withdraw", "deploy"]
    actor: str
    body: str
    at: datetime


class ReviewRead(BaseModel):
    id: int
    prompt: str
    environment: str
    version: int
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
