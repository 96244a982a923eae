"""Evaluation suites, their immutable versions and cases, runs, results, gates and the response cache.

- A suite's content (scorers and cases) is versioned like a prompt: `EvalSuiteVersion` rows are
  never changed, and a run records the suite version it used, so two runs are comparable only when
  they ran the same cases with the same scorers.
- Cases are rows (not one JSON blob) so that suites of thousands of cases page and stream.
- An `EvalRun` is also the job: workers claim it (`lease_until`), and `EvalResult` has one row per
  (run, case, repeat) under a unique constraint, so a run resumed after a crash never scores a case
  twice.
- `EvalGate` is an environment's promotion gate: minimum scores and maximum drop against the
  version the environment serves, on one suite: its head version, or the version it pins.
- `PendingDeployment` is a deploy that waits for the evaluation runs its gate needs (the gate's
  `auto_run`); it is a row so that it survives restarts and any worker can finish it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from promptkeeper.db.base import Base, utcnow


class EvalSuite(Base):
    __tablename__ = "eval_suites"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    prompt_id: Mapped[int | None] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), default=None)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    head_version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class EvalSuiteVersion(Base):
    __tablename__ = "eval_suite_versions"
    __table_args__ = (UniqueConstraint("suite_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    suite_id: Mapped[int] = mapped_column(ForeignKey("eval_suites.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    scorers: Mapped[list[Any]] = mapped_column(default=list)
    case_count: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EvalCase(Base):
    __tablename__ = "eval_cases"
    __table_args__ = (
        UniqueConstraint("suite_version_id", "position"),
        UniqueConstraint("suite_version_id", "key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    suite_version_id: Mapped[int] = mapped_column(ForeignKey("eval_suite_versions.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(128))
    variables: Mapped[dict[str, Any]] = mapped_column(default=dict)
    expected: Mapped[str | None] = mapped_column(Text, default=None)
    tags: Mapped[list[str]] = mapped_column(default=list)
    scorers: Mapped[list[Any] | None] = mapped_column(default=None)


class EvalRun(Base):
    __tablename__ = "eval_runs"
    __table_args__ = (
        Index("ix_eval_runs_claim", "status", "lease_until"),
        Index("ix_eval_runs_prompt_version", "prompt_id", "prompt_version"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    prompt_version: Mapped[int] = mapped_column(Integer)
    suite_id: Mapped[int] = mapped_column(ForeignKey("eval_suites.id", ondelete="CASCADE"))
    suite_version: Mapped[int] = mapped_column(Integer)
    repeats: Mapped[int] = mapped_column(Integer, default=1)
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128), default="")
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|running|succeeded|failed
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    worker: Mapped[str] = mapped_column(String(128), default="")
    claims: Mapped[int] = mapped_column(Integer, default=0)


class EvalResult(Base):
    __tablename__ = "eval_results"
    __table_args__ = (UniqueConstraint("run_id", "case_id", "repeat"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("eval_runs.id", ondelete="CASCADE"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("eval_cases.id", ondelete="CASCADE"))
    case_key: Mapped[str] = mapped_column(String(128))
    repeat: Mapped[int] = mapped_column(Integer, default=0)
    output: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text, default=None)
    scores: Mapped[list[Any]] = mapped_column(default=list)
    passed: Mapped[bool] = mapped_column(Boolean, default=False)
    latency_ms: Mapped[float | None] = mapped_column(Float, default=None)
    ttft_ms: Mapped[float | None] = mapped_column(Float, default=None)
    input_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    output_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    cost_usd: Mapped[float | None] = mapped_column(Float, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EvalGate(Base):
    __tablename__ = "eval_gates"
    __table_args__ = (UniqueConstraint("environment_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    suite_id: Mapped[int] = mapped_column(ForeignKey("eval_suites.id", ondelete="CASCADE"))
    suite_version: Mapped[int | None] = mapped_column(Integer, default=None)  # None: the suite's head
    min_scores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    max_drop: Mapped[dict[str, Any]] = mapped_column(default=dict)
    auto_promote: Mapped[bool] = mapped_column(Boolean, default=False)
    auto_run: Mapped[dict[str, Any] | None] = mapped_column(default=None)  # run settings, or off
    updated_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PendingDeployment(Base):
    __tablename__ = "pending_deployments"
    __table_args__ = (Index("ix_pending_deployments_prompt", "prompt_id", "environment_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16), default="deploy")
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("eval_runs.id", ondelete="SET NULL"), default=None, index=True
    )
    baseline_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("eval_runs.id", ondelete="SET NULL"), default=None, index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="waiting")  # waiting|deployed|refused|cancelled
    actor: Mapped[str] = mapped_column(String(128))
    actor_role: Mapped[str] = mapped_column(String(16))
    actor_key_id: Mapped[int | None] = mapped_column(Integer, default=None)
    actor_user_id: Mapped[int | None] = mapped_column(Integer, default=None)
    reason: Mapped[str] = mapped_column(Text, default="")
    review_id: Mapped[int | None] = mapped_column(Integer, default=None)
    expected_revision: Mapped[int | None] = mapped_column(Integer, default=None)
    deployment_id: Mapped[int | None] = mapped_column(Integer, default=None)
    message: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class EvalCacheEntry(Base):
    """Provider responses by request key (provider, model, messages, params, repeat)."""

    __tablename__ = "eval_response_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    completion: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
