"""Regression detection for online monitoring: is the current version worse than the last one?

Pure: no I/O and no third-party packages, like `experiment_stats.py`. The baseline is the frozen
window of the previous version, the current window is the new version's; every test is one-sided
("current is worse"), with a tolerance margin, since a monitor exists to catch drops and must not
alarm on improvements or on differences too small to matter:

- pass/fail scores: `proportion_regression` (normal approximation, with a margin) and
  `fisher_regression` (exact, for small windows, without a margin);
- scores: `mean_regression` (Welch's t, one-sided, with the margin: the effect is the difference
  of means, which is what a margin in score units bounds; judges answer on a few levels, where a
  median shift reads 0 for a large drop); `mann_whitney_regression` (the U test with tie and
  continuity corrections, on the current scores shifted by the tolerance) with the Hodges–Lehmann
  shift as the effect size, for continuous scores when a rank test is wanted;
- drift within one version's stream: `cusum_alarm` and `ewma_alarm`;
- `breaches`: a decision acts only after N consecutive breaches, so one unlucky window does not
  roll back a good version.

Higher scores are better throughout. The tests check every p-value against SciPy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import NamedTuple

from promptkeeper.core.intervals import t_quantile, t_upper_tail

__all__ = [
    "RegressionTest",
    "breaches",
    "cusum_alarm",
    "ewma_alarm",
    "fisher_regression",
    "hodges_lehmann_shift",
    "mann_whitney_regression",
    "mean_regression",
    "proportion_regression",
]

_NORMAL = NormalDist()


class RegressionTest(NamedTuple):
    """`effect`: current minus baseline (a difference of rates, or the Hodges–Lehmann shift);
    `p_value`: one-sided, small when the current version is worse by more than the margin."""

    effect: float
    p_value: float


def _check_counts(passed: int, n: int) -> None:
    if n <= 0 or not 0 <= passed <= n:
        raise ValueError(f"need 0 <= passed <= n and n > 0, got {passed} of {n}")


def proportion_regression(
    baseline_passed: int, baseline_n: int, current_passed: int, current_n: int, margin: float = 0.0
) -> RegressionTest:
    """H0: p_current >= p_baseline - margin against H1: p_current < p_baseline - margin.

    z = (p_c - p_b + margin) / se with the unpooled standard error (pooling assumes equal rates,
    which the margin says we do not); with no variance at all the p-value is 1 unless the observed
    drop already exceeds the margin.
    """
    _check_counts(baseline_passed, baseline_n)
    _check_counts(current_passed, current_n)
    if margin < 0:
        raise ValueError(f"the margin must be non-negative, got {margin}")
    p_b, p_c = baseline_passed / baseline_n, current_passed / current_n
    se = math.sqrt(p_b * (1 - p_b) / baseline_n + p_c * (1 - p_c) / current_n)
    difference = p_c - p_b
    if se == 0:
        return RegressionTest(difference, 0.0 if difference < -margin else 1.0)
    return RegressionTest(difference, _NORMAL.cdf((difference + margin) / se))


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_regression(
    baseline_passed: int, baseline_n: int, current_passed: int, current_n: int
) -> RegressionTest:
    """Fisher's exact test, one-sided: P(the current window passes this few or fewer | the margins).

    The hypergeometric lower tail of the current window's pass count given both windows' totals
    (SciPy's `fisher_exact(table, alternative="less")` on [[current pass, fail], [baseline pass,
    fail]]). Exact for any window size: the monitor's choice below ~30 records per window.
    """
    _check_counts(baseline_passed, baseline_n)
    _check_counts(current_passed, current_n)
    total_passed = baseline_passed + current_passed
    total = baseline_n + current_n
    low = max(0, total_passed - baseline_n)
    denominator = _log_choose(total, total_passed)
    tail = math.fsum(
        math.exp(_log_choose(current_n, k) + _log_choose(baseline_n, total_passed - k) - denominator)
        for k in range(low, current_passed + 1)
    )
    return RegressionTest(current_passed / current_n - baseline_passed / baseline_n, min(1.0, tail))


def hodges_lehmann_shift(baseline: Sequence[float], current: Sequence[float]) -> float:
    """The median of all pairwise differences current - baseline: a robust estimate of the shift."""
    if not baseline or not current:
        raise ValueError("need scores in both windows")
    differences = sorted(c - b for c in current for b in baseline)
    middle = len(differences) // 2
    if len(differences) % 2:
        return differences[middle]
    return (differences[middle - 1] + differences[middle]) / 2.0


def mann_whitney_regression(
    baseline: Sequence[float], current: Sequence[float], tolerance: float = 0.0
) -> RegressionTest:
    """Mann–Whitney U, one-sided: are the current scores stochastically lower, beyond `tolerance`?

    The current scores are shifted up by `tolerance` before ranking, so a drop smaller than the
    tolerance is not evidence. Normal approximation with the tie correction and a continuity
    correction (SciPy's `mannwhitneyu(current + tolerance, baseline, alternative="less",
    method="asymptotic")`); windows hold hundreds of scores, where it is accurate. `effect` is the
    Hodges–Lehmann shift of the unshifted scores.
    """
    if len(baseline) < 1 or len(current) < 1:
        raise ValueError("need scores in both windows")
    if tolerance < 0:
        raise ValueError(f"the tolerance must be non-negative, got {tolerance}")
    shifted = [c + tolerance for c in current]
    n1, n2 = len(shifted), len(baseline)
    pooled = sorted([(value, 0) for value in shifted] + [(value, 1) for value in baseline])
    rank_sum = 0.0
    tie_term = 0.0
    index = 0
    while index < len(pooled):
        end = index
        while end + 1 < len(pooled) and pooled[end + 1][0] == pooled[index][0]:
            end += 1
        average_rank = (index + end) / 2.0 + 1.0
        count = end - index + 1
        tie_term += count**3 - count
        rank_sum += average_rank * sum(1 for k in range(index, end + 1) if pooled[k][1] == 0)
        index = end + 1
    u = rank_sum - n1 * (n1 + 1) / 2.0
    mean = n1 * n2 / 2.0
    n = n1 + n2
    variance = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    effect = hodges_lehmann_shift(baseline, current)
    if variance <= 0:
        return RegressionTest(effect, 1.0)
    z = (u - mean + 0.5) / math.sqrt(variance)  # continuity correction toward the null
    return RegressionTest(effect, _NORMAL.cdf(z))


class MeanTest(NamedTuple):
    """`effect`: current minus baseline mean; `p_value`: one-sided (small when the current mean is
    below the baseline's by more than the margin); `bound`: the one-sided upper confidence bound on
    the effect at `level`; `df`: Welch–Satterthwaite degrees of freedom (inf: no variance)."""

    effect: float
    p_value: float
    bound: float
    df: float


def _mean_and_variance(values: Sequence[float]) -> tuple[float, float]:
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)


def _t_cdf(t: float, df: float) -> float:
    if math.isinf(df) or df > 1e6:
        return _NORMAL.cdf(t)
    tail = t_upper_tail(abs(t), df)
    return tail if t < 0 else 1.0 - tail


def mean_regression(
    baseline: Sequence[float], current: Sequence[float], margin: float = 0.0, level: float = 0.95
) -> MeanTest:
    """H0: mean_current >= mean_baseline - margin against H1: mean_current < mean_baseline - margin.

    Welch's t on (current + margin) against the baseline (SciPy's `ttest_ind(current + margin,
    baseline, equal_var=False, alternative="less")`). With no variance in either window the
    p-value is 0 when the observed drop exceeds the margin, else 1.
    """
    if not baseline or not current:
        raise ValueError("need scores in both windows")
    if margin < 0:
        raise ValueError(f"the margin must be non-negative, got {margin}")
    mean_b, var_b = _mean_and_variance(baseline)
    mean_c, var_c = _mean_and_variance(current)
    a, b = var_b / len(baseline), var_c / len(current)
    effect = mean_c - mean_b
    if a + b <= 0:
        return MeanTest(effect, 0.0 if effect < -margin else 1.0, effect, math.inf)
    terms = (a * a / (len(baseline) - 1) if len(baseline) > 1 else 0.0) + (
        b * b / (len(current) - 1) if len(current) > 1 else 0.0
    )
    df = (a + b) ** 2 / terms
    se = math.sqrt(a + b)
    critical = _NORMAL.inv_cdf(level) if df > 1e6 else t_quantile(2 * level - 1, df)
    return MeanTest(effect, _t_cdf((effect + margin) / se, df), effect + critical * se, df)


def cusum_alarm(scores: Sequence[float], target: float, slack: float, threshold: float) -> int | None:
    """Index of the first score at which a lower CUSUM crosses `threshold`, or None.

    S_t = max(0, S_{t-1} + (target - slack) - x_t): it accumulates drops below `target` larger than
    `slack` and forgets noise; classic settings are slack = sd / 2 and threshold = 4 to 5 sd.
    """
    if slack < 0 or threshold <= 0:
        raise ValueError("need a non-negative slack and a positive threshold")
    statistic = 0.0
    for index, score in enumerate(scores):
        statistic = max(0.0, statistic + (target - slack) - score)
        if statistic > threshold:
            return index
    return None


def ewma_alarm(
    scores: Sequence[float], mean: float, sd: float, weight: float = 0.2, width: float = 3.0
) -> int | None:
    """Index of the first score at which the EWMA falls below its lower control limit, or None.

    z_t = w x_t + (1 - w) z_{t-1}, z_0 = mean; the limit uses the exact variance at step t,
    sd^2 w / (2 - w) (1 - (1 - w)^(2t)), so early points are not judged against the asymptotic one.
    """
    if sd <= 0 or not 0 < weight <= 1 or width <= 0:
        raise ValueError("need sd > 0, 0 < weight <= 1 and width > 0")
    smoothed = mean
    for index, score in enumerate(scores):
        smoothed = weight * score + (1 - weight) * smoothed
        step = index + 1
        limit = width * sd * math.sqrt(weight / (2 - weight) * (1 - (1 - weight) ** (2 * step)))
        if smoothed < mean - limit:
            return index
    return None


def breaches(decisions: Sequence[bool], needed: int) -> bool:
    """Whether the newest `needed` decisions were all breaches (act only on a run of them)."""
    if needed < 1:
        raise ValueError(f"need at least one breach, got {needed}")
    return len(decisions) >= needed and all(decisions[-needed:])
