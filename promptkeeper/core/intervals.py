"""Distributions and confidence intervals that evaluations, experiments and monitoring share.

Pure: no I/O and no third-party packages. The few distributions needed (the normal quantile from
`statistics.NormalDist`, Student's t quantile from the regularized incomplete beta function below) are
small enough that pulling SciPy into the server for them would cost more than it saves; the tests pin
every formula to values computed with SciPy and statsmodels.

Sections: distributions, intervals. What an evaluation run reports with them (per-scorer summaries,
paired comparisons) is `eval_stats.py`; experiments have `experiment_stats.py`, monitors
`regression_stats.py`.

Errors: `ValueError` for impossible input (a level outside (0, 1), no values).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

__all__ = [
    "Interval",
    "mean_interval",
    "t_quantile",
    "variance",
    "wilson_interval",
    "z_quantile",
]


# ---------------------------------------------------------------------------------------------------
# Distributions
# ---------------------------------------------------------------------------------------------------


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be between 0 and 1 (exclusive), got {level}")


def z_quantile(level: float) -> float:
    """The two-sided standard normal critical value for `level` (1.959964 for 0.95)."""
    _check_level(level)
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def _incomplete_beta_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz), as in Numerical Recipes."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        result *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        result *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return result


def _regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b); the fraction converges fast only below (a+1)/(a+b+2), so use symmetry above it."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _incomplete_beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _incomplete_beta_fraction(b, a, 1.0 - x) / b


def binomial_upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), through I_p(k, n - k + 1)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return _regularized_beta(float(k), float(n - k + 1), p)


def t_upper_tail(t: float, df: float) -> float:
    """P(T > t) for t >= 0."""
    return 0.5 * _regularized_beta(df / 2.0, 0.5, df / (df + t * t))


def t_quantile(level: float, df: float) -> float:
    """The two-sided Student t critical value: P(|T| <= q) = level with `df` degrees of freedom.

    Found by bisection on the tail probability: ~100 halvings give full double precision, which is
    cheap next to anything that produced the scores.
    """
    _check_level(level)
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    tail = (1.0 - level) / 2.0
    low, high = 0.0, 1.0
    while t_upper_tail(high, df) > tail:
        low, high = high, high * 2.0
    for _ in range(200):
        middle = (low + high) / 2.0
        if t_upper_tail(middle, df) > tail:
            low = middle
        else:
            high = middle
        if high - low <= 1e-13 * high:
            break
    return (low + high) / 2.0


# ---------------------------------------------------------------------------------------------------
# Intervals
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    level: float


def wilson_interval(successes: int, n: int, level: float = 0.95) -> Interval:
    """Wilson score interval for a pass rate.

    Chosen over the normal ("Wald") interval because suites are small and pass rates sit near 0 or 1,
    where Wald collapses to a zero-width interval (10/10 -> [1, 1]) and Wilson stays honest.
    No observations give the whole [0, 1].
    """
    _check_level(level)
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return Interval(0.0, 1.0, level)
    z = z_quantile(level)
    p = successes / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n))
    # At 0 or n successes the bound is exactly 0 or 1; rounding would otherwise leave 1e-17 residue.
    low = 0.0 if successes == 0 else max(0.0, center - half)
    high = 1.0 if successes == n else min(1.0, center + half)
    return Interval(low, high, level)


def mean_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Student t interval for a mean; one value gives the degenerate [mean, mean].

    t rather than normal because runs often have tens of cases, where the normal interval is too
    narrow. Not clipped to [0, 1]: the same function serves differences, which can be negative.
    """
    _check_level(level)
    n = len(values)
    if n == 0:
        raise ValueError("mean_interval needs at least one value")
    mean = math.fsum(values) / n
    if n < 2:
        return Interval(mean, mean, level)
    half = t_quantile(level, n - 1) * math.sqrt(variance(values) / n)
    return Interval(mean - half, mean + half, level)


def variance(values: Sequence[float]) -> float:
    """Sample variance (n - 1 in the denominator); 0 for fewer than two values."""
    n = len(values)
    if n < 2:
        return 0.0
    mean = math.fsum(values) / n
    return math.fsum((v - mean) ** 2 for v in values) / (n - 1)
