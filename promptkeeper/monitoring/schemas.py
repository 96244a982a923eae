"""Bodies of the monitoring API: monitors, their status, alerts and example outputs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from promptkeeper.core.bases import ReadModel, RequestBody
from promptkeeper.core.fields import MAX_INT, EnvironmentName, PromptName

Level = Literal["ok", "warning", "critical"]
RULE_NAME = r"^[a-z][a-z0-9_]{0,63}$"


class RuleIn(RequestBody):
    scorer: str = Field(
        pattern=RULE_NAME,
        description="A scorer that needs no expected output, or a feedback signal (feedback_thumbs, ...).",
    )
    name: str | None = Field(default=None, pattern=RULE_NAME, description="Default: the scorer's name.")
    params: dict[str, Any] = Field(default_factory=dict)
    threshold: float | None = Field(
        default=None, ge=0, le=1, description="Pass mark (default: the scorer's)."
    )
    kind: Literal["pass_rate", "score"] = Field(
        default="pass_rate",
        description="Judge the pass rate (proportion tests) or the mean score (Welch's t).",
    )
    warning_margin: float = Field(default=0.0, ge=0, le=1, description="A drop beyond this is a warning.")
    critical_margin: float = Field(default=0.05, ge=0, le=1, description="A drop beyond this is critical.")
    floor: float | None = Field(default=None, ge=0, le=1, description="Critical below this level, always.")

    @model_validator(mode="after")
    def _margins(self) -> RuleIn:
        if self.critical_margin < self.warning_margin:
            raise ValueError("critical_margin must be at least warning_margin")
        return self


class RuleRead(BaseModel):
    name: str
    scorer: str
    params: dict[str, Any]
    threshold: float
    kind: Literal["pass_rate", "score"]
    warning_margin: float
    critical_margin: float
    floor: float | None


class _Settings(RequestBody):
    sample_rate: float = Field(
        default=0.1, gt=0, le=1, description="Share of generations scored by costly scorers (LLM judges)."
    )
    window_size: int = Field(default=1000, ge=20, le=100_000, description="Scored records per window.")
    min_sample: int = Field(default=200, ge=10, le=MAX_INT, description="Scored records before any decision.")
    check_every: int = Field(
        default=100, ge=1, le=MAX_INT, description="A look at a rule every this many of its scored records."
    )
    consecutive: int = Field(default=3, ge=1, le=50, description="Breaching looks in a row before acting.")
    alpha: float = Field(default=0.05, gt=0, le=0.2, description="False-alarm budget per scorer and level.")
    auto_rollback: bool = False
    cooldown_seconds: float = Field(default=3600.0, ge=0, description="No automatic rollback again before.")
    judge_provider: str | None = Field(default=None, max_length=64)
    judge_model: str | None = Field(default=None, max_length=128)
    enabled: bool = True


class MonitorCreate(_Settings):
    prompt: PromptName
    environment: EnvironmentName = "production"
    scorers: list[RuleIn] = Field(min_length=1, max_length=20)

    @model_validator(mode="after")
    def _sizes(self) -> MonitorCreate:
        if self.min_sample > self.window_size:
            raise ValueError("min_sample must not exceed window_size")
        return self


class MonitorUpdate(RequestBody):
    """Fields to change; the rest stay as they are."""

    sample_rate: float | None = Field(default=None, gt=0, le=1)
    window_size: int | None = Field(default=None, ge=20, le=100_000)
    min_sample: int | None = Field(default=None, ge=10, le=MAX_INT)
    check_every: int | None = Field(default=None, ge=1, le=MAX_INT)
    consecutive: int | None = Field(default=None, ge=1, le=50)
    alpha: float | None = Field(default=None, gt=0, le=0.2)
    auto_rollback: bool | None = None
    cooldown_seconds: float | None = Field(default=None, ge=0)
    judge_provider: str | None = Field(default=None, max_length=64)
    judge_model: str | None = Field(default=None, max_length=128)
    enabled: bool | None = None
    scorers: list[RuleIn] | None = Field(default=None, min_length=1, max_length=20)


class MonitorRead(ReadModel):
    id: int
    prompt: str
    environment: str
    enabled: bool
    sample_rate: float
    scorers: list[RuleRead] = Field(validation_alias="rules")
    window_size: int
    min_sample: int
    check_every: int
    consecutive: int
    alpha: float
    auto_rollback: bool
    cooldown_seconds: float
    judge_provider: str | None
    judge_model: str | None
    last_rollback_at: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class AlertRead(ReadModel):
    id: int
    monitor_id: int
    level: Literal["warning", "critical"]
    scorer: str
    reason: str = Field(description="regression, floor or drift.")
    version: int
    baseline_version: int | None
    at: datetime
    evidence: dict[str, Any]
    rollback_to: int | None
    rollback_note: str
    examples: str = Field(description="Path of the failing outputs behind the alert.")


class WindowRead(BaseModel):
    version: int
    n: int
    level: float | None = Field(description="Pass rate, or mean score.")
    start: datetime | None
    end: datetime | None


class ScorerStatus(BaseModel):
    name: str
    kind: str
    current: WindowRead | None
    baseline: WindowRead | None
    level: Level | None = Field(description="The latest look's finding (None before the minimum sample).")
    acting: Level | None = Field(
        default=None, description="The level acted on: reached by `consecutive` looks at this rule in a row."
    )


class CheckRead(BaseModel):
    id: int
    at: datetime
    version: int
    baseline_version: int | None
    look: int
    scored: int
    level: Level
    acting: Level
    findings: list[dict[str, Any]]


class MonitorStatus(BaseModel):
    monitor: MonitorRead
    live_version: int | None
    live_since: datetime | None
    baseline_version: int | None
    state: Literal["no_release", "collecting", "ok", "warning", "critical"]
    message: str
    scored: int = Field(description="Records of the live version scored since it went live.")
    pending: int = Field(description="Sampled records waiting to be scored.")
    judge_cost_usd: float
    scorers: list[ScorerStatus]
    checks: list[CheckRead] = Field(description="Looks, newest first: scores and decisions over time.")
    alerts: list[AlertRead] = Field(description="Newest first.")


class ExampleRead(BaseModel):
    generation_id: int
    request_id: str
    at: datetime
    version: int
    scorer: str
    value: float
    passed: bool
    detail: dict[str, Any] | None
    output: str
    input: Any | None
