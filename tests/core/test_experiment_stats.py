"""Experiment statistics against published formulas and SciPy, computed once and hard-coded here.

Reference sources:
- sample sizes and power: R's `power.prop.test` equation (strict = FALSE), solved with `scipy.optimize.brentq`
  and `scipy.stats.norm`; means: 2 sd^2 (z_alpha + z_power)^2 / mde^2 with `scipy.stats.norm`.
- chi-squared: `scipy.stats.chi2.sf`, `scipy.stats.chi2_contingency(table, correction=False)`,
  `scipy.stats.chisquare` (SRM).
- Welch: `scipy.stats.ttest_ind_from_stats(..., equal_var=False)` / `ttest_ind(...).confidence_interval()`.
- z-test: pooled z with `scipy.stats.norm.sf`; intervals and delta-method lift with `scipy.stats.norm.ppf`.
- mSPRT: the closed forms of Johari et al. (2017), evaluated independently in plain floats.
- Holm: R's `p.adjust(p, "holm")`.
SciPy 1.17.1 was used; it is not imported here, so the tests run without it.
"""

from __future__ import annotations

import math
import random

import pytest

from promptkeeper.core.experiment_stats import (
    SampleSummary,
    chi2_sf,
    chi_squared_test,
    holm_adjust,
    power_proportions,
    raw_sample_size_means,
    raw_sample_size_proportions,
    sample_size_means,
    sample_size_proportions,
    srm,
    two_proportion_z_test,
    welch_t_test,
    welch_t_test_samples,
)
from promptkeeper.core.intervals import Interval
from promptkeeper.core.sequential import always_valid_interval, always_valid_p_value, sequential_test

# ---------------------------------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("baseline", "treatment", "alpha", "power", "two_sided", "raw", "n"),
    [
        (0.10, 0.12, 0.05, 0.8, True, 3840.8474824362766, 3841),
        (0.20, 0.25, 0.05, 0.8, True, 1093.7390457661686, 1094),
        (0.05, 0.06, 0.05, 0.9, True, 10920.389036645418, 10921),
        (0.50, 0.55, 0.01, 0.8, True, 2328.5153711691237, 2329),
        (0.10, 0.12, 0.05, 0.8, False, 3025.315253208863, 3026),
        (0.30, 0.25, 0.05, 0.8, True, 1250.7167334356147, 1251),
        (0.02, 0.022, 0.05, 0.8, True, 80681.38028240833, 80682),
    ],
)
def test_sample_size_proportions_matches_power_prop_test(
    baseline: float, treatment: float, alpha: float, power: float, two_sided: bool, raw: float, n: int
) -> None:
    mde = treatment - baseline
    assert raw_sample_size_proportions(baseline, mde, alpha, power, two_sided) == pytest.approx(raw, rel=1e-9)
    assert sample_size_proportions(baseline, mde, alpha, power, two_sided) == n
    assert power_proportions(raw, baseline, mde, alpha, two_sided) == pytest.approx(power, abs=1e-9)


def test_relative_mde_is_a_lift_on_the_baseline() -> None:
    assert sample_size_proportions(0.10, 0.20, relative=True) == sample_size_proportions(0.10, 0.02)


@pytest.mark.parametrize(
    ("baseline", "mde", "computed", "minimum", "expected"),
    [(0.2, 0.05, 1094, 500, 1094), (0.5, 0.2, 93, 500, 500), (0.5, 0.2, 93, 0, 93), (0.5, 0.2, 93, 100, 100)],
)
def test_sample_size_floor(baseline: float, mde: float, computed: int, minimum: int, expected: int) -> None:
    assert math.ceil(raw_sample_size_proportions(baseline, mde)) == computed
    assert sample_size_proportions(baseline, mde, minimum=minimum) == expected


@pytest.mark.parametrize(
    ("sd", "mde", "alpha", "power", "two_sided", "raw", "n"),
    [
        (1.0, 0.5, 0.05, 0.8, True, 62.79103787479273, 500),
        (1.0, 0.2, 0.05, 0.8, True, 392.44398671745455, 500),
        (10.0, 1.0, 0.05, 0.9, True, 2101.484612288125, 2102),
        (2.0, 0.5, 0.05, 0.8, False, 197.84183142463266, 500),
    ],
)
def test_sample_size_means(
    sd: float, mde: float, alpha: float, power: float, two_sided: bool, raw: float, n: int
) -> None:
    assert raw_sample_size_means(sd, mde, alpha, power, two_sided) == pytest.approx(raw, rel=1e-9)
    assert sample_size_means(sd, mde, alpha, power, two_sided) == n
    assert sample_size_means(sd, mde, alpha, power, two_sided, minimum=0) == math.ceil(raw)


@pytest.mark.parametrize(
    ("n", "baseline", "treatment", "power"),
    [
        (1000, 0.10, 0.12, 0.2977321312482273),
        (3841, 0.10, 0.12, 0.8000155778094182),
        (500, 0.20, 0.25, 0.47333948102242285),
        (10000, 0.05, 0.055, 0.35391152751628197),
    ],
)
def test_power_proportions(n: int, baseline: float, treatment: float, power: float) -> None:
    assert power_proportions(n, baseline, treatment - baseline) == pytest.approx(power, abs=1e-12)


@pytest.mark.parametrize(
    ("baseline", "mde", "alpha", "power"),
    [
        (0.0, 0.01, 0.05, 0.8),
        (1.0, 0.01, 0.05, 0.8),
        (0.5, 0.0, 0.05, 0.8),
        (0.9, 0.2, 0.05, 0.8),
        (0.1, 0.02, 0.0, 0.8),
        (0.1, 0.02, 0.05, 1.0),
    ],
)
def test_sample_size_rejects_impossible_plans(
    baseline: float, mde: float, alpha: float, power: float
) -> None:
    with pytest.raises(ValueError):
        raw_sample_size_proportions(baseline, mde, alpha, power)


# ---------------------------------------------------------------------------------------------------
# Chi-squared
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statistic", "df", "p_value"),
    [
        (3.841458820694124, 1, 0.04999999999999989),
        (0.5, 1, 0.47950012218695337),
        (10.0, 3, 0.01856613546304325),
        (100.0, 5, 5.285148360943219e-20),
        (0.001, 2, 0.9995001249791693),
        (25.0, 10, 0.005345505487134069),
        (50.0, 1, 1.537459794428033e-12),
        (200.0, 20, 1.1253473960842808e-31),
        (0.1, 30, 1.0),
        (4.0, 4.5, 0.4789444727594402),
        (0.0, 3, 1.0),
    ],
)
def test_chi2_sf_matches_scipy(statistic: float, df: float, p_value: float) -> None:
    assert chi2_sf(statistic, df) == pytest.approx(p_value, rel=1e-10, abs=1e-15)


@pytest.mark.parametrize(
    ("conversions", "trials", "statistic", "df", "p_value"),
    [
        ([100, 120], [1000, 1000], 2.0429009193054135, 1, 0.15291778186394195),
        ([50, 65, 80], [1000, 1000, 1000], 7.404360345536816, 2, 0.024669683625868327),
        ([10, 20], [200, 150], 7.59548611111111, 1, 0.005851461614881905),
        ([300, 310, 290, 360], [5000, 5000, 5000, 5000], 9.82534600464163, 3, 0.02011061845897991),
    ],
)
def test_chi_squared_test_matches_scipy(
    conversions: list[int], trials: list[int], statistic: float, df: int, p_value: float
) -> None:
    result = chi_squared_test(conversions, trials)
    assert result.statistic == pytest.approx(statistic, rel=1e-10)
    assert result.df == df
    assert result.p_value == pytest.approx(p_value, rel=1e-10)


@pytest.mark.parametrize(
    ("conversions", "trials"), [([0, 0], [100, 100]), ([5, 0], [100, 0]), ([1], [10]), ([5, 11], [10, 10])]
)
def test_chi_squared_test_rejects_degenerate_tables(conversions: list[int], trials: list[int]) -> None:
    with pytest.raises(ValueError):
        chi_squared_test(conversions, trials)


def test_two_by_two_chi_squared_is_the_squared_z_test() -> None:
    z = two_proportion_z_test(100, 1000, 120, 1000)
    chi = chi_squared_test([100, 120], [1000, 1000])
    assert chi.statistic == pytest.approx(z.z**2, rel=1e-12)
    assert chi.p_value == pytest.approx(z.p_value, rel=1e-10)


@pytest.mark.parametrize(
    ("observed", "weights", "statistic", "p_value", "mismatch"),
    [
        ([5000, 5000], [1.0, 1.0], 0.0, 1.0, False),
        ([5000, 5200], [1.0, 1.0], 3.9215686274509802, 0.0476703806561615, False),
        ([10000, 10300], [0.5, 0.5], 4.433497536945813, 0.035240223824274594, False),
        ([3300, 3300, 3400], [1.0, 1.0, 1.0], 2.0, 0.36787944117144245, False),
        ([900, 2100], [0.3, 0.7], 0.0, 1.0, False),
        ([5000, 5300], [1.0, 1.0], 8.737864077669903, 0.003116693839866867, False),
        ([10000, 10500], [1.0, 1.0], 12.195121951219512, 0.00047914643458730067, True),
        ([5000, 5500], [1.0, 1.0], 23.80952380952381, 1.0635492679527356e-06, True),
        ([0, 0], [1.0, 1.0], 0.0, 1.0, False),
    ],
)
def test_srm_matches_scipy_chisquare(
    observed: list[int], weights: list[float], statistic: float, p_value: float, mismatch: bool
) -> None:
    chi2, p, flagged = srm(observed, weights)
    assert chi2 == pytest.approx(statistic, rel=1e-10, abs=1e-12)
    assert p == pytest.approx(p_value, rel=1e-10)
    assert flagged is mismatch


# ---------------------------------------------------------------------------------------------------
# Welch and z-tests
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("control", "treatment", "t", "df", "p_value", "low", "high"),
    [
        (
            (100, 10.0, 4.0),
            (120, 10.5, 9.0),
            1.4744195615489712,
            208.49583486668226,
            0.1418769921491539,
            -0.1685367160033947,
            1.1685367160033948,
        ),
        (
            (20, 0.5, 0.04),
            (25, 0.55, 0.09),
            0.6681531047810615,
            41.78401122019635,
            0.5077101116498255,
            -0.10104253726974025,
            0.20104253726974033,
        ),
        (
            (5, 1.0, 1.0),
            (7, 3.0, 4.0),
            2.2771001702132443,
            9.237592397043294,
            0.048075262602277846,
            0.02088725420155102,
            3.979112745798449,
        ),
        (
            (1000, 0.3, 0.21),
            (1000, 0.31, 0.2139),
            0.4857002105243738,
            1997.8308931867875,
            0.627232996112751,
            -0.03037783128280669,
            0.050377831282806707,
        ),
    ],
)
def test_welch_t_test_matches_scipy(
    control: tuple[int, float, float],
    treatment: tuple[int, float, float],
    t: float,
    df: float,
    p_value: float,
    low: float,
    high: float,
) -> None:
    result = welch_t_test(SampleSummary(*control), SampleSummary(*treatment))
    assert result.difference == pytest.approx(treatment[1] - control[1])
    assert result.t == pytest.approx(t, rel=1e-10)
    assert result.df == pytest.approx(df, rel=1e-10)
    assert result.p_value == pytest.approx(p_value, rel=1e-9)
    assert result.interval.low == pytest.approx(low, rel=1e-9)
    assert result.interval.high == pytest.approx(high, rel=1e-9)


def test_welch_t_test_from_samples_matches_scipy() -> None:
    result = welch_t_test_samples([1.2, 3.4, 2.2, 5.1, 4.0, 3.3], [4.5, 6.1, 5.5, 7.0, 3.9, 6.6, 5.8])
    assert result.t == pytest.approx(3.4868585550733093, rel=1e-10)
    assert result.df == pytest.approx(9.672125843638334, rel=1e-10)
    assert result.p_value == pytest.approx(0.006153511052344414, rel=1e-9)
    assert result.interval.low == pytest.approx(0.8695285948512161, rel=1e-9)
    assert result.interval.high == pytest.approx(3.9876142622916406, rel=1e-9)


@pytest.mark.parametrize(
    ("control", "treatment"), [((1, 1.0, 1.0), (10, 1.0, 1.0)), ((10, 1.0, 0.0), (10, 2.0, 0.0))]
)
def test_welch_t_test_rejects_undefined_cases(
    control: tuple[int, float, float], treatment: tuple[int, float, float]
) -> None:
    with pytest.raises(ValueError):
        welch_t_test(SampleSummary(*control), SampleSummary(*treatment))


@pytest.mark.parametrize(
    ("counts", "z", "p_value", "low", "high", "lift", "lift_low", "lift_high"),
    [
        (
            (100, 1000, 120, 1000),
            1.4293008498232314,
            0.1529177818639462,
            -0.0074114819980199455,
            0.04741148199801992,
            0.2,
            -0.10058461614448239,
            0.5005846161444822,
        ),
        (
            (500, 10000, 560, 10000),
            1.8937529756356748,
            0.05825780603351623,
            -0.00020922034622822445,
            0.012209220346228221,
            0.12,
            -0.011447991459651224,
            0.251447991459651,
        ),
        (
            (30, 200, 45, 210),
            1.6829763461389204,
            0.09237967055994593,
            -0.010070299645822678,
            0.13864172821725124,
            0.4285714285714286,
            -0.17060219243360064,
            1.027745049576458,
        ),
        (
            (10, 5000, 25, 5000),
            2.5399115053805525,
            0.011088052052367245,
            0.0006857480932682051,
            0.0053142519067317946,
            1.5,
            -0.3307574446265742,
            3.330757444626574,
        ),
    ],
)
def test_two_proportion_z_test(
    counts: tuple[int, int, int, int],
    z: float,
    p_value: float,
    low: float,
    high: float,
    lift: float,
    lift_low: float,
    lift_high: float,
) -> None:
    result = two_proportion_z_test(*counts)
    assert result.z == pytest.approx(z, rel=1e-12)
    assert result.p_value == pytest.approx(p_value, rel=1e-10)
    assert result.interval.low == pytest.approx(low, rel=1e-9)
    assert result.interval.high == pytest.approx(high, rel=1e-9)
    assert result.lift == pytest.approx(lift, rel=1e-12)
    assert result.lift_interval is not None
    assert result.lift_interval.low == pytest.approx(lift_low, rel=1e-9)
    assert result.lift_interval.high == pytest.approx(lift_high, rel=1e-9)


def test_two_proportion_z_test_without_control_conversions_has_no_lift() -> None:
    result = two_proportion_z_test(0, 100, 5, 100)
    assert result.lift is None and result.lift_interval is None
    assert two_proportion_z_test(0, 100, 0, 100).p_value == 1.0


# ---------------------------------------------------------------------------------------------------
# Sequential testing
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("difference", "variance", "tau2", "p_value", "low", "high"),
    [
        (0.5, 0.04, 0.01, 0.5984404699510534, -0.6148639467147721, 1.614863946714772),
        (0.0, 0.01, 0.01, 1.0, -0.36563948713638483, 0.36563948713638483),
        (0.02, 1e-4, 1e-4, 0.5202600950228888, -0.016563948713638487, 0.056563948713638484),
        (0.1, 0.01, 0.0025, 1.0, -0.45743197335738606, 0.657431973357386),
        (0.2, 0.001, 0.01, 4.211463443328248e-08, None, None),
    ],
)
def test_msprt_closed_forms(
    difference: float, variance: float, tau2: float, p_value: float, low: float | None, high: float | None
) -> None:
    assert always_valid_p_value(difference, variance, tau2=tau2) == pytest.approx(p_value, rel=1e-10)
    interval = always_valid_interval(difference, variance, tau2=tau2)
    if low is not None and high is not None:
        assert (interval.low, interval.high) == pytest.approx((low, high), rel=1e-10)
    # The interval is exactly the set of effects the test does not reject at alpha.
    for bound in (interval.low, interval.high):
        assert always_valid_p_value(difference - bound, variance, tau2=tau2) == pytest.approx(0.05, rel=1e-9)


def test_monitoring_keeps_the_running_minimum_and_intersection() -> None:
    first = sequential_test(SampleSummary.of_conversions(100, 1000), SampleSummary.of_conversions(140, 1000))
    second = sequential_test(
        SampleSummary.of_conversions(200, 2000), SampleSummary.of_conversions(205, 2000), previous=first
    )
    assert second.p_value == first.p_value
    assert second.interval.low >= first.interval.low and second.interval.high <= first.interval.high
    previous = Interval(-0.01, 0.01, 0.95)
    assert always_valid_interval(0.0, 1e-4, tau2=1e-4, previous=previous) == previous


def _false_positive_rates(
    seed: int, experiments: int = 200, peeks: int = 50, batch: int = 20
) -> tuple[float, float]:
    """A/A experiments peeked at `peeks` times: share stopped by the mSPRT and by naive z-tests.

    The naive test is the normal approximation of Welch's test (n >= 20 per arm), inlined because
    computing a t interval at 10,000 peeks would take seconds.
    """
    rng = random.Random(seed)
    sequential_stops = naive_stops = 0
    for _ in range(experiments):
        sums = [0.0, 0.0]
        squares = [0.0, 0.0]
        previous = None
        sequential_stopped = naive_stopped = False
        for peek in range(1, peeks + 1):
            for arm in (0, 1):
                for _ in range(batch):
                    x = rng.gauss(0.0, 1.0)
                    sums[arm] += x
                    squares[arm] += x * x
            n = peek * batch
            control, treatment = (
                SampleSummary(n, s / n, (q - s * s / n) / (n - 1)) for s, q in zip(sums, squares, strict=True)
            )
            previous = sequential_test(control, treatment, previous=previous)
            sequential_stopped = sequential_stopped or previous.p_value < 0.05
            z = previous.difference / math.sqrt(control.variance / n + treatment.variance / n)
            naive_stopped = naive_stopped or math.erfc(abs(z) / math.sqrt(2.0)) < 0.05
        sequential_stops += sequential_stopped
        naive_stops += naive_stopped
    return sequential_stops / experiments, naive_stops / experiments


def test_msprt_controls_false_positives_under_continuous_monitoring() -> None:
    sequential, naive = _false_positive_rates(seed=20261124)
    assert sequential <= 0.05 + 0.02
    assert naive >= 0.2  # the peeking problem: repeated fixed-horizon tests stop far more than 5%


@pytest.mark.parametrize(("successes", "trials", "mean", "variance"), [(1, 4, 0.25, 0.25), (0, 10, 0.0, 0.0)])
def test_summary_of_conversions(successes: int, trials: int, mean: float, variance: float) -> None:
    assert SampleSummary.of_conversions(successes, trials) == pytest.approx((trials, mean, variance))
    outcomes = [1.0] * successes + [0.0] * (trials - successes)
    assert SampleSummary.of(outcomes) == pytest.approx(SampleSummary.of_conversions(successes, trials))


def test_msprt_detects_a_real_effect() -> None:
    result = sequential_test(
        SampleSummary.of_conversions(1000, 10000), SampleSummary.of_conversions(1200, 10000)
    )
    assert result.p_value < 0.05
    assert result.interval.low > 0


# ---------------------------------------------------------------------------------------------------
# Multiple comparisons
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p_values", "adjusted"),
    [
        ([0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02]),
        ([0.5], [0.5]),
        ([0.01, 0.02, 0.03], [0.03, 0.04, 0.04]),
        ([0.2, 0.9, 0.001], [0.4, 0.9, 0.003]),
        ([0.6, 0.7], [1.0, 1.0]),
        ([], []),
    ],
)
def test_holm_adjust_matches_p_adjust(p_values: list[float], adjusted: list[float]) -> None:
    assert holm_adjust(p_values) == pytest.approx(adjusted)
