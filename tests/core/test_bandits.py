"""Bandit allocations against exact posterior probabilities and by simulation.

The exact probability that each Beta(1 + s, 1 + f) arm is best was computed once with
`scipy.integrate.quad` of pdf_i(x) * prod_{j != i} cdf_j(x) (SciPy 1.17.1); for two Gaussian arms it is
`scipy.stats.norm.cdf` of the standardized difference. The Monte Carlo estimates use 10,000 draws, so
their standard error is at most 0.005: the tolerance 0.02 is four of them, and the seeded RNG makes
every result fixed anyway.
"""

from __future__ import annotations

import random

import pytest

from promptkeeper.core.bandits import apply_floor, gaussian_thompson_weights, thompson_weights, ucb1_weights

MONTE_CARLO_TOL = 0.02


@pytest.mark.parametrize(
    ("successes", "failures", "exact"),
    [
        ([10, 15], [90, 85], [0.1467162100660338, 0.8532837899339664]),
        ([5, 8, 12], [95, 92, 88], [0.02658933509691602, 0.17117696636399338, 0.8022336985390914]),
        ([0, 0], [0, 0], [0.5, 0.5]),
        ([50, 60], [950, 940], [0.16438873512454036, 0.8356112648754598]),
    ],
)
def test_thompson_weights_estimate_the_probability_of_being_best(
    successes: list[int], failures: list[int], exact: list[float]
) -> None:
    weights = thompson_weights(successes, failures, rng=random.Random(7))
    assert weights == pytest.approx(exact, abs=MONTE_CARLO_TOL)
    assert sum(weights) == pytest.approx(1.0)


def test_thompson_weights_are_deterministic_for_a_seeded_rng() -> None:
    first = thompson_weights([3, 4, 5], [7, 6, 5], draws=500, rng=random.Random(42))
    second = thompson_weights([3, 4, 5], [7, 6, 5], draws=500, rng=random.Random(42))
    assert first == second


@pytest.mark.parametrize(
    ("weights", "floor", "expected"),
    [
        ([0.0, 1.0], 0.1, [0.1, 0.9]),
        ([0.0, 0.0, 1.0], 0.1, [0.1, 0.1, 0.8]),
        ([0.2, 0.8], 0.0, [0.2, 0.8]),
        ([0.0, 1.0], 0.5, [0.5, 0.5]),
        ([0.3, 0.3, 0.4], 0.05, [0.3, 0.3, 0.4]),
        ([0.02, 0.49, 0.49], 0.1, [0.1, 0.45, 0.45]),
        ([0.0, 0.3, 0.7], 0.25, [0.25, 0.25, 0.5]),
        ([0.0, 0.2, 0.8], 1 / 3, [1 / 3, 1 / 3, 1 / 3]),
    ],
)
def test_apply_floor(weights: list[float], floor: float, expected: list[float]) -> None:
    floored = apply_floor(weights, floor)
    assert floored == pytest.approx(expected)
    assert min(floored) >= floor - 1e-12
    assert sum(floored) == pytest.approx(1.0)


def test_thompson_floor_keeps_the_losing_arm_observed() -> None:
    weights = thompson_weights([0, 500], [1000, 500], draws=1000, rng=random.Random(1), floor=0.05)
    assert weights == pytest.approx([0.05, 0.95])


@pytest.mark.parametrize(
    "arguments",
    [([1, 2], [3]), ([], []), ([-1, 2], [3, 4])],
)
def test_thompson_weights_reject_bad_counts(arguments: tuple[list[int], list[int]]) -> None:
    with pytest.raises(ValueError):
        thompson_weights(*arguments, rng=random.Random(0))


def test_floor_above_an_even_split_is_rejected() -> None:
    with pytest.raises(ValueError):
        thompson_weights([1, 2, 3], [1, 2, 3], rng=random.Random(0), floor=0.4)


def test_thompson_sends_most_traffic_to_the_better_arm() -> None:
    """Two prompt versions converting at 5% and 10%, 40 rounds of 200 users each."""
    rng = random.Random(2026)
    rates = [0.05, 0.10]
    successes, failures = [0, 0], [0, 0]
    served = [0, 0]
    weights = [0.5, 0.5]
    for _ in range(40):
        weights = thompson_weights(successes, failures, draws=500, rng=rng)
        for _ in range(200):
            arm = 0 if rng.random() < weights[0] else 1
            served[arm] += 1
            if rng.random() < rates[arm]:
                successes[arm] += 1
            else:
                failures[arm] += 1
    assert weights[1] > 0.9
    assert served[1] / sum(served) > 0.7


@pytest.mark.parametrize(
    ("successes", "trials", "floor", "expected"),
    [
        ([10, 20], [100, 100], 0.0, [0.0, 1.0]),
        ([10, 20], [100, 100], 0.1, [0.1, 0.9]),
        ([10, 20, 0], [100, 100, 0], 0.1, [0.1, 0.1, 0.8]),
        ([0, 0], [0, 0], 0.0, [0.5, 0.5]),
        ([10, 10], [100, 100], 0.0, [0.5, 0.5]),
        # Exploration favours the less-tried arm: 0.1 + sqrt(2 ln 1010 / 10) > 0.12 + sqrt(2 ln 1010 / 1000).
        ([1, 120], [10, 1000], 0.0, [1.0, 0.0]),
        ([0, 0], [0, 0], 0.2, [0.5, 0.5]),
    ],
)
def test_ucb1_weights(successes: list[int], trials: list[int], floor: float, expected: list[float]) -> None:
    assert ucb1_weights(successes, trials, floor=floor) == pytest.approx(expected)


def test_ucb1_without_exploration_is_greedy() -> None:
    assert ucb1_weights([1, 120], [10, 1000], exploration=0.0) == pytest.approx([0.0, 1.0])


def test_ucb1_rejects_more_successes_than_trials() -> None:
    with pytest.raises(ValueError):
        ucb1_weights([5], [4])


@pytest.mark.parametrize(
    ("means", "variances", "counts", "exact"),
    [
        ([0.5, 0.55], [0.04, 0.05], [40, 50], [1 - 0.8682237613585138, 0.8682237613585138]),
        ([0.5, 0.5], [0.04, 0.04], [40, 40], [0.5, 0.5]),
        ([0.5, 0.9], [0.04, 0.04], [0, 40], [1.0, 0.0]),
    ],
)
def test_gaussian_thompson_weights(
    means: list[float], variances: list[float], counts: list[int], exact: list[float]
) -> None:
    weights = gaussian_thompson_weights(means, variances, counts, rng=random.Random(3))
    assert weights == pytest.approx(exact, abs=MONTE_CARLO_TOL)
