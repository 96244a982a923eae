"""Bodies of the experiments API: experiments, events, custom metrics and results."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from promptkeeper.core.bases import ReadModel, RequestBody
from promptkeeper.core.fields import MAX_INT, EnvironmentName, PromptName

MAX_EVENTS = 10_000
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
METRIC_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
Mode = Literal["fixed", "thompson", "ucb"]
Status = Literal["draft", "running", "stopped"]
Decision = Literal["ship", "keep_control", "inconclusive"]


class CandidateIn(RequestBody):
    version: int = Field(ge=1, le=MAX_INT)
    weight: float = Field(gt=0, description="Relative traffic weight (weights are normalized to sum 1).")
    key: str | None = Field(default=None, pattern=KEY_PATTERN, description="Default: v<version>.")


class ExperimentCreate(RequestBody):
    prompt: PromptName
    environment: EnvironmentName = "production"
    name: str = Field(min_length=1, max_length=128)
    hypothesis: str = Field(default="", max_length=10_000)
    control_weight: float = Field(default=1.0, gt=0, description="Relative weight of the control.")
    candidates: list[CandidateIn] = Field(min_length=1, max_length=9)
    mode: Mode = "fixed"
    primary_metric: str = Field(pattern=METRIC_PATTERN)
    guardrails: list[str] = Field(default_factory=list, max_length=20)
    alpha: float = Field(default=0.05, gt=0, le=0.2)
    power: float = Field(default=0.8, ge=0.5, lt=1)
    mde: float = Field(
        gt=0, description="Minimum detectable effect (absolute, or relative with mde_relative)."
    )
    mde_relative: bool = False
    baseline: float | None = Field(
        default=None, gt=0, lt=1, description="Control's expected rate (binary primary metric)."
    )
    std_dev: float | None = Field(
        default=None, gt=0, description="Expected standard deviation per unit (continuous primary metric)."
    )
    sequential: bool = Field(default=False, description="Always-valid (mSPRT) analysis: safe early stopping.")
    stop_on_guardrail: bool = False
    seed: str | None = Field(default=None, min_length=1, max_length=64, description="Default: random.")
    coverage: float = Field(default=1.0, gt=0, le=1, description="Share of units enrolled.")
    burn_in: int = Field(
        default=100, ge=1, le=MAX_INT, description="Bandits: units per arm before weights move."
    )
    min_share: float = Field(default=0.01, ge=0, le=0.5, description="Bandits: minimum traffic per arm.")


class WeightsUpdate(RequestBody):
    weights: dict[str, float] = Field(description="Variant key -> relative weight, for every variant.")
    reason: str = Field(default="", max_length=10_000)


class ExperimentStop(RequestBody):
    decision: Decision
    variant: str | None = Field(default=None, description="The candidate to ship (decision 'ship').")
    reason: str = Field(default="", max_length=10_000)
    review_id: int | None = Field(
        default=None, ge=1, le=MAX_INT, description="Approved review of the shipped version."
    )


class VariantRead(BaseModel):
    key: str
    version: int
    weight: float


class ExperimentRead(ReadModel):
    id: int
    prompt: str
    environment: str
    name: str
    hypothesis: str
    status: Status
    mode: Mode
    seed: str
    hash_version: int
    coverage: float
    variants: list[VariantRead]
    primary_metric: str
    guardrails: list[str]
    alpha: float
    power: float
    mde: float
    mde_relative: bool
    baseline: float | None
    std_dev: float | None
    planned_sample_size: int = Field(description="Units per variant, pre-registered at creation.")
    sequential: bool
    stop_on_guardrail: bool
    burn_in: int
    min_share: float
    decision: Decision | None
    decision_variant: str | None
    decision_reason: str
    created_by: str
    created_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None
    weights_updated_at: datetime | None


class ExperimentList(BaseModel):
    items: list[ExperimentRead]
    total: int


# -- events ----------------------------------------------------------------------------------------


MAX_OUTPUT_CHARS = 200_000


class EventIn(RequestBody):
    type: Literal["exposure", "outcome", "generation"]
    request_id: str = Field(min_length=1, max_length=128)
    at: datetime | None = Field(default=None, description="When it happened (default: when received).")
    experiment_id: int | None = Field(
        default=None, ge=1, le=MAX_INT, description="Exposure: the experiment (required)."
    )
    variant: str | None = Field(default=None, max_length=64, description="Exposure: the variant key.")
    unit: str | None = Field(default=None, min_length=1, max_length=128, description="Exposure: the unit.")
    prompt: str | None = Field(default=None, max_length=128)
    version: int | None = Field(default=None, ge=1, le=MAX_INT)
    completed: bool | None = None
    thumbs: Literal["up", "down"] | None = None
    rating: float | None = Field(default=None, ge=1, le=5)
    edited: bool | None = None
    regenerated: bool | None = None
    latency_ms: float | None = Field(default=None, ge=0)
    ttft_ms: float | None = Field(default=None, ge=0)
    input_tokens: int | None = Field(default=None, ge=0, le=MAX_INT)
    output_tokens: int | None = Field(default=None, ge=0, le=MAX_INT)
    cost_usd: float | None = Field(default=None, ge=0)
    safety_flag: bool | None = None
    metrics: dict[str, float | bool] | None = Field(default=None, description="Custom metrics by name.")
    environment: EnvironmentName | None = Field(
        default=None, description="Generation: where it ran (required)."
    )
    output: str | None = Field(
        default=None, max_length=MAX_OUTPUT_CHARS, description="Generation: the model's output (required)."
    )
    input: Any | None = Field(
        default=None, description="Generation: the rendered input or its variables (redact before sending)."
    )


class EventBatch(RequestBody):
    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS)


class EventBatchRead(BaseModel):
    accepted: int
    exposures: int
    outcomes: int
    untagged: int = Field(description="Outcomes whose exposure is not known yet (tagged when it arrives).")
    generations: int = Field(
        default=0, description="Generation records stored (a resent request id is skipped)."
    )


# -- custom metrics --------------------------------------------------------------------------------


class MetricCreate(RequestBody):
    name: str = Field(pattern=METRIC_PATTERN)
    kind: Literal["binary", "continuous"]
    higher_is_better: bool = True
    description: str = Field(default="", max_length=10_000)


class MetricRead(BaseModel):
    name: str
    kind: Literal["binary", "continuous"]
    higher_is_better: bool
    description: str
    builtin: bool


# -- results ---------------------------------------------------------------------------------------


class IntervalRead(BaseModel):
    low: float
    high: float


class MedianRead(BaseModel):
    median: float
    ci: IntervalRead = Field(description="95% percentile-bootstrap interval (exact, no resampling).")


MetricRole = Literal["primary", "guardrail", "secondary"]


class MetricResult(BaseModel):
    n: int = Field(description="Units with a value.")
    mean: float = Field(description="Mean per unit; the rate for a binary metric.")
    ci: IntervalRead | None
    median: MedianRead | None = None
    lift: float | None = Field(default=None, description="Absolute difference vs control.")
    lift_ci: IntervalRead | None = None
    relative_lift: float | None = None
    relative_lift_ci: IntervalRead | None = None
    p_value: float | None = None
    adjusted_p_value: float | None = Field(default=None, description="Holm-adjusted over the candidates.")
    significant: bool = False
    better: bool | None = Field(default=None, description="Significant in the metric's good direction.")


class VariantResult(BaseModel):
    key: str
    version: int
    weight: float
    exposures: int
    metrics: dict[str, MetricResult]


class SrmRead(BaseModel):
    p_value: float
    statistic: float
    mismatch: bool
    expected_weights: list[float]
    observed: list[int]


class ResultsRead(BaseModel):
    experiment_id: int
    status: Status
    state: Literal["collecting", "ready", "srm"] = Field(
        description="collecting: below the planned sample size (fixed horizon); srm: not trustworthy."
    )
    message: str
    planned_sample_size: int
    min_exposures: int
    sequential: bool
    method: str = Field(description="How p-values and intervals were computed.")
    primary_metric: str
    metric_roles: dict[str, MetricRole] = Field(
        description=(
            "Every metric in the variants' `metrics`: the primary (tested), the guardrails (tested "
            "sequentially) and each other metric the outcomes carried (secondary: intervals, no test)."
        )
    )
    chi_squared: dict[str, float] | None = Field(
        default=None, description="2 x k test of the primary metric (binary)."
    )
    variants: list[VariantResult]
    srm: SrmRead
    winner: str | None
    guardrail_violations: list[dict[str, Any]]
    multiple_units: int = Field(description="Units exposed to more than one variant (left out).")
    computed_at: datetime
    seconds: float = Field(description="Time the analysis took.")
