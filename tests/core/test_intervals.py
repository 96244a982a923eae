"""Statistics against published values.

Wilson bounds are statsmodels' `proportion_confint(k, n, method="wilson")`; t quantiles and intervals are
`scipy.stats.t.ppf` / `scipy.stats.t.interval`, computed once and hard-coded here.
"""

from __future__ import annotations

import pytest

from promptkeeper.core.eval_stats import paired_difference, summarize
from promptkeeper.core.intervals import (
    Interval,
    mean_interval,
    t_quantile,
    variance,
    wilson_interval,
    z_quantile,
)

TOL = 1e-4


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        (0, 10, 0.0, 0.277533),
        (5, 10, 0.236593, 0.763407),
        (10, 10, 0.722467, 1.0),
        (1, 3, 0.061492, 0.792340),
        (37, 50, 0.604468, 0.841285),
        (0, 1, 0.0, 0.793451),
    ],
)
def test_wilson_interval_matches_statsmodels(successes: int, n: int, low: float, high: float) -> None:
    interval = wilson_interval(successes, n)
    assert interval.low == pytest.approx(low, abs=TOL)
    assert interval.high == pytest.approx(high, abs=TOL)
    assert interval.level == 0.95


def test_wilson_bounds_are_exact_at_the_extremes() -> None:
    assert wilson_interval(0, 10).low == 0.0
    assert wilson_interval(10, 10).high == 1.0


def test_wilson_with_no_observations_is_the_whole_range() -> None:
    assert wilson_interval(0, 0) == Interval(0.0, 1.0, 0.95)


@pytest.mark.parametrize(("successes", "n"), [(-1, 10), (11, 10), (0, -1)])
def test_wilson_rejects_impossible_counts(successes: int, n: int) -> None:
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(successes, n)


@pytest.mark.parametrize(("level", "expected"), [(0.90, 1.644854), (0.95, 1.959964), (0.99, 2.575829)])
def test_z_quantile(level: float, expected: float) -> None:
    assert z_quantile(level) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("level", "df", "expected"),
    [
        (0.95, 1, 12.706204736174694),
        (0.95, 2, 4.302652729749462),
        (0.95, 3, 3.1824463052837078),
        (0.95, 4, 2.7764451051977934),
        (0.95, 9, 2.262157162798205),
        (0.95, 29, 2.045229642132703),
        (0.95, 100, 1.9839715185235518),
        (0.95, 100_000, 1.9599877075346095),
        (0.90, 1, 6.313751514675037),
        (0.90, 5, 2.0150483733330233),
        (0.90, 30, 1.697260886593957),
        (0.99, 1, 63.656741162871526),
        (0.99, 2, 9.924843200918287),
        (0.99, 10, 3.16927267261695),
        (0.99, 1000, 2.580754698065951),
    ],
)
def test_t_quantile_matches_scipy(level: float, df: int, expected: float) -> None:
    assert t_quantile(level, df) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("values", "low", "high"),
    [
        ([0.2, 0.4, 0.9], -0.395669, 1.395669),
        ([1.0, 0.0, 1.0, 1.0, 0.0], -0.080087, 1.280087),
        ([0.5, 0.6], -0.085310, 1.185310),
        ([0.7, 0.7, 0.7], 0.7, 0.7),
    ],
)
def test_mean_interval_matches_scipy(values: list[float], low: float, high: float) -> None:
    interval = mean_interval(values)
    assert interval.low == pytest.approx(low, abs=TOL)
    assert interval.high == pytest.approx(high, abs=TOL)


def test_mean_interval_of_one_value_is_degenerate() -> None:
    assert mean_interval([0.4]) == Interval(0.4, 0.4, 0.95)


def test_mean_interval_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        mean_interval([])


@pytest.mark.parametrize("level", [0.0, 1.0, 95.0, -0.5])
def test_levels_outside_zero_one_are_rejected(level: float) -> None:
    with pytest.raises(ValueError, match="level"):
        mean_interval([0.1, 0.2], level)
    with pytest.raises(ValueError, match="level"):
        wilson_interval(1, 2, level)


@pytest.mark.parametrize(
    ("values", "expected"),
    [([], 0.0), ([0.3], 0.0), ([0.2, 0.4, 0.9], 0.13), ([1.0, 0.0, 1.0, 1.0, 0.0], 0.3), ([0.5, 0.5], 0.0)],
)
def test_variance_is_the_sample_variance(values: list[float], expected: float) -> None:
    assert variance(values) == pytest.approx(expected, abs=1e-12)


def test_summarize_groups_by_scorer_in_order_of_appearance() -> None:
    items = [
        ("exact_match", 1.0, True, 1.0),
        ("llm_judge", 0.75, True, 0.75),
        ("exact_match", 0.0, False, 1.0),
        ("exact_match", 1.0, True, 1.0),
        ("llm_judge", 0.5, False, 0.75),
    ]
    summaries = summarize(items)
    assert list(summaries) == ["exact_match", "llm_judge"]
    exact = summaries["exact_match"]
    assert (exact.scorer, exact.n, exact.threshold) == ("exact_match", 3, 1.0)
    assert exact.mean == pytest.approx(2 / 3)
    assert exact.pass_rate == pytest.approx(2 / 3)
    assert exact.pass_ci == wilson_interval(2, 3)
    assert exact.mean_ci == mean_interval([1.0, 0.0, 1.0])
    judge = summaries["llm_judge"]
    assert (judge.n, judge.mean, judge.pass_rate) == (2, 0.625, 0.5)


def test_summarize_of_nothing_is_empty() -> None:
    assert summarize([]) == {}


def test_paired_difference_matches_scipy() -> None:
    before, after = [0.2, 0.5, 0.5, 0.9], [0.4, 0.5, 0.8, 1.0]
    mean, interval = paired_difference(before, after)
    assert mean == pytest.approx(0.15)
    assert interval.low == pytest.approx(-0.055426, abs=TOL)
    assert interval.high == pytest.approx(0.355426, abs=TOL)


def test_paired_difference_needs_the_same_cases() -> None:
    with pytest.raises(ValueError, match="same cases"):
        paired_difference([0.1, 0.2], [0.3])
