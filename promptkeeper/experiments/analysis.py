"""Results of an experiment: aggregation in SQL, statistics in Python (`core.experiment_stats`).

The database does the heavy part in one statement: the per-unit rollup that ingestion keeps
(`rollup.py`: each unit's variant, whether and when it was first exposed, its outcome fields) → one
value per unit and metric → one row per (variant, weight period) with counts, sums and sums of
squares. A million events become a few dozen rows before Python sees them, and the cost grows with
the units, not the events. Medians (latency, cost) need order statistics: only those near each
variant's middle are returned.

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

from sqlalchemy import Float, case, cast, func, literal, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from promptkeeper.core import experiment_stats as es
from promptkeeper.core.sequential import sequential_test
from promptkeeper.core.stats import Interval, wilson_interval, z_quantile
from promptkeeper.db.base import utcnow
from promptkeeper.experiments import rollup
from promptkeeper.experiments.metrics import MetricSpec
from promptkeeper.experiments.models import UNIT_NUMBERS, Event, Experiment
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


def _custom_value(spec: MetricSpec) -> ColumnElement[Any]:
    """A custom metric's per-unit value from the events' JSON (before the missing-value policy)."""
    raw: ColumnElement[Any] = Event.custom[spec.name].as_float()
    if spec.kind == "binary":
        return func.max(case((raw > 0, 1.0), (raw.is_not(None), 0.0)))
    return func.avg(raw)


def _periods(experiment: Experiment) -> list[datetime]:
    """Start instants of the weight periods after the first (for the SRM expectation)."""
    return [datetime.fromisoformat(entry["at"]) for entry in experiment.weight_history[1:]]


#: Group of a unit that saw more than one variant, or that has outcomes but no exposure.
_MULTIPLE, _UNEXPOSED = -1, -2


def aggregate(session: Session, experiment: Experiment, specs: list[MetricSpec]) -> Aggregate:
    """The units of the rollup aggregated per (variant, weight period) in one statement; for
    metrics with medians, one more for the order statistics near each variant's middle (the exact
    bootstrap interval needs only those, not all n values)."""
    k = len(experiment.variants)
    units_table = rollup.UNITS
    columns: list[Any] = [
        units_table.c.unit,
        units_table.c.variant_min.label("v"),
        units_table.c.variant_max.label("v2"),
        case((units_table.c.exposures > 0, 1), else_=0).label("exposed"),
        units_table.c.first_exposure_at.label("first_at"),
    ]
    source: Any = units_table
    custom_specs = [spec for spec in specs if spec.column is None]
    if custom_specs:  # aggregated from the events: the rollup keeps built-in fields only
        custom = (
            select(Event.unit, *[_custom_value(spec).label(spec.name) for spec in custom_specs])
            .where(Event.experiment_id == experiment.id, Event.kind == "outcome", Event.custom.is_not(None))
            .group_by(Event.unit)
            .subquery()
        )
        source = units_table.outerjoin(custom, custom.c.unit == units_table.c.unit)
    for index, spec in enumerate(specs):
        if spec.column is not None:
            value = rollup.unit_value(spec)
        else:
            value = custom.c[spec.name]
            if spec.missing == "zero":
                value = func.coalesce(value, 0.0)
        columns.append(value.label(f"m{index}"))
    units = (
        select(*columns).select_from(source).where(units_table.c.experiment_id == experiment.id).subquery()
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
    statement = select(group.label("g"), period.label("k"), func.count().label("c"), *floats).group_by(
        group, period
    )
    if session.get_bind().dialect.name == "postgresql":  # hash the units in memory, not on disk
        session.execute(text("SET LOCAL work_mem = '64MB'"))
    result = Aggregate(
        exposures=[0] * k,
        by_period=defaultdict(lambda: [0] * k),
        moments={spec.name: [Moments() for _ in range(k)] for spec in specs},
    )
    for row in session.execute(statement):
        variant, count = int(row[0]), int(row[2])
        if variant == _MULTIPLE:
            result.multiple += count
        if not 0 <= variant < k:
            continue
        result.exposures[variant] += count
        result.by_period[int(row[1])][variant] += count
        for index, spec in enumerate(specs):
            n, total, squares = row[3 + 3 * index : 6 + 3 * index]
            result.moments[spec.name][variant].add(int(n), float(total), float(squares))
    for spec in specs:
        if spec.median:
            middles = _middle_order_statistics(session, experiment.id, spec)
            result.medians[spec.name] = [
                _median(*middles[variant]) if variant in middles else None for variant in range(k)
            ]
    return result


# The exact bootstrap interval of a median reads order statistics within ~z sqrt(n) / 2 of the
# middle; the database returns those within 3 sqrt(n) + 2 (a wide margin) instead of all n values.
_MIDDLE_POSTGRES = """
WITH vals AS (
    SELECT variant_min AS v, {column}_sum / {column}_n AS x FROM experiment_units
    WHERE experiment_id = :experiment_id AND variant_min = variant_max AND exposures > 0 AND {column}_n > 0
), counts AS (
    SELECT v, count(*) AS n,
           greatest(1, count(*) / 2 - (ceil(3 * sqrt(count(*)))::int + 2)) AS lo,
           least(count(*), count(*) / 2 + (ceil(3 * sqrt(count(*)))::int + 3)) AS hi
    FROM vals GROUP BY v
)
SELECT counts.v, counts.n, counts.lo,
       percentile_disc(ARRAY(
           SELECT ((r - 0.5) / counts.n)::float8 FROM generate_series(counts.lo, counts.hi) AS r
       )) WITHIN GROUP (ORDER BY vals.x)
FROM vals JOIN counts ON counts.v = vals.v
GROUP BY counts.v, counts.n, counts.lo, counts.hi
"""


def _middle_order_statistics(
    session: Session, experiment_id: int, spec: MetricSpec
) -> dict[int, tuple[dict[int, float], int]]:
    """variant -> ({rank: value} near the middle, n) of a built-in continuous metric's unit values.

    PostgreSQL: `percentile_disc` at the fractions that pick exactly those ranks (one sort of bare
    values per variant); elsewhere: window functions.
    """
    assert spec.column in UNIT_NUMBERS  # a fixed name: safe in the SQL text
    found: dict[int, tuple[dict[int, float], int]] = {}
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(
            text(_MIDDLE_POSTGRES.format(column=spec.column)), {"experiment_id": experiment_id}
        )
        for variant, n, low, values in rows:
            found[int(variant)] = ({int(low) + i: float(x) for i, x in enumerate(values)}, int(n))
        return found
    units = rollup.UNITS
    value = rollup.unit_value(spec)
    ranked = (
        select(
            units.c.variant_min.label("v"),
            value.label("x"),
            func.row_number().over(partition_by=units.c.variant_min, order_by=value).label("rn"),
            func.count().over(partition_by=units.c.variant_min).label("n"),
        )
        .where(
            units.c.experiment_id == experiment_id,
            units.c.variant_min == units.c.variant_max,
            units.c.exposures > 0,
            value.is_not(None),
        )
        .subquery()
    )
    distance = ranked.c.rn - ranked.c.n / 2.0
    rows = session.execute(
        select(ranked.c.v, ranked.c.rn, ranked.c.n, ranked.c.x).where(
            distance * distance <= 9 * ranked.c.n + 16
        )
    )
    for variant, rank, n, x in rows:
        window, _ = found.setdefault(int(variant), ({}, int(n)))
        window[int(rank)] = float(x)
    return found


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
