"""Experiments, the events they are analysed from, sticky bandit assignments, custom metrics.

- `Experiment.variants` is the ordered list `[{key, version, weight}]`; index 0 is the control (the
  version the environment served when the experiment was created). The order never changes, since
  the assignment hashes units onto it.
- `Experiment.release_revision` is the release revision the experiment's last start/weight change
  produced. Resolution serves the experiment only while the release is still at that revision, so a
  deploy or rollback made around the experiment takes effect at once whatever else happens.
- `Event` is one table for exposures and outcomes: outcomes are tagged at ingestion with the
  experiment, variant and unit of the exposure sharing their `request_id`. Outcomes that arrive
  before their exposure are tagged when it arrives (`ix_events_untagged`).
- `experiment_units` rolls tagged events up per unit as they are ingested (flags as maxima, numbers
  as sums and counts), so analysis aggregates units, not events (see `rollup.py`).
- `Assignment` keeps a unit's variant in bandit experiments, whose weights move: the unit keeps the
  variant it was first given.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from promptkeeper.core import outcomes
from promptkeeper.db.base import Base, UTCDateTime, utcnow

EventId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite's rowid alias must be INTEGER


class Experiment(Base):
    __tablename__ = "experiments"
    __table_args__ = (
        # At most one running experiment per (prompt, environment): the service checks, this enforces.
        Index(
            "ix_experiments_one_running",
            "prompt_id",
            "environment_id",
            unique=True,
            postgresql_where=text("status = 'running'"),
            sqlite_where=text("status = 'running'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    hypothesis: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="draft")
    mode: Mapped[str] = mapped_column(String(16), default="fixed")
    seed: Mapped[str] = mapped_column(String(64))
    hash_version: Mapped[int] = mapped_column(Integer, default=2)
    coverage: Mapped[float] = mapped_column(Float, default=1.0)
    variants: Mapped[list[Any]] = mapped_column()
    primary_metric: Mapped[str] = mapped_column(String(64))
    guardrails: Mapped[list[str]] = mapped_column(default=list)
    alpha: Mapped[float] = mapped_column(Float, default=0.05)
    power: Mapped[float] = mapped_column(Float, default=0.8)
    mde: Mapped[float] = mapped_column(Float)
    mde_relative: Mapped[bool] = mapped_column(Boolean, default=False)
    baseline: Mapped[float | None] = mapped_column(Float, default=None)
    std_dev: Mapped[float | None] = mapped_column(Float, default=None)
    planned_sample_size: Mapped[int] = mapped_column(Integer)
    sequential: Mapped[bool] = mapped_column(Boolean, default=False)
    stop_on_guardrail: Mapped[bool] = mapped_column(Boolean, default=False)
    burn_in: Mapped[int] = mapped_column(Integer, default=100)
    min_share: Mapped[float] = mapped_column(Float, default=0.01)
    #: `[{at, weights}]`, newest last: the weights in force from each instant (for the SRM check).
    weight_history: Mapped[list[Any]] = mapped_column(default=list)
    weights_updated_at: Mapped[datetime | None] = mapped_column(default=None)
    release_revision: Mapped[int | None] = mapped_column(Integer, default=None)
    decision: Mapped[str | None] = mapped_column(String(32), default=None)
    decision_variant: Mapped[str | None] = mapped_column(String(64), default=None)
    decision_reason: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    stopped_at: Mapped[datetime | None] = mapped_column(default=None)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_experiment_unit", "experiment_id", "unit"),
        # exposures only: outcomes are tagged from their request's exposure, never looked up by it
        Index(
            "ix_events_exposure_request",
            "project_id",
            "request_id",
            postgresql_where=text("kind = 'exposure'"),
            sqlite_where=text("kind = 'exposure'"),
        ),
        Index(
            "ix_events_untagged",
            "project_id",
            "request_id",
            postgresql_where=text("experiment_id IS NULL AND kind = 'outcome'"),
            sqlite_where=text("experiment_id IS NULL AND kind = 'outcome'"),
        ),
        # an OTLP exporter's resend stores its outcomes once (events posted by applications have none)
        Index(
            "ux_events_span_key",
            "project_id",
            "span_key",
            unique=True,
            postgresql_where=text("span_key IS NOT NULL"),
            sqlite_where=text("span_key IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(EventId, primary_key=True)
    #: no foreign key: checking one per row locked the project's row in every batch (migration 0014)
    project_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    experiment_id: Mapped[int | None] = mapped_column(Integer, default=None)
    variant: Mapped[int | None] = mapped_column(SmallInteger, default=None)
    unit: Mapped[str | None] = mapped_column(String(128), default=None)
    prompt: Mapped[str | None] = mapped_column(String(128), default=None)
    version: Mapped[int | None] = mapped_column(Integer, default=None)
    completed: Mapped[bool | None] = mapped_column(Boolean, default=None)
    thumbs: Mapped[int | None] = mapped_column(SmallInteger, default=None)
    rating: Mapped[float | None] = mapped_column(Float, default=None)
    edited: Mapped[bool | None] = mapped_column(Boolean, default=None)
    regenerated: Mapped[bool | None] = mapped_column(Boolean, default=None)
    latency_ms: Mapped[float | None] = mapped_column(Float, default=None)
    ttft_ms: Mapped[float | None] = mapped_column(Float, default=None)
    input_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    output_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    cost_usd: Mapped[float | None] = mapped_column(Float, default=None)
    safety_flag: Mapped[bool | None] = mapped_column(Boolean, default=None)
    custom: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    #: trace id + span id (hex) of the OTLP span the outcome came from
    span_key: Mapped[str | None] = mapped_column(String(48), default=None)


#: Built-in outcome columns kept per unit in `experiment_units`: flags as their maximum (1/0),
#: numbers as sum and count (the per-unit mean is sum / count).
UNIT_FLAGS = outcomes.FLAGS
UNIT_NUMBERS = outcomes.NUMBERS

#: One row per (experiment, unit), kept up to date by ingestion: analysis reads units, not events,
#: so its cost grows with the number of units rather than with the number of events.
experiment_units = Table(
    "experiment_units",
    Base.metadata,
    Column("experiment_id", Integer, ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True),
    Column("unit", String(128), primary_key=True),
    Column("variant_min", SmallInteger, nullable=False),
    Column("variant_max", SmallInteger, nullable=False),
    Column("exposures", Integer, nullable=False),
    Column("first_exposure_at", UTCDateTime(), nullable=True),
    *[Column(f"{name}_max", SmallInteger, nullable=True) for name in UNIT_FLAGS],
    *[
        column
        for name in UNIT_NUMBERS
        for column in (
            Column(f"{name}_sum", Float, nullable=False),
            Column(f"{name}_n", Integer, nullable=False),
        )
    ],
)


class Assignment(Base):
    __tablename__ = "experiment_assignments"
    __table_args__ = (UniqueConstraint("experiment_id", "unit"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    unit: Mapped[str] = mapped_column(String(128))
    variant: Mapped[int] = mapped_column(SmallInteger)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Metric(Base):
    """A project's custom metric: values arrive in outcome events under `custom.<name>`."""

    __tablename__ = "experiment_metrics"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    higher_is_better: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
