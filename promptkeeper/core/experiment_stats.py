"""Statistics for A/B experiments on prompt versions: planning and fixed-horizon tests (sequential
tests: `sequential.py`).

Pure: no I/O and no third-party packages, like `stats.py`, whose Student t distribution this module
reuses; chi-squared is new, via the regularized incomplete gamma function. The tests pin every
formula to values computed once with SciPy. Control comes first, treatment second, and a difference
is treatment minus control; p-values are two-sided unless a parameter says otherwise.

Errors: `ValueError` for impossible input (a rate outside (0, 1), fewer than two observations, a
table with an empty row or column, weights that do not match the counts).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from statistics import NormalDist
from typing import NamedTuple

from promptkeeper.core.intervals import (
    Interval,
    binomial_upper_tail,
    t_quantile,
    t_upper_tail,
    variance,
    z_quantile,
)

__all__ = [
    "ChiSquaredResult",
    "ProportionTestResult",
    "SampleSummary",
    "SrmResult",
    "WelchResult",
    "chi2_sf",
    "chi_squared_test",
    "holm_adjust",
    "MedianRanks",
    "median_bootstrap_interval",
    "median_from_ranks",
    "median_ranks",
    "relative_lift",
    "power_proportions",
    "raw_sample_size_means",
    "raw_sample_size_proportions",
    "sample_size_means",
    "sample_size_proportions",
    "srm",
    "two_proportion_z_test",
    "welch_t_test",
    "welch_t_test_samples",
]

# The product pre-registers at least this many units per variant, whatever the power calculation says.
MINIMUM_PER_VARIANT = 500
SRM_THRESHOLD = 0.001

# ---------------------------------------------------------------------------------------------------
# Distributions
# ---------------------------------------------------------------------------------------------------

_TINY = 1e-300
_EPS = 1e-16


def _regularized_gamma_q(a: float, x: float) -> float:
    """Q(a, x) = Gamma(a, x) / Gamma(a): the series for P below a + 1, Lentz's continued fraction above.

    Each converges fast on its side (Numerical Recipes 6.2). Above a + 1 the fraction gives Q itself,
    so tiny p-values keep their relative precision instead of vanishing in `1 - P`.
    """
    if x <= 0.0:
        return 1.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        denominator = a
        for _ in range(10_000):
            denominator += 1.0
            term *= x / denominator
            total += term
            if abs(term) < abs(total) * _EPS:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    result = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = b + an / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        result *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return math.exp(log_front) * result


def chi2_sf(statistic: float, df: float) -> float:
    """P(X > statistic) for X ~ chi-squared(df); accurate to ~1e-12 against `scipy.stats.chi2.sf`."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    return _regularized_gamma_q(df / 2.0, statistic / 2.0)


def _normal_two_sided(z: float) -> float:
    """2 P(Z > |z|) through erfc, which keeps precision far in the tail where `1 - cdf` rounds to 0."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def _critical_values(alpha: float, power: float, two_sided: bool) -> tuple[float, float]:
    """Normal quantiles for the level and the power (`power_proportions` passes 0.5, whose quantile is 0)."""
    if not (0.0 < alpha < 1.0 and 0.0 < power < 1.0):
        raise ValueError(f"alpha and power must lie in (0, 1), got {alpha} and {power}")
    normal = NormalDist()
    return normal.inv_cdf(1.0 - alpha / 2.0 if two_sided else 1.0 - alpha), normal.inv_cdf(power)


# ---------------------------------------------------------------------------------------------------
# Planning: sample size and power
# ---------------------------------------------------------------------------------------------------


def _proportion_terms(baseline: float, mde: float, relative: bool) -> tuple[float, float, float]:
    """|p2 - p1|, the null (pooled) standard deviation and the alternative (unpooled) one, per unit."""
    p1, p2 = baseline, baseline * (1.0 + mde) if relative else baseline + mde
    if not (0.0 < p1 < 1.0 and 0.0 < p2 < 1.0) or p1 == p2:
        raise ValueError(f"need two different rates in (0, 1), got {p1} and {p2}")
    pooled = (p1 + p2) / 2.0
    return abs(p2 - p1), math.sqrt(2.0 * pooled * (1.0 - pooled)), math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))


def _at_least(raw: float, minimum: int) -> int:
    # Round up, ignoring float noise (62.0000000001 is 62), then apply the pre-registered floor.
    return max(math.ceil(raw - 1e-9), minimum)


def raw_sample_size_proportions(
    baseline: float,
    mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    two_sided: bool = True,
    relative: bool = False,
) -> float:
    """Units per variant, unrounded, to detect `baseline -> baseline + mde` (or `baseline * (1 + mde)`).

    The standard normal-approximation formula (Fleiss, without continuity correction): the critical
    value uses the pooled variance 2 p(1 - p) at the mean rate p, because that is the variance under
    the null hypothesis being tested; the power term uses the unpooled p1 q1 + p2 q2 of the alternative.
    It is the equation R's `power.prop.test` solves (its default `strict = FALSE`).
    """
    effect, sd_null, sd_alternative = _proportion_terms(baseline, mde, relative)
    z_alpha, z_power = _critical_values(alpha, power, two_sided)
    return ((z_alpha * sd_null + z_power * sd_alternative) / effect) ** 2


def sample_size_proportions(
    baseline: float,
    mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    two_sided: bool = True,
    relative: bool = False,
    minimum: int = MINIMUM_PER_VARIANT,
) -> int:
    """`raw_sample_size_proportions` rounded up, and never below the pre-registered `minimum`."""
    return _at_least(raw_sample_size_proportions(baseline, mde, alpha, power, two_sided, relative), minimum)


def raw_sample_size_means(
    sd: float, mde: float, alpha: float = 0.05, power: float = 0.8, two_sided: bool = True
) -> float:
    """Units per variant, unrounded: 2 sd^2 (z_alpha + z_power)^2 / mde^2 (equal sd in both variants).

    Normal rather than t quantiles: experiments run to hundreds of units per variant, where the two
    agree to within one unit, and the closed form needs no iteration (R's `power.t.test` is ~1 higher).
    """
    if sd <= 0 or mde == 0:
        raise ValueError(f"need a positive sd and a non-zero effect, got sd={sd}, mde={mde}")
    return 2.0 * (sd * sum(_critical_values(alpha, power, two_sided)) / mde) ** 2


def sample_size_means(
    sd: float,
    mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    two_sided: bool = True,
    minimum: int = MINIMUM_PER_VARIANT,
) -> int:
    """`raw_sample_size_means` rounded up, and never below the pre-registered `minimum`."""
    return _at_least(raw_sample_size_means(sd, mde, alpha, power, two_sided), minimum)


def power_proportions(
    n_per_variant: float,
    baseline: float,
    mde: float,
    alpha: float = 0.05,
    two_sided: bool = True,
    relative: bool = False,
) -> float:
    """Power of the two-proportion test with `n_per_variant` units: the inverse of the sample size.

    Same variances as `raw_sample_size_proportions`; the (negligible) chance of rejecting in the wrong
    direction is ignored, as in `power.prop.test`, so both functions solve the same equation.
    """
    if n_per_variant <= 0:
        raise ValueError(f"need a positive sample size, got {n_per_variant}")
    effect, sd_null, sd_alternative = _proportion_terms(baseline, mde, relative)
    z_alpha, _ = _critical_values(alpha, 0.5, two_sided)
    return NormalDist().cdf((math.sqrt(n_per_variant) * effect - z_alpha * sd_null) / sd_alternative)


# ---------------------------------------------------------------------------------------------------
# Fixed-horizon tests
# ---------------------------------------------------------------------------------------------------


class ChiSquaredResult(NamedTuple):
    statistic: float
    df: int
    p_value: float


class SrmResult(NamedTuple):
    statistic: float
    p_value: float
    mismatch: bool


def chi_squared_test(conversions: Sequence[int], trials: Sequence[int]) -> ChiSquaredResult:
    """Pearson's test of independence on the 2 x k table (conversions, non-conversions) per variant.

    No Yates correction: with experiment-sized counts it only costs power (SciPy's
    `chi2_contingency(..., correction=False)` is the reference). An empty variant or a table without
    any conversion (or any non-conversion) has a zero expected cell, where the test is undefined.
    """
    if len(conversions) != len(trials) or len(trials) < 2:
        raise ValueError("need conversions and trials for at least two variants, of equal length")
    if any(not 0 <= c <= n for c, n in zip(conversions, trials, strict=True)):
        raise ValueError("need 0 <= conversions <= trials in every variant")
    rows = [list(conversions), [n - c for c, n in zip(conversions, trials, strict=True)]]
    total = sum(trials)
    row_totals = [sum(row) for row in rows]
    if 0 in row_totals or 0 in trials:
        raise ValueError("the table has an empty row or column: the chi-squared test is undefined")
    statistic = math.fsum(
        (observed - expected) ** 2 / expected
        for row, row_total in zip(rows, row_totals, strict=True)
        for observed, column_total in zip(row, trials, strict=True)
        for expected in [row_total * column_total / total]
    )
    df = len(trials) - 1
    return ChiSquaredResult(statistic, df, chi2_sf(statistic, df))


def srm(observed_counts: Sequence[int], expected_weights: Sequence[float]) -> SrmResult:
    """Sample ratio mismatch: goodness of fit of the assignment counts to the configured weights.

    A mismatch means assignment or logging is broken, and then no result of the experiment can be
    trusted. The threshold is p < 0.001, not 0.05: the check runs on every experiment at every peek,
    and a false alarm halts a healthy experiment.
    """
    if len(observed_counts) != len(expected_weights) or len(observed_counts) < 2:
        raise ValueError("need a weight for each of at least two variants")
    if any(w <= 0 for w in expected_weights) or any(c < 0 for c in observed_counts):
        raise ValueError("weights must be positive and counts non-negative")
    total, weight_total = sum(observed_counts), math.fsum(expected_weights)
    if total == 0:
        return SrmResult(0.0, 1.0, False)
    expected = [total * w / weight_total for w in expected_weights]
    statistic = math.fsum((o - e) ** 2 / e for o, e in zip(observed_counts, expected, strict=True))
    p_value = chi2_sf(statistic, len(expected) - 1)
    return SrmResult(statistic, p_value, p_value < SRM_THRESHOLD)


class SampleSummary(NamedTuple):
    """What a metric store keeps per variant: count, mean and sample variance (n - 1 denominator)."""

    n: int
    mean: float
    variance: float

    @classmethod
    def of(cls, values: Sequence[float]) -> SampleSummary:
        if not values:
            raise ValueError("cannot summarize no values")
        return cls(len(values), math.fsum(values) / len(values), variance(values))

    @classmethod
    def of_conversions(cls, successes: int, trials: int) -> SampleSummary:
        """The summary of `trials` 0/1 outcomes: mean p, sample variance p (1 - p) n / (n - 1)."""
        if trials < 2 or not 0 <= successes <= trials:
            raise ValueError(f"need 0 <= successes <= trials and trials >= 2, got {successes} of {trials}")
        p = successes / trials
        return cls(trials, p, p * (1.0 - p) * trials / (trials - 1))


class WelchResult(NamedTuple):
    difference: float
    t: float
    df: float
    p_value: float
    interval: Interval


def welch_t_test(control: SampleSummary, treatment: SampleSummary, level: float = 0.95) -> WelchResult:
    """Welch's t-test from summary statistics, with the Welch–Satterthwaite degrees of freedom.

    Welch rather than Student: prompt versions change the spread of a metric (response length, latency)
    as well as its mean, and Welch does not assume equal variances while losing almost nothing if they are.
    """
    if control.n < 2 or treatment.n < 2:
        raise ValueError("Welch's test needs at least two observations per variant")
    a, b = control.variance / control.n, treatment.variance / treatment.n
    if a + b <= 0:
        raise ValueError("both variants have zero variance: the test is undefined")
    se = math.sqrt(a + b)
    df = (a + b) ** 2 / (a * a / (control.n - 1) + b * b / (treatment.n - 1))
    difference = treatment.mean - control.mean
    half = t_quantile(level, df) * se
    p_value = min(1.0, 2.0 * t_upper_tail(abs(difference) / se, df))
    return WelchResult(
        difference, difference / se, df, p_value, Interval(difference - half, difference + half, level)
    )


def welch_t_test_samples(
    control: Sequence[float], treatment: Sequence[float], level: float = 0.95
) -> WelchResult:
    """`welch_t_test` on raw observations."""
    return welch_t_test(SampleSummary.of(control), SampleSummary.of(treatment), level)


class ProportionTestResult(NamedTuple):
    control_rate: float
    treatment_rate: float
    difference: float
    z: float
    p_value: float
    interval: Interval
    lift: float | None
    lift_interval: Interval | None


def two_proportion_z_test(
    control_successes: int,
    control_trials: int,
    treatment_successes: int,
    treatment_trials: int,
    level: float = 0.95,
) -> ProportionTestResult:
    """Two-proportion z-test, with intervals for the difference and the relative lift.

    The test statistic uses the pooled rate (the variance under the null); the intervals use the
    unpooled variances, since they describe the difference that is there. The lift p2 / p1 - 1 gets a
    delta-method interval: Var(p2 / p1) ~ (p2 / p1)^2 (Var p1 / p1^2 + Var p2 / p2^2). It is undefined
    (None) without a control conversion; with no variance at all (nobody or everybody converts) p = 1.
    """
    for successes, trials in ((control_successes, control_trials), (treatment_successes, treatment_trials)):
        if trials <= 0 or not 0 <= successes <= trials:
            raise ValueError(f"need 0 <= successes <= trials and trials > 0, got {successes} of {trials}")
    p1, p2 = control_successes / control_trials, treatment_successes / treatment_trials
    pooled = (control_successes + treatment_successes) / (control_trials + treatment_trials)
    se_null = math.sqrt(pooled * (1.0 - pooled) * (1.0 / control_trials + 1.0 / treatment_trials))
    difference = p2 - p1
    z = difference / se_null if se_null > 0 else 0.0
    var1, var2 = p1 * (1.0 - p1) / control_trials, p2 * (1.0 - p2) / treatment_trials
    critical = z_quantile(level)
    half = critical * math.sqrt(var1 + var2)
    interval = Interval(difference - half, difference + half, level)
    lift, lift_interval = None, None
    if p1 > 0:
        ratio = p2 / p1
        lift = ratio - 1.0
        lift_half = critical * math.sqrt(ratio * ratio * var1 / (p1 * p1) + var2 / (p1 * p1))
        lift_interval = Interval(lift - lift_half, lift + lift_half, level)
    p_value = _normal_two_sided(z) if se_null > 0 else 1.0
    return ProportionTestResult(p1, p2, difference, z, p_value, interval, lift, lift_interval)


# ---------------------------------------------------------------------------------------------------
# Multiple comparisons
# ---------------------------------------------------------------------------------------------------


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input order (R's `p.adjust(p, "holm")`).

    For several candidates against one control: reject where the adjusted value is below alpha and
    the family-wise error stays at alpha, with more power than plain Bonferroni and no assumptions
    about how the tests depend on each other (they share the control, so they do).
    """
    if any(not 0.0 <= p <= 1.0 for p in p_values):
        raise ValueError("p-values must lie in [0, 1]")
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


# ---------------------------------------------------------------------------------------------------
# Relative lift of means, medians
# ---------------------------------------------------------------------------------------------------


def relative_lift(
    control: SampleSummary, treatment: SampleSummary, level: float = 0.95
) -> tuple[float, Interval] | None:
    """mean_t / mean_c - 1 with a delta-method interval; None when the control's mean is 0.

    Var(m_t / m_c) ~ Var(m_t) / m_c^2 + m_t^2 Var(m_c) / m_c^4 (independent groups), the same
    approximation as the conversion-rate lift of `two_proportion_z_test`.
    """
    if control.mean == 0 or control.n < 1 or treatment.n < 1:
        return None
    ratio = treatment.mean / control.mean
    var_ratio = (treatment.variance / treatment.n) / control.mean**2 + (
        treatment.mean**2 * (control.variance / control.n)
    ) / control.mean**4
    half = z_quantile(level) * math.sqrt(var_ratio)
    return ratio - 1.0, Interval(ratio - 1.0 - half, ratio - 1.0 + half, level)


def _order_statistic_cdf(j: int, n: int, rank: int) -> float:
    """P(the `rank`-th smallest of a bootstrap resample <= x_(j)) = P(Bin(n, j / n) >= rank)."""
    return binomial_upper_tail(rank, n, j / n)


def _first_rank_reaching(probability: float, n: int, rank: int) -> int:
    low, high = 1, n
    while low < high:
        middle = (low + high) // 2
        if _order_statistic_cdf(middle, n, rank) >= probability:
            high = middle
        else:
            low = middle + 1
    return low


class MedianRanks(NamedTuple):
    """1-based ranks of the order statistics the median and its bootstrap interval are made of."""

    middle: tuple[int, int]  # equal for an odd n; the median is the mean of the two values
    low: int
    high: int


def median_ranks(n: int, level: float = 0.95) -> MedianRanks:
    """Which order statistics of n values `median_bootstrap_interval` reads (see there).

    Lets a database return only the values near the middle instead of all n of them: the ranks lie
    within about z sqrt(n) / 2 of n / 2.
    """
    if n <= 0:
        raise ValueError("cannot take the median of no values")
    middle = (n + 1) // 2, n // 2 + 1
    tail = (1.0 - level) / 2.0
    return MedianRanks(
        middle, _first_rank_reaching(tail, n, middle[0]), _first_rank_reaching(1.0 - tail, n, middle[1])
    )


def median_bootstrap_interval(sorted_values: Sequence[float], level: float = 0.95) -> tuple[float, Interval]:
    """The median and its percentile-bootstrap interval, computed exactly instead of by resampling.

    A bootstrap resample's k-th order statistic is at most x_(j) exactly when at least k of the n
    draws fall at or below x_(j), and each draw does with probability j / n: so its distribution is
    binomial (Efron, 1982), and the percentile interval's ends are order statistics found by
    bisection, with no Monte Carlo noise and in O(log n) beta evaluations whatever n is. For an even
    n the low end uses the lower middle order statistic and the high end the upper one (slightly
    wider than the resampled interval of the averaged median). `sorted_values` must be ascending.
    """
    ranks = median_ranks(len(sorted_values), level)
    return median_from_ranks(lambda rank: sorted_values[rank - 1], ranks, level)


def median_from_ranks(
    value_at: Callable[[int], float], ranks: MedianRanks, level: float = 0.95
) -> tuple[float, Interval]:
    """The median and interval from the order statistics named by `ranks` (`value_at(rank)`)."""
    median = (value_at(ranks.middle[0]) + value_at(ranks.middle[1])) / 2.0
    return median, Interval(value_at(ranks.low), value_at(ranks.high), level)
