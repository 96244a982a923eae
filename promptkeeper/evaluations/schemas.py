"""Bodies of the evaluation API: suites and cases, runs and results, gates."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from promptkeeper.core.bases import ReadModel, RequestBody
from promptkeeper.core.fields import MAX_INT, EnvironmentName, PromptName

SUITE_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"
MAX_CASES = 20_000
RunStatus = Literal["queued", "running", "succeeded", "failed"]


class ScorerConfig(RequestBody):
    name: str = Field(min_length=1, max_length=64, description="A registered scorer (docs/scorers.md).")
    params: dict[str, Any] = Field(default_factory=dict)
    threshold: float | None = Field(default=None, ge=0, le=1, description="Pass mark; the scorer's default.")


class CaseIn(RequestBody):
    key: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Stable id across suite versions (default case-N).",
    )
    variables: dict[str, Any] = Field(default_factory=dict)
    expected: str | None = Field(default=None, max_length=200_000)
    tags: list[str] = Field(default_factory=list, max_length=50)
    scorers: list[ScorerConfig] | None = Field(
        default=None, description="Replaces the suite's scorers for this case."
    )


class SuiteCreate(RequestBody):
    name: str = Field(pattern=SUITE_PATTERN)
    prompt: PromptName | None = Field(
        default=None, description="The prompt it belongs to (else the project)."
    )
    description: str = Field(default="", max_length=10_000)
    scorers: list[ScorerConfig] = Field(min_length=1, max_length=50)
    cases: list[CaseIn] = Field(default_factory=list, max_length=MAX_CASES)
    message: str = Field(default="", max_length=10_000)


class SuiteVersionCreate(RequestBody):
    scorers: list[ScorerConfig] | None = Field(default=None, min_length=1, max_length=50)
    cases: list[CaseIn] | None = Field(default=None, max_length=MAX_CASES)
    message: str = Field(default="", max_length=10_000)


class SuiteRead(ReadModel):
    name: str
    prompt: str | None
    description: str
    version: int
    scorers: list[dict[str, Any]]
    case_count: int
    message: str
    created_by: str
    created_at: datetime
    updated_at: datetime


class CaseRead(ReadModel):
    key: str
    position: int
    variables: dict[str, Any]
    expected: str | None
    tags: list[str]
    scorers: list[dict[str, Any]] | None


class ImportRead(BaseModel):
    suite: SuiteRead
    imported: int


class RunSettings(RequestBody):
    """How a run calls the model: given per run, or stored on a gate for the runs it starts."""

    repeats: int = Field(default=1, ge=1, le=20)
    provider: str = Field(default="local", min_length=1, max_length=64)
    model: str | None = Field(
        default=None, max_length=128, description="Default: the version's config.model."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Model parameters over the version's.")
    concurrency: int | None = Field(default=None, ge=1, le=512)
    judge_provider: str | None = Field(default=None, max_length=64, description="Default: `provider`.")
    judge_model: str | None = Field(default=None, max_length=128, description="Default: `model`.")
    judge_params: dict[str, Any] = Field(default_factory=dict, description="Parameters of judge calls.")
    prices: dict[Literal["input", "output"], float] | None = Field(
        default=None,
        description="USD per 1M tokens for the cost of this run (default: a list of known models).",
    )


class RunCreate(RunSettings):
    suite: str = Field(pattern=SUITE_PATTERN)
    suite_version: int | None = Field(
        default=None, ge=1, le=MAX_INT, description="Default: the suite's head."
    )
    version: int | None = Field(
        default=None, ge=1, le=MAX_INT, description="Prompt version (default: the head)."
    )


class RunRead(ReadModel):
    id: int
    prompt: str
    version: int = Field(validation_alias="prompt_version")
    suite: str
    suite_version: int
    repeats: int
    provider: str
    model: str
    status: RunStatus
    total: int
    done: int
    summary: dict[str, Any]
    error: str
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ResultRead(ReadModel):
    case: str = Field(validation_alias="case_key")
    repeat: int
    output: str
    error: str | None
    passed: bool
    scores: list[dict[str, Any]]
    latency_ms: float | None
    ttft_ms: float | None
    input_tokens: int | None
    output_tokens: int | None
    cached: bool
    cost_usd: float | None


class CaseComparison(BaseModel):
    case: str
    scorer: str
    baseline: float
    candidate: float
    change: Literal["regressed", "improved", "unchanged"]


class ComparisonRead(BaseModel):
    baseline: int
    candidate: int
    scorers: dict[str, dict[str, Any]] = Field(
        description="Per scorer: mean of both, mean difference with its confidence interval."
    )
    regressions: list[CaseComparison]
    improvements: list[CaseComparison]


class GateSet(RequestBody):
    suite: str = Field(pattern=SUITE_PATTERN)
    min_scores: dict[str, float] = Field(
        default_factory=dict, description="Scorer name -> minimum mean score in [0, 1]."
    )
    max_drop: dict[str, float] = Field(
        default_factory=dict,
        description="Scorer name -> largest allowed drop of the mean vs the version the environment serves.",
    )
    auto_promote: bool = Field(
        default=False, description="Deploy a version here as soon as one of its runs passes this gate."
    )
    suite_version: int | None = Field(
        default=None,
        ge=1,
        le=MAX_INT,
        description="Accept only runs on this suite version (default: the suite's current version).",
    )
    auto_run: RunSettings | None = Field(
        default=None,
        description="Opt-in: a deploy that finds no valid run starts one with these settings and "
        "waits for it (202 with a pending deploy) instead of answering 409.",
    )


class GateRead(ReadModel):
    environment: EnvironmentName
    suite: str
    suite_version: int | None = Field(description="The pinned suite version; null: the current one.")
    min_scores: dict[str, float]
    max_drop: dict[str, float]
    auto_promote: bool
    auto_run: dict[str, Any] | None
    updated_by: str
    updated_at: datetime


PendingStatus = Literal["waiting", "deployed", "refused", "cancelled"]


class PendingDeploymentRead(ReadModel):
    id: int
    prompt: str
    environment: str
    version: int
    action: str
    status: PendingStatus = Field(
        description="waiting for its runs; deployed; refused (a run failed, the gate or another "
        "policy said no); cancelled."
    )
    run: int | None = Field(
        validation_alias="run_id", description="The evaluation run of `version` it waits for."
    )
    run_status: RunStatus | None
    baseline_run: int | None = Field(
        validation_alias="baseline_run_id",
        description="The run of the version the environment serves, if needed.",
    )
    baseline_run_status: RunStatus | None
    actor: str
    reason: str
    deployment: int | None = Field(
        validation_alias="deployment_id", description="The history row, once deployed."
    )
    message: str = Field(description="Why it was refused or cancelled.")
    details: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None
