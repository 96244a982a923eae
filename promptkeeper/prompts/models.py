"""Registry tables.

- `Prompt.head_version` is the number of the newest version; creating a version locks the prompt
  row and increments it, which is what makes numbering gap-free and duplicate-free under concurrency
  (the unique constraint on `(prompt_id, number)` is the backstop).
- `Release` is the current state of one `(prompt, environment)`; its `revision` grows by one on
  every change and is the cache-invalidation and optimistic-concurrency key.
- `Deployment` is the append-only history; "what ran at T" is the newest row with `at <= T`.
  Triggers (see the initial migration) reject UPDATE of a version's content and of any deployment.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from promptkeeper.db.base import Base, utcnow


class Prompt(Base):
    __tablename__ = "prompts"
    #: Names keep their case and are unique per project regardless of it (migration 0011).
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        Index("prompts_project_name_ci", "project_id", func.lower(text("name")), unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    owner: Mapped[str | None] = mapped_column(String(128), default=None)
    tags: Mapped[list[str]] = mapped_column(default=list)
    target_model: Mapped[str | None] = mapped_column(String(128), default=None)
    head_version: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PromptVersion(Base):
    __tablename__ = "prompt_versions"
    __table_args__ = (UniqueConstraint("prompt_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    content: Mapped[dict[str, Any]] = mapped_column()
    variables: Mapped[list[str]] = mapped_column(default=list)
    placeholders: Mapped[list[str]] = mapped_column(default=list)
    content_hash: Mapped[str] = mapped_column(String(64))
    parent: Mapped[int | None] = mapped_column(Integer, default=None)
    author: Mapped[str] = mapped_column(String(128))
    #: who wrote it, told apart as reviews tell people apart (None: written before it was kept)
    author_identity: Mapped[str | None] = mapped_column(String(64), default=None)
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Environment(Base):
    __tablename__ = "environments"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    production: Mapped[bool] = mapped_column(Boolean, default=False)
    protected: Mapped[bool] = mapped_column(Boolean, default=False)
    required_approvals: Mapped[int] = mapped_column(Integer, default=0)
    #: Admins may deploy without the required reviews, with a reason; loudly audited.
    allow_override: Mapped[bool] = mapped_column(Boolean, default=False)
    #: A version must have been deployed to this environment before it can be deployed here.
    requires_environment: Mapped[str | None] = mapped_column(String(64), default=None)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Release(Base):
    __tablename__ = "releases"
    __table_args__ = (
        UniqueConstraint("prompt_id", "environment_id"),
        ForeignKeyConstraint(
            ["prompt_id", "version_number"], ["prompt_versions.prompt_id", "prompt_versions.number"]
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"), index=True)
    version_number: Mapped[int] = mapped_column(Integer)
    previous_version: Mapped[int | None] = mapped_column(Integer, default=None)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(128))


class Deployment(Base):
    __tablename__ = "deployments"
    __table_args__ = (
        UniqueConstraint("prompt_id", "environment_id", "revision"),
        Index("ix_deployments_prompt_env_at", "prompt_id", "environment_id", "at"),
        Index("ix_deployments_at", "at"),
        ForeignKeyConstraint(
            ["prompt_id", "version_number"], ["prompt_versions.prompt_id", "prompt_versions.number"]
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    version_number: Mapped[int] = mapped_column(Integer)
    previous_version: Mapped[int | None] = mapped_column(Integer, default=None)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    revision: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The experiment that made this change (actions experiment_start/update/stop).
    experiment_id: Mapped[int | None] = mapped_column(Integer, default=None)


class PromptReference(Base):
    """One include of a version (a tag in its content), stored when the version is saved.

    Versions are immutable, so their references are too: "which prompts include `base`" is one
    indexed lookup on `(project_id, target_name)` instead of a scan of every version's content.
    `label` or `target_version` is set, never both.
    """

    __tablename__ = "prompt_references"
    __table_args__ = (Index("ix_prompt_references_target", "project_id", "target_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("prompt_versions.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    target_name: Mapped[str] = mapped_column(String(255))
    label: Mapped[str | None] = mapped_column(String(64), default=None)
    target_version: Mapped[int | None] = mapped_column(Integer, default=None)
    field: Mapped[str] = mapped_column(String(64))
