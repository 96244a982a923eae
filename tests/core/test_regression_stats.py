"""Regression detection statistics against SciPy, and the drift detectors' behaviour."""

from __future__ import annotations

import random

import pytest
from scipy import stats as scipy_stats

from promptkeeper.core import regression_stats as rg

TOLERANCE = 1e-9


@pytest.mark.parametrize("seed", range(20))
def test_fisher_matches_scipy(seed: int) -> None:
    rng = random.Random(seed)
    n_b, n_c = rng.randint(1, 60), rng.randint(1, 60)
    passed_b, passed_c = rng.randint(0, n_b), rng.randint(0, n_c)
    ours = rg.fisher_regression(passed_b, n_b, passed_c, n_c)
    table = [[passed_c, n_c - passed_c], [passed_b, n_b - passed_b]]
    theirs = scipy_stats.fisher_exact(table, alternative="less").pvalue
    assert abs(ours.p_value - float(theirs)) <= 1e-9 * max(1.0, float(theirs))


@pytest.mark.parametrize("seed", range(20))
def test_proportion_regression_matches_the_normal_tail(seed: int) -> None:
    rng = random.Random(seed)
    n_b, n_c = rng.randint(100, 5000), rng.randint(100, 5000)
    passed_b, passed_c = rng.randint(1, n_b - 1), rng.randint(1, n_c - 1)
    margin = rng.choice([0.0, 0.01, 0.05])
    ours = rg.proportion_regression(passed_b, n_b, passed_c, n_c, margin)
    p_b, p_c = passed_b / n_b, passed_c / n_c
    se = (p_b * (1 - p_b) / n_b + p_c * (1 - p_c) / n_c) ** 0.5
    assert abs(ours.p_value - float(scipy_stats.norm.cdf((p_c - p_b + margin) / se))) < TOLERANCE
    assert ours.effect == pytest.approx(p_c - p_b)


@pytest.mark.parametrize("seed", range(20))
def test_mean_regression_matches_welch_in_scipy(seed: int) -> None:
    rng = random.Random(seed)
    baseline = [rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]) for _ in range(rng.randint(5, 400))]
    current = [min(1.0, max(0.0, rng.gauss(0.6, 0.3))) for _ in range(rng.randint(5, 400))]
    margin = rng.choice([0.0, 0.03, 0.1])
    ours = rg.mean_regression(baseline, current, margin, level=0.99)
    shifted = [c + margin for c in current]
    theirs = scipy_stats.ttest_ind(shifted, baseline, equal_var=False, alternative="less")
    assert ours.p_value == pytest.approx(float(theirs.pvalue), rel=1e-7, abs=1e-12)
    assert ours.effect == pytest.approx(sum(current) / len(current) - sum(baseline) / len(baseline))
    interval = scipy_stats.ttest_ind(current, baseline, equal_var=False, alternative="less")
    assert ours.bound == pytest.approx(float(interval.confidence_interval(0.99).high), rel=1e-7)


def test_mean_regression_without_variance() -> None:
    assert rg.mean_regression([1.0] * 50, [0.0] * 50, 0.1).p_value == 0.0
    assert rg.mean_regression([1.0] * 50, [1.0] * 50, 0.1).p_value == 1.0
    with pytest.raises(ValueError):
        rg.mean_regression([], [1.0])


def test_margins_forgive_small_drops() -> None:
    strict = rg.proportion_regression(980, 1000, 960, 1000)
    tolerant = rg.proportion_regression(980, 1000, 960, 1000, margin=0.03)
    assert strict.p_value < 0.01 < 0.5 < tolerant.p_value
    assert rg.proportion_regression(980, 1000, 990, 1000).p_value > 0.9  # improvements never alarm


@pytest.mark.parametrize("seed", range(20))
def test_mann_whitney_matches_scipy(seed: int) -> None:
    rng = random.Random(seed)
    baseline = [round(rng.gauss(0.8, 0.1), 2) for _ in range(rng.randint(5, 300))]  # rounded: ties
    current = [round(rng.gauss(0.77, 0.12), 2) for _ in range(rng.randint(5, 300))]
    tolerance = rng.choice([0.0, 0.02])
    ours = rg.mann_whitney_regression(baseline, current, tolerance)
    theirs = scipy_stats.mannwhitneyu(
        [c + tolerance for c in current], baseline, alternative="less", method="asymptotic"
    )
    assert abs(ours.p_value - float(theirs.pvalue)) < 1e-9
    pairwise = sorted(c - b for c in current for b in baseline)
    assert ours.effect == pytest.approx(float(scipy_stats.scoreatpercentile(pairwise, 50)))


def test_hodges_lehmann_shift_of_a_pure_shift() -> None:
    baseline = [float(i) for i in range(50)]
    assert rg.hodges_lehmann_shift(baseline, [x - 3.0 for x in baseline]) == -3.0


def test_cusum_and_ewma_catch_a_drop_and_stay_quiet_on_noise() -> None:
    rng = random.Random(1)
    steady = [rng.gauss(0.9, 0.05) for _ in range(500)]
    dropped = steady[:200] + [rng.gauss(0.8, 0.05) for _ in range(100)]
    assert rg.cusum_alarm(steady, target=0.9, slack=0.025, threshold=0.25) is None
    alarm = rg.cusum_alarm(dropped, target=0.9, slack=0.025, threshold=0.25)
    assert alarm is not None and 200 <= alarm < 220
    assert rg.ewma_alarm(steady, mean=0.9, sd=0.05) is None
    ewma = rg.ewma_alarm(dropped, mean=0.9, sd=0.05)
    assert ewma is not None and 200 <= ewma < 230


def test_breaches_need_a_run() -> None:
    assert rg.breaches([True, False, True, True], 2)
    assert not rg.breaches([True, True, False], 2)
    assert not rg.breaches([True], 2)
    with pytest.raises(ValueError):
        rg.breaches([True], 0)


@pytest.mark.parametrize(
    "call",
    [
        lambda: rg.proportion_regression(5, 4, 1, 2),
        lambda: rg.proportion_regression(1, 2, 1, 2, margin=-0.1),
        lambda: rg.fisher_regression(1, 0, 1, 2),
        lambda: rg.mann_whitney_regression([], [1.0]),
        lambda: rg.cusum_alarm([1.0], 1.0, -1, 1),
        lambda: rg.ewma_alarm([1.0], 1.0, 0.0),
    ],
)
def test_impossible_input_is_refused(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]
