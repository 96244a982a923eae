"""The experiment statistics against SciPy and statsmodels on the same data, to 1e-6.

`test_experiment_stats.py` pins values computed once; this runs the reference implementations
themselves on many random data sets, so a regression anywhere in the formulas shows.
"""

from __future__ import annotations

import random

import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from promptkeeper.core import experiment_stats as es

TOLERANCE = 1e-6
SEEDS = range(20)


def _close(ours: float, theirs: float) -> bool:
    return abs(ours - theirs) <= TOLERANCE * max(1.0, abs(theirs))


@pytest.mark.parametrize("seed", SEEDS)
def test_welch_matches_scipy(seed: int) -> None:
    rng = random.Random(seed)
    control = [rng.gauss(100, 20) for _ in range(rng.randint(5, 400))]
    treatment = [rng.gauss(104, 35) for _ in range(rng.randint(5, 400))]
    ours = es.welch_t_test_samples(control, treatment)
    theirs = scipy_stats.ttest_ind(treatment, control, equal_var=False)
    interval = theirs.confidence_interval(0.95)
    assert _close(ours.t, float(theirs.statistic))
    assert _close(ours.p_value, float(theirs.pvalue))
    assert _close(ours.df, float(theirs.df))
    assert _close(ours.interval.low, float(interval.low))
    assert _close(ours.interval.high, float(interval.high))


@pytest.mark.parametrize("seed", SEEDS)
def test_chi_squared_matches_scipy(seed: int) -> None:
    rng = random.Random(seed)
    k = rng.randint(2, 5)
    trials = [rng.randint(50, 5000) for _ in range(k)]
    conversions = [rng.randint(1, n - 1) for n in trials]
    ours = es.chi_squared_test(conversions, trials)
    table = [conversions, [n - c for c, n in zip(conversions, trials, strict=True)]]
    statistic, p_value, df, _ = scipy_stats.chi2_contingency(table, correction=False)
    assert ours.df == df
    assert _close(ours.statistic, float(statistic))
    assert _close(ours.p_value, float(p_value))


@pytest.mark.parametrize("seed", SEEDS)
def test_two_proportion_z_matches_statsmodels(seed: int) -> None:
    rng = random.Random(seed)
    n1, n2 = rng.randint(100, 20_000), rng.randint(100, 20_000)
    c1, c2 = rng.randint(1, n1 - 1), rng.randint(1, n2 - 1)
    ours = es.two_proportion_z_test(c1, n1, c2, n2)
    z, p_value = proportions_ztest([c2, c1], [n2, n1])
    assert _close(ours.z, float(z))
    assert _close(ours.p_value, float(p_value))


@pytest.mark.parametrize("seed", SEEDS)
def test_srm_matches_scipy_goodness_of_fit(seed: int) -> None:
    rng = random.Random(seed)
    weights = [rng.uniform(0.1, 1.0) for _ in range(rng.randint(2, 4))]
    counts = [rng.randint(100, 10_000) for _ in weights]
    ours = es.srm(counts, weights)
    total = sum(counts)
    expected = [total * w / sum(weights) for w in weights]
    theirs = scipy_stats.chisquare(counts, expected)
    assert _close(ours.statistic, float(theirs.statistic))
    assert _close(ours.p_value, float(theirs.pvalue))


@pytest.mark.parametrize("seed", SEEDS)
def test_holm_matches_statsmodels(seed: int) -> None:
    rng = random.Random(seed)
    p_values = [rng.random() ** 3 for _ in range(rng.randint(1, 8))]
    _, theirs, _, _ = multipletests(p_values, method="holm")
    assert all(_close(a, float(b)) for a, b in zip(es.holm_adjust(p_values), theirs, strict=True))


@pytest.mark.parametrize("n", [1, 2, 7, 50, 301, 2000])
def test_median_interval_is_the_exact_bootstrap(n: int) -> None:
    """For odd n the interval equals the resampled percentile bootstrap's limit; check by simulation."""
    import numpy as np

    rng = np.random.default_rng(n)
    values = np.sort(rng.lognormal(0.0, 1.0, n))
    median, interval = es.median_bootstrap_interval(values.tolist())
    assert _close(median, float(np.median(values)))
    if n < 7:
        return
    resampled = np.median(rng.choice(values, (20_000, n)), axis=1)
    low, high = np.quantile(resampled, [0.025, 0.975])
    # the simulated quantiles wobble by about one order statistic around the exact ones
    rank_low = int(np.searchsorted(values, interval.low))
    rank_high = int(np.searchsorted(values, interval.high))
    assert abs(int(np.searchsorted(values, low)) - rank_low) <= max(2, n // 100)
    assert abs(int(np.searchsorted(values, high)) - rank_high) <= max(2, n // 100)
