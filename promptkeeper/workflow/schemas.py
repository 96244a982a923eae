"""Request and response bodies of the workflow API (one family per entity: Create, Update, Read)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from promptkeeper.core.bases import ReadModel, RequestBody
from promptkeeper.core.content import PromptContent
from promptkeeper.core.fields import MAX_INT
from promptkeeper.prompts.schemas import ChangeRead, VersionRead

DraftStatus = Literal["open", "merged", "discarded"]
DraftStatusFilter = Literal["open", "merged", "discarded", "all"]


# --- drafts ---------------------------------------------------------------------------------------


class DraftCreate(RequestBody):
    base_version: int | None = Field(
        default=None, ge=1, le=MAX_INT, description="The version to fork from (default: the prompt's head)."
    )
    content: PromptContent | None = Field(
        default=None, description="The draft's content (default: the base version's content)."
    )
    title: str = Field(default="", max_length=200)


class DraftUpdate(RequestBody):
    """Omitted fields stay as they are; every change bumps the draft's `revision`."""

    content: PromptContent | None = None
    title: str | None = Field(default=None, max_length=200)
    base_version: int | None = Field(
        default=None,
        ge=1,
        le=MAX_INT,
        description="Re-base the draft, e.g. onto the head after resolving merge conflicts by hand.",
    )
    expected_revision: int | None = Field(
        default=None,
        ge=1,
        le=MAX_INT,
        description="The draft revision the caller edited; 409 if it changed since.",
    )

    @model_validator(mode="after")
    def _no_nulls(self) -> DraftUpdate:
        for name in ("content", "title", "base_version"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class DraftMerge(RequestBody):
    message: str | None = Field(
        default=None, max_length=10_000, description="Message of the new version (default: from the title)."
    )
    expected_revision: int | None = Field(
        default=None,
        ge=1,
        le=MAX_INT,
        description="The draft revision the caller reviewed; 409 if it changed since.",
    )


class DraftDiffRead(BaseModel):
    """What the draft changes relative to its base version (same shape as the version diff)."""

    changed_fields: list[str]
    changes: list[ChangeRead]
    unified: dict[str, str] = Field(description="Unified diff per changed top-level field.")


class DraftRead(ReadModel):
    id: int
    prompt: str
    title: str
    status: DraftStatus
    base_version: int
    head_version: int = Field(description="The prompt's newest version now.")
    behind: bool = Field(description="The head has moved past `base_version`: merging will be three-way.")
    revision: int = Field(description="Grows by one on every edit (optimistic concurrency).")
    content: dict[str, Any]
    content_hash: str
    author: str
    merged_version: int | None = Field(description="The version a merge created.")
    created_at: datetime
    updated_at: datetime
    diff: DraftDiffRead | None = Field(
        default=None, description="Changes against `base_version`; null in lists (fetch one draft for it)."
    )


class DraftMerged(BaseModel):
    draft: DraftRead
    version: VersionRead
