"""Results of an experiment: aggregation in SQL, statistics in Python (`core.experiment_stats`).

The database does the heavy part in one statement: events → one row per unit (its variant, whether
it was exposed, when it first was, one value per metric) → one row per (variant, weight period)
with counts, sums and sums of squares. A million events become a few dozen rows before Python sees
them. Medians (latency, cost) need the per-unit values of their variant, fetched sorted, for those
metrics only.

Decisions (see docs/experiments.md):
- fixed horizon (default): before every variant has its pre-registered sample size the state is
  `collecting` and no p-value, significance or winner is reported; after, two-sided tests (two-
  proportion z and Pearson chi-squared for binary metrics, Welch for continuous ones) with Holm's
  correction over the candidates;
- sequential: mSPRT always-valid p-values and intervals, valid at every look, so a winner may be
  declared as soon as one is significant;
- guardrails are always judged sequentially (they are watched all the time, and a fixed-horizon
  test watched all the time would raise false alarms), Holm-corrected per metric;
- a sample ratio mismatch (p < 0.001) makes the state `srm` and suppresses any winner.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Float, and_, case, cast, func, literal, null, select, text, union_all
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from promptkeeper.core import experiment_stats as es
from promptkeeper.core.sequential import sequential_test
from promptkeeper.core.stats import Interval, wilson_interval, z_quantile
from promptkeeper.db.base import utcnow
from promptkeeper.experiments.metrics import MetricSpec
from promptkeeper.experiments.models import Event, Experiment
from promptkeeper.experiments.schemas import (
    IntervalRead,
    MedianRead,
    MetricResult,
    ResultsRead,
    SrmRead,
    VariantResult,
)
from promptkeeper.experiments.service import metric_spec

LEVEL = 0.95


@dataclass
class Moments:
    """Per variant and metric: units with a value, sum and sum of squares of the per-unit values."""

    n: int = 0
    total: float = 0.0
    squares: float = 0.0

    def add(self, n: int, total: float, squares: float) -> None:
        self.n += n
        self.total += total
        self.squares += squares

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        if self.n < 2:
            return 0.0
        return max(0.0, (self.squares - self.total * self.total / self.n) / (self.n - 1))

    def summary(self) -> es.SampleSummary:
        return es.SampleSummary(self.n, self.mean, self.variance)


@dataclass
class Aggregate:
    exposures: list[int]
    by_period: dict[int, list[int]]
    moments: dict[str, list[Moments]]
    multiple: int = 0
    medians: dict[str, list[tuple[float, Interval] | None]] = field(default_factory=dict)


def _unit_value(spec: MetricSpec) -> ColumnElement[Any]:
    """The SQL for one unit's value of a metric (see `metrics.py` for the definitions)."""
    if spec.column is None:
        raw: ColumnElement[Any] = Event.custom[spec.name].as_float()
    else:
        raw = getattr(Event, spec.column)
    if spec.kind == "binary":
        if spec.column == "thumbs":
            flag = case((raw == 1, 1.0), (raw == -1, 0.0))
        elif spec.column is None:
            flag = case((raw > 0, 1.0), (raw.is_not(None), 0.0))
        else:
            flag = case((raw.is_(True), 1.0), (raw.is_(False), 0.0))
        value = func.max(flag)
        return func.coalesce(value, 0.0) if spec.missing == "zero" else value
    return func.avg(cast(raw, Float))


def _periods(experiment: Experiment) -> list[datetime]:
    """Start instants of the weight periods after the first (for the SRM expectation)."""
    return [datetime.fromisoformat(entry["at"]) for entry in experiment.weight_history[1:]]


#: Group of a unit that saw more than one variant, or that has outcomes but no exposure.
_MULTIPLE, _UNEXPOSED = -1, -2


def aggregate(session: Session, experiment: Experiment, specs: list[MetricSpec]) -> Aggregate:
    """One statement: per-unit rows (a CTE, materialized as it is read twice) aggregated per
    (variant, weight period), and, for metrics with medians, the order statistics near each
    variant's middle (the exact bootstrap interval needs only those, not all n values)."""
    k = len(experiment.variants)
    is_exposure = Event.kind == "exposure"
    columns: list[Any] = [
        Event.unit.label("unit"),
        func.min(Event.variant).label("v"),
        func.max(Event.variant).label("v2"),
        func.max(case((is_exposure, 1), else_=0)).label("exposed"),
        func.min(case((is_exposure, Event.at))).label("first_at"),
    ]
    for index, spec in enumerate(specs):
        columns.append(_unit_value(spec).label(f"m{index}"))
    units = (
        select(*columns)
        .where(Event.experiment_id == experiment.id, Event.unit.is_not(None))
        .group_by(Event.unit)
        .cte("units")
    )
    boundaries = _periods(experiment)
    period: ColumnElement[Any] = (
        case(*[(units.c.first_at < at, i) for i, at in enumerate(boundaries)], else_=len(boundaries))
        if boundaries
        else literal(0)
    )
    group = case((units.c.v != units.c.v2, _MULTIPLE), (units.c.exposed == 0, _UNEXPOSED), else_=units.c.v)
    floats: list[Any] = []
    for index in range(len(specs)):
        value = units.c[f"m{index}"]
        floats += [
            cast(func.count(value), Float),
            cast(func.coalesce(func.sum(value), 0.0), Float),
            cast(func.coalesce(func.sum(value * value), 0.0), Float),
        ]
    parts: list[Any] = [
        select(
            literal(-1).label("part"), group.label("g"), period.label("k"), func.count().label("c"), *floats
        ).group_by(group, period)
    ]
    blanks = [cast(null(), Float)] * (len(floats) - 1)
    valid = and_(units.c.v == units.c.v2, units.c.exposed == 1)
    for index, spec in enumerate(specs):
        if not spec.median:
            continue
        value = units.c[f"m{index}"]
        ranked = (
            select(
                units.c.v,
                value.label("x"),
                func.row_number().over(partition_by=units.c.v, order_by=value).label("rn"),
                func.count().over(partition_by=units.c.v).label("n"),
            )
            .where(valid, value.is_not(None))
            .subquery()
        )
        distance = ranked.c.rn - ranked.c.n / 2.0
        # the bootstrap ranks lie within ~z sqrt(n) / 2 of the middle: keep 3 sqrt(n) (no sqrt in SQLite)
        parts.append(
            select(
                literal(index), ranked.c.v, ranked.c.rn, ranked.c.n, cast(ranked.c.x, Float), *blanks
            ).where(distance * distance <= 9 * ranked.c.n + 16)
        )
    if session.get_bind().dialect.name == "postgresql":  # hash the units in memory, not on disk
        session.execute(text("SET LOCAL work_mem = '64MB'"))
    rows = session.execute(union_all(*parts)).all()
    result = Aggregate(
        exposures=[0] * k,
        by_period=defaultdict(lambda: [0] * k),
        moments={spec.name: [Moments() for _ in range(k)] for spec in specs},
    )
    windows: dict[int, dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    sizes: dict[int, dict[int, int]] = defaultdict(dict)
    for row in rows:
        part, variant = int(row[0]), int(row[1])
        if part >= 0:  # a median metric's order statistic: (variant, rank, n, value)
            windows[part][variant][int(row[2])] = float(row[4])
            sizes[part][variant] = int(row[3])
            continue
        count = int(row[3])
        if variant == _MULTIPLE:
            result.multiple += count
        if not 0 <= variant < k:
            continue
        result.exposures[variant] += count
        result.by_period[int(row[2])][variant] += count
        for index, spec in enumerate(specs):
            n, total, squares = row[4 + 3 * index : 7 + 3 * index]
            result.moments[spec.name][variant].add(int(n), float(total), float(squares))
    for index, spec in enumerate(specs):
        if spec.median:
            result.medians[spec.name] = [
                _median(windows[index][variant], sizes[index].get(variant, 0)) for variant in range(k)
            ]
    return result


def _median(window: dict[int, float], n: int) -> tuple[float, Interval] | None:
    if n == 0:
        return None
    return es.median_from_ranks(window.__getitem__, es.median_ranks(n, LEVEL), LEVEL)


# -- statistics ---------------------------------------------------------------------------------------


def _interval(interval: Interval | None) -> IntervalRead | None:
    if interval is None or not (math.isfinite(interval.low) and math.isfinite(interval.high)):
        return None
    return IntervalRead(low=interval.low, high=interval.high)


def _mean_interval(spec: MetricSpec, moments: Moments) -> Interval | None:
    if moments.n < 2:
        return None
    if spec.kind == "binary":
        return wilson_interval(round(moments.total), moments.n, LEVEL)
    half = z_quantile(LEVEL) * math.sqrt(moments.variance / moments.n)
    return Interval(moments.mean - half, moments.mean + half, LEVEL)


@dataclass
class Comparison:
    lift: float
    lift_ci: Interval
    p_value: float
    relative: tuple[float, Interval] | None


def _compare(
    spec: MetricSpec, control: Moments, treatment: Moments, *, sequential: bool, alpha: float
) -> Comparison | None:
    if control.n < 2 or treatment.n < 2:
        return None
    a, b = control.summary(), treatment.summary()
    if a.variance + b.variance <= 0:
        return None
    relative = es.relative_lift(a, b, LEVEL)
    if sequential:
        seq = sequential_test(a, b, alpha=alpha)
        return Comparison(seq.difference, seq.interval, seq.p_value, relative)
    if spec.kind == "binary":
        z = es.two_proportion_z_test(
            round(control.total), control.n, round(treatment.total), treatment.n, LEVEL
        )
        lift = (z.lift, z.lift_interval) if z.lift is not None and z.lift_interval is not None else None
        return Comparison(z.difference, z.interval, z.p_value, lift)
    welch = es.welch_t_test(a, b, LEVEL)
    return Comparison(welch.difference, welch.interval, welch.p_value, relative)


def _metric_results(
    spec: MetricSpec,
    data: Aggregate,
    *,
    sequential: bool,
    alpha: float,
    report_tests: bool,
) -> list[MetricResult]:
    moments = data.moments[spec.name]
    comparisons = [None] + [
        _compare(spec, moments[0], m, sequential=sequential, alpha=alpha) for m in moments[1:]
    ]
    tested = [i for i, c in enumerate(comparisons) if c is not None]
    adjusted = dict(zip(tested, es.holm_adjust([comparisons[i].p_value for i in tested]), strict=True))  # type: ignore[union-attr]
    results = []
    for index, m in enumerate(moments):
        median = None
        medians = data.medians.get(spec.name)
        if medians is not None and medians[index] is not None:
            value, interval = medians[index]  # type: ignore[misc]
            median = MedianRead(median=value, ci=IntervalRead(low=interval.low, high=interval.high))
        result = MetricResult(n=m.n, mean=m.mean, ci=_interval(_mean_interval(spec, m)), median=median)
        comparison = comparisons[index]
        if comparison is not None:
            result.lift = comparison.lift
            result.lift_ci = _interval(comparison.lift_ci)
            if comparison.relative is not None:
                result.relative_lift = comparison.relative[0]
                result.relative_lift_ci = _interval(comparison.relative[1])
            if report_tests:
                result.p_value = comparison.p_value
                result.adjusted_p_value = adjusted[index]
                result.significant = adjusted[index] < alpha
                good = comparison.lift > 0 if spec.higher_is_better else comparison.lift < 0
                result.better = good if result.significant else None
        results.append(result)
    return results


def _srm(experiment: Experiment, data: Aggregate) -> SrmRead:
    """Goodness of fit of exposures to the weights in force when each unit arrived."""
    history = experiment.weight_history or [{"weights": [v["weight"] for v in experiment.variants]}]
    k = len(experiment.variants)
    expected = [0.0] * k
    for period, counts in data.by_period.items():
        weights = history[min(period, len(history) - 1)]["weights"]
        total = sum(counts)
        for i in range(k):
            expected[i] += total * weights[i]
    observed = data.exposures
    total = sum(observed)
    if total == 0 or any(e <= 0 for e in expected):
        shares = [v["weight"] for v in experiment.variants]
        return SrmRead(p_value=1.0, statistic=0.0, mismatch=False, expected_weights=shares, observed=observed)
    shares = [e / total for e in expected]
    test = es.srm(observed, shares)
    return SrmRead(
        p_value=test.p_value,
        statistic=test.statistic,
        mismatch=test.mismatch,
        expected_weights=shares,
        observed=observed,
    )


def results(*, session: Session, experiment: Experiment) -> ResultsRead:
    started = time.perf_counter()
    project_id = experiment.project_id
    primary = metric_spec(
        session=session, project_id=project_id, name=experiment.primary_metric, field="primary_metric"
    )
    guardrails = [
        metric_spec(session=session, project_id=project_id, name=name, field="guardrails")
        for name in experiment.guardrails
        if name != experiment.primary_metric
    ]
    specs = [primary, *guardrails]
    data = aggregate(session, experiment, specs)
    srm = _srm(experiment, data)
    min_exposures = min(data.exposures)
    planned = experiment.planned_sample_size
    collecting = not experiment.sequential and min_exposures < planned
    per_metric = {
        primary.name: _metric_results(
            primary,
            data,
            sequential=experiment.sequential,
            alpha=experiment.alpha,
            report_tests=not collecting,
        )
    }
    for spec in guardrails:
        per_metric[spec.name] = _metric_results(
            spec, data, sequential=True, alpha=experiment.alpha, report_tests=True
        )
    violations = [
        {
            "variant": experiment.variants[index]["key"],
            "metric": spec.name,
            "lift": result.lift,
            "adjusted_p_value": result.adjusted_p_value,
        }
        for spec in guardrails
        for index, result in enumerate(per_metric[spec.name])
        if index > 0 and result.better is False
    ]
    chi = None
    primary_moments = data.moments[primary.name]
    if primary.kind == "binary" and not collecting and not experiment.sequential:
        try:
            test = es.chi_squared_test(
                [round(m.total) for m in primary_moments], [m.n for m in primary_moments]
            )
            chi = {"statistic": test.statistic, "df": float(test.df), "p_value": test.p_value}
        except ValueError:
            chi = None
    winner = None
    if not collecting and not srm.mismatch:
        flagged = {v["variant"] for v in violations}
        best = None
        for index, result in enumerate(per_metric[primary.name]):
            key = experiment.variants[index]["key"]
            if index == 0 or result.better is not True or key in flagged or result.lift is None:
                continue
            gain = result.lift if primary.higher_is_better else -result.lift
            if best is None or gain > best[0]:
                best = (gain, key)
        winner = best[1] if best is not None else None
    if srm.mismatch:
        state, message = (
            "srm",
            (
                f"sample ratio mismatch: exposures {srm.observed} do not fit the weights "
                f"(p = {srm.p_value:.2g} < 0.001); assignment or exposure logging is broken, so no "
                "result can be trusted"
            ),
        )
    elif collecting:
        state, message = (
            "collecting",
            (
                f"collecting ({min_exposures} of {planned} units per variant): no test is reported "
                "before the pre-registered sample size"
            ),
        )
    else:
        state = "ready"
        if winner is not None:
            message = f"'{winner}' is significantly better than the control on {primary.name}"
        else:
            message = f"no candidate is significantly better than the control on {primary.name}"
    if violations:
        message += "; guardrail violated: " + ", ".join(
            f"{v['variant']} on {v['metric']}" for v in violations
        )
    method = (
        "mSPRT always-valid p-values and intervals (sequential)"
        if experiment.sequential
        else (
            "two-proportion z-test and Pearson chi-squared (2 x k)"
            if primary.kind == "binary"
            else "Welch's t-test"
        )
    )
    if len(experiment.variants) > 2:
        method += f"; Holm correction over {len(experiment.variants) - 1} candidates"
    method += "; guardrails: mSPRT (always valid)"
    variants = [
        VariantResult(
            key=v["key"],
            version=v["version"],
            weight=v["weight"],
            exposures=data.exposures[index],
            metrics={name: rows[index] for name, rows in per_metric.items()},
        )
        for index, v in enumerate(experiment.variants)
    ]
    return ResultsRead(
        experiment_id=experiment.id,
        status=experiment.status,
        state=state,
        message=message,
        planned_sample_size=planned,
        min_exposures=min_exposures,
        sequential=experiment.sequential,
        method=method,
        primary_metric=primary.name,
        chi_squared=chi,
        variants=variants,
        srm=srm,
        winner=winner,
        guardrail_violations=violations,
        multiple_units=data.multiple,
        computed_at=utcnow(),
        seconds=time.perf_counter() - started,
    )
