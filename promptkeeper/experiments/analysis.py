"""Results of an experiment: aggregation in SQL, statistics in Python (`core.experiment_stats`).

The aggregation (per unit, then per variant, in the database) is in `aggregation.py`.

Decisions (see docs/experiments.md):
- fixed horizon (default): before every variant has its pre-registered sample size the state is
  `collecting` and no p-value, significance or winner is reported; after, two-sided tests (two-
  proportion z and Pearson chi-squared for binary metrics, Welch for continuous ones) with Holm's
  correction over the candidates;
- sequential: mSPRT always-valid p-values and intervals, valid at every look, so a winner may be
  declared as soon as one is significant;
- guardrails are always judged sequentially (they are watched all the time, and a fixed-horizon
  test watched all the time would raise false alarms), Holm-corrected per metric;
- every other metric the outcomes carried (built-in or custom) is reported per variant with its
  interval and lift, described but never tested (`metric_roles` says which is which);
- a sample ratio mismatch (p < 0.001) makes the state `srm` and suppresses any winner.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from sqlalchemy.orm import Session

from promptkeeper.core import experiment_stats as es
from promptkeeper.core.intervals import Interval, wilson_interval, z_quantile
from promptkeeper.core.sequential import sequential_test
from promptkeeper.db.base import utcnow
from promptkeeper.experiments.aggregation import LEVEL, Aggregate, Moments, aggregate, received
from promptkeeper.experiments.metrics import MetricSpec, metric_spec, project_specs
from promptkeeper.experiments.models import Experiment
from promptkeeper.experiments.schemas import (
    IntervalRead,
    MedianRead,
    MetricResult,
    MetricRole,
    ResultsRead,
    SrmRead,
    VariantResult,
)

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
    judged = {primary.name, *(spec.name for spec in guardrails)}
    candidates = [
        spec for spec in project_specs(session=session, project_id=project_id) if spec.name not in judged
    ]
    seen = received(session, experiment, candidates)
    secondary = [spec for spec in candidates if spec.name in seen]
    data = aggregate(session, experiment, [primary, *guardrails, *secondary])
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
    # Described, never tested: a p-value for every metric that arrived would multiply the false
    # discoveries; the pre-registered primary and guardrails are what decisions rest on.
    for spec in secondary:
        per_metric[spec.name] = _metric_results(
            spec, data, sequential=experiment.sequential, alpha=experiment.alpha, report_tests=False
        )
    roles: dict[str, MetricRole] = {primary.name: "primary"}
    roles.update({spec.name: "guardrail" for spec in guardrails})
    roles.update({spec.name: "secondary" for spec in secondary})
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
        metric_roles=roles,
        chi_squared=chi,
        variants=variants,
        srm=srm,
        winner=winner,
        guardrail_violations=violations,
        multiple_units=data.multiple,
        computed_at=utcnow(),
        seconds=time.perf_counter() - started,
    )
