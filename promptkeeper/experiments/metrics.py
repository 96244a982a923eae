"""The metrics an experiment can be judged on: built-in outcome fields and a project's custom metrics.

Analysis is per unit (user or session), not per request, because units are what is randomized:
requests of one user are not independent, and counting them as if they were makes intervals too
narrow. Each metric says how a unit's outcome events become one value:

- binary, `missing="zero"` (completion, edited, regenerated, safety flag, custom binary): 1 if any
  of the unit's outcomes set it, 0 otherwise, including units with no outcome at all (a conversion
  rate over exposed units);
- binary, `missing="exclude"` (thumbs up): the share of up-votes among units that voted;
- continuous (rating, latency, tokens, cost, custom continuous): the mean of the unit's values;
  units without a value are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from promptkeeper.access.service import Actor
from promptkeeper.audit.service import record
from promptkeeper.errors import Conflict, ValidationFailed
from promptkeeper.experiments.models import Metric
from promptkeeper.experiments.schemas import MetricCreate, MetricRead

Kind = Literal["binary", "continuous"]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    kind: Kind
    higher_is_better: bool
    #: The `Event` column the metric reads, or None for a custom metric (`custom.<name>`).
    column: str | None
    missing: Literal["zero", "exclude"]
    #: Also report the median with an interval (skewed metrics: latency, cost).
    median: bool = False
    description: str = ""


BUILTIN: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("completion", "binary", True, "completed", "zero", description="task completed"),
        MetricSpec("thumbs_up", "binary", True, "thumbs", "exclude", description="up-votes among votes"),
        MetricSpec("rating", "continuous", True, "rating", "exclude", description="rating 1-5"),
        MetricSpec("edited", "binary", False, "edited", "zero", description="output edited by the user"),
        MetricSpec("regenerated", "binary", False, "regenerated", "zero", description="output regenerated"),
        MetricSpec("latency_ms", "continuous", False, "latency_ms", "exclude", True, "total latency"),
        MetricSpec("ttft_ms", "continuous", False, "ttft_ms", "exclude", True, "time to first token"),
        MetricSpec("input_tokens", "continuous", False, "input_tokens", "exclude"),
        MetricSpec("output_tokens", "continuous", False, "output_tokens", "exclude"),
        MetricSpec("cost_usd", "continuous", False, "cost_usd", "exclude", True, "cost per request"),
        MetricSpec("safety_flag", "binary", False, "safety_flag", "zero", description="refusal or violation"),
    )
}


def custom_spec(name: str, kind: Kind, higher_is_better: bool, description: str = "") -> MetricSpec:
    return MetricSpec(
        name,
        kind,
        higher_is_better,
        None,
        "zero" if kind == "binary" else "exclude",
        description=description,
    )


def metric_spec(*, session: Session, project_id: int, name: str, field: str) -> MetricSpec:
    """The built-in or custom metric `name`; 422 naming `field` when there is none."""
    spec = BUILTIN.get(name)
    if spec is not None:
        return spec
    metric = session.scalar(select(Metric).where(Metric.project_id == project_id, Metric.name == name))
    if metric is None:
        raise ValidationFailed(
            f"{field}: unknown metric '{name}' (built-in: {', '.join(BUILTIN)}; "
            "or define it: POST /v1/metrics)",
            details={"field": field, "metric": name},
        )
    return custom_spec(metric.name, metric.kind, metric.higher_is_better, metric.description)  # type: ignore[arg-type]


def project_specs(*, session: Session, project_id: int) -> list[MetricSpec]:
    """Every metric an experiment of the project could report: the built-ins, then the custom ones."""
    custom = session.scalars(select(Metric).where(Metric.project_id == project_id).order_by(Metric.name))
    return [
        *BUILTIN.values(),
        *(custom_spec(m.name, m.kind, m.higher_is_better, m.description) for m in custom),  # type: ignore[arg-type]
    ]


def create_metric(*, session: Session, actor: Actor, data: MetricCreate) -> Metric:
    if data.name in BUILTIN:
        raise Conflict(f"'{data.name}' is a built-in metric", details={"metric": data.name})
    exists = session.scalar(
        select(Metric.id).where(Metric.project_id == actor.project_id, Metric.name == data.name)
    )
    if exists is not None:
        raise Conflict(f"metric '{data.name}' already exists", details={"metric": data.name})
    metric = Metric(
        project_id=actor.project_id,
        name=data.name,
        kind=data.kind,
        higher_is_better=data.higher_is_better,
        description=data.description,
        created_by=actor.name,
    )
    session.add(metric)
    session.flush()
    record(
        session=session,
        actor=actor,
        action="metric.created",
        target_type="metric",
        target=data.name,
        after={"kind": data.kind, "higher_is_better": data.higher_is_better},
    )
    return metric


def list_metrics(*, session: Session, project_id: int) -> list[MetricRead]:
    builtin = [
        MetricRead(
            name=spec.name,
            kind=spec.kind,
            higher_is_better=spec.higher_is_better,
            description=spec.description,
            builtin=True,
        )
        for spec in BUILTIN.values()
    ]
    custom = session.scalars(select(Metric).where(Metric.project_id == project_id).order_by(Metric.name))
    return builtin + [
        MetricRead(
            name=m.name,
            kind=m.kind,
            higher_is_better=m.higher_is_better,
            description=m.description,
            builtin=False,
        )
        for m in custom
    ]
