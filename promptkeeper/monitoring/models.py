"""Online monitoring: monitors, generation records, their scores, checks and alerts.

- `Monitor`: one per (prompt, environment), its sampling, scorers (`rules`) and decision settings.
- `Generation`: one production output, unique per (project, request id) so a resent batch stores
  nothing twice. A generation its monitor's rules need a worker for (a heuristic: every one; only
  costly rules: the sample) is a scoring job: `score_state` goes pending -> leased (a worker holds
  it until `lease_until`, renewed while it works) -> done, or `skipped` when its monitor was
  disabled or deleted first; a lease that runs out (its worker died) makes it claimable again.
  The others are kept as `unsampled`.
- `MonitorScore`: one value per (generation, scorer), unique, so no generation is scored twice
  even if two workers race after a lease ran out. Feedback signals (thumbs, rating, edited,
  regenerated) become scores when the feedback arrives.
- `MonitorCheck`: one look at a live version (a rule is looked at every `check_every` of its own
  scored records, and on a timer): every rule's latest finding (`fresh` when judged at this look)
  and the level. The status page draws scores over time from these.
- `MonitorAlert`: a warning or critical decision, with its evidence, and the automatic rollback it
  caused (if any). A version with a critical alert is never a rollback target.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from promptkeeper.db.base import Base, JSONDocument, utcnow

RowId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite's rowid alias must be INTEGER
CLAIMABLE = "score_state IN ('pending', 'leased')"


class Monitor(Base):
    __tablename__ = "monitors"
    __table_args__ = (UniqueConstraint("prompt_id", "environment_id", name="uq_monitors_prompt_env"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    sample_rate: Mapped[float] = mapped_column(Float, default=0.1)
    #: `[{scorer, params, threshold, kind, warning_margin, critical_margin, floor}]`
    rules: Mapped[list[Any]] = mapped_column(default=list)
    window_size: Mapped[int] = mapped_column(Integer, default=1000)
    min_sample: Mapped[int] = mapped_column(Integer, default=200)
    check_every: Mapped[int] = mapped_column(Integer, default=100)
    consecutive: Mapped[int] = mapped_column(Integer, default=3)
    alpha: Mapped[float] = mapped_column(Float, default=0.05)
    auto_rollback: Mapped[bool] = mapped_column(Boolean, default=False)
    cooldown_seconds: Mapped[float] = mapped_column(Float, default=3600.0)
    judge_provider: Mapped[str | None] = mapped_column(String(64), default=None)
    judge_model: Mapped[str | None] = mapped_column(String(128), default=None)
    last_rollback_at: Mapped[datetime | None] = mapped_column(default=None)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Generation(Base):
    __tablename__ = "generations"
    __table_args__ = (
        UniqueConstraint("project_id", "request_id", name="uq_generations_request"),
        Index(
            "ix_generations_claimable", "id", postgresql_where=text(CLAIMABLE), sqlite_where=text(CLAIMABLE)
        ),
        Index("ix_generations_monitor_version", "monitor_id", "version", "at"),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    #: no foreign key: checking one per row locked the project's row in every batch (migration 0014)
    project_id: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    prompt: Mapped[str] = mapped_column(String(128))
    environment: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    experiment_id: Mapped[int | None] = mapped_column(Integer, default=None)
    variant: Mapped[str | None] = mapped_column(String(64), default=None)
    unit: Mapped[str | None] = mapped_column(String(128), default=None)
    input: Mapped[Any | None] = mapped_column(JSONDocument, default=None)
    output: Mapped[str] = mapped_column(Text)
    latency_ms: Mapped[float | None] = mapped_column(Float, default=None)
    ttft_ms: Mapped[float | None] = mapped_column(Float, default=None)
    input_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    output_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    cost_usd: Mapped[float | None] = mapped_column(Float, default=None)
    thumbs: Mapped[int | None] = mapped_column(SmallInteger, default=None)
    rating: Mapped[float | None] = mapped_column(Float, default=None)
    edited: Mapped[bool | None] = mapped_column(Boolean, default=None)
    regenerated: Mapped[bool | None] = mapped_column(Boolean, default=None)
    monitor_id: Mapped[int | None] = mapped_column(Integer, default=None)
    score_state: Mapped[str] = mapped_column(String(16), default="unsampled")
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    worker: Mapped[str | None] = mapped_column(String(128), default=None)
    claims: Mapped[int] = mapped_column(Integer, default=0)


class MonitorScore(Base):
    __tablename__ = "monitor_scores"
    __table_args__ = (
        UniqueConstraint("generation_id", "scorer", name="uq_monitor_scores_generation_scorer"),
        Index("ix_monitor_scores_window", "monitor_id", "version", "scorer", "at"),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    monitor_id: Mapped[int] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"))
    generation_id: Mapped[int] = mapped_column(RowId)
    version: Mapped[int] = mapped_column(Integer)
    scorer: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    passed: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column()
    scored_at: Mapped[datetime] = mapped_column(default=utcnow)
    cost_usd: Mapped[float | None] = mapped_column(Float, default=None)
    detail: Mapped[dict[str, Any] | None] = mapped_column(default=None)


class MonitorCheck(Base):
    __tablename__ = "monitor_checks"
    __table_args__ = (Index("ix_monitor_checks_monitor", "monitor_id", "deployment_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    monitor_id: Mapped[int] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"))
    deployment_id: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    baseline_version: Mapped[int | None] = mapped_column(Integer, default=None)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    look: Mapped[int] = mapped_column(Integer)
    scored: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(16))
    acting: Mapped[str] = mapped_column(String(16))
    findings: Mapped[list[Any]] = mapped_column(default=list)


class MonitorAlert(Base):
    __tablename__ = "monitor_alerts"
    __table_args__ = (Index("ix_monitor_alerts_monitor", "monitor_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    monitor_id: Mapped[int] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"))
    check_id: Mapped[int] = mapped_column(Integer)
    deployment_id: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    baseline_version: Mapped[int | None] = mapped_column(Integer, default=None)
    level: Mapped[str] = mapped_column(String(16))
    scorer: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rollback_to: Mapped[int | None] = mapped_column(Integer, default=None)
    rollback_deployment_id: Mapped[int | None] = mapped_column(Integer, default=None)
    rollback_note: Mapped[str] = mapped_column(Text, default="")
