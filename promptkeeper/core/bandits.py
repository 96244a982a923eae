"""Multi-armed bandit traffic allocation over prompt versions.

Pure: the random source is a `random.Random` the caller passes in, so a seeded allocation is
reproducible (the service seeds it per experiment and round, tests seed it with a constant). Every
function returns one traffic weight per arm, summing to 1, in the order of the input arms.

Floors: an arm that looks bad early may only be unlucky; a minimum share of traffic per arm keeps
data flowing to it so the allocation can recover. Arms below the floor are raised to it and the rest
of the traffic is renormalised over the other arms in proportion to their weights (repeated if that
pushes another arm below the floor), so allocations already above the floor keep their ratios.

Errors: `ValueError` for impossible input (mismatched lengths, negative counts, a floor above 1 / k).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

__all__ = ["apply_floor", "gaussian_thompson_weights", "thompson_weights", "ucb1_weights"]


def apply_floor(weights: Sequence[float], floor: float) -> list[float]:
    """Give every arm at least `floor` of the traffic, renormalising the others (see above)."""
    k = len(weights)
    if not 0.0 <= floor <= 1.0 / k:
        raise ValueError(f"the floor must lie in [0, 1 / {k}], got {floor}")
    total = math.fsum(weights)
    shares = [w / total for w in weights]
    floored: set[int] = set()
    while True:
        free = [i for i in range(k) if i not in floored]
        if not free:
            return [floor] * k
        free_mass = 1.0 - len(floored) * floor
        free_total = math.fsum(shares[i] for i in free)
        result = [floor] * k
        for i in free:
            result[i] = free_mass * (shares[i] / free_total if free_total > 0 else 1.0 / len(free))
        below = {i for i in free if result[i] < floor}
        if not below:
            return result
        floored |= below


def _best_arm_shares(wins: list[int], draws: int, floor: float) -> list[float]:
    return apply_floor([count / draws for count in wins], floor)


def _unobserved_first(counts: Sequence[int], floor: float) -> list[float] | None:
    """Arms without any data share the traffic evenly: nothing is known about them yet."""
    unobserved = [1.0 if n == 0 else 0.0 for n in counts]
    return apply_floor(unobserved, floor) if any(unobserved) else None


def thompson_weights(
    successes: Sequence[int],
    failures: Sequence[int],
    *,
    draws: int = 10_000,
    rng: random.Random,
    floor: float = 0.0,
) -> list[float]:
    """Thompson sampling for conversions: each arm's probability of being the best, as its weight.

    Posterior Beta(1 + s, 1 + f) per arm (uniform prior), probability of being best estimated from
    `draws` joint posterior draws. Allocating traffic in proportion to that probability is Thompson
    sampling applied to a batch of users rather than one at a time.
    """
    if len(successes) != len(failures) or not successes:
        raise ValueError("need successes and failures for the same, non-empty list of arms")
    if any(n < 0 for n in (*successes, *failures)) or draws < 1:
        raise ValueError("counts must be non-negative and draws positive")
    wins = [0] * len(successes)
    arms = list(zip(successes, failures, strict=True))
    for _ in range(draws):
        samples = [rng.betavariate(1 + s, 1 + f) for s, f in arms]
        wins[samples.index(max(samples))] += 1
    return _best_arm_shares(wins, draws, floor)


def gaussian_thompson_weights(
    means: Sequence[float],
    variances: Sequence[float],
    counts: Sequence[int],
    *,
    draws: int = 10_000,
    rng: random.Random,
    floor: float = 0.0,
) -> list[float]:
    """Thompson sampling for continuous rewards (a judge score, a rating), higher being better.

    Posterior of each arm's mean ~ N(mean, variance / count): the large-sample posterior under a flat
    prior, with the sample variance plugged in. Arms without observations share the traffic evenly
    until each has some, as there is no posterior to draw from.
    """
    if not len(means) == len(variances) == len(counts) or not means:
        raise ValueError("need means, variances and counts for the same, non-empty list of arms")
    if any(v < 0 for v in variances) or any(n < 0 for n in counts) or draws < 1:
        raise ValueError("variances and counts must be non-negative and draws positive")
    first = _unobserved_first(counts, floor)
    if first is not None:
        return first
    scales = [math.sqrt(v / n) for v, n in zip(variances, counts, strict=True)]
    wins = [0] * len(means)
    for _ in range(draws):
        samples = [rng.gauss(m, s) for m, s in zip(means, scales, strict=True)]
        wins[samples.index(max(samples))] += 1
    return _best_arm_shares(wins, draws, floor)


def ucb1_weights(
    successes: Sequence[int], trials: Sequence[int], *, exploration: float = 2.0, floor: float = 0.0
) -> list[float]:
    """UCB1 as a traffic allocation: the arm with the highest upper confidence bound gets everything.

    Score = mean + sqrt(exploration * ln N / n) (exploration 2 is Auer et al.'s UCB1). UCB1 is a
    deterministic policy that plays the argmax; served to a batch of users, playing the argmax means
    sending them all to it, so the allocation is all-or-nothing (ties split evenly) and `floor` is
    what keeps the other arms observed between rounds. Untried arms have an infinite bound and split
    the traffic first. Prefer Thompson weights when batches are large: they hedge between rounds.
    """
    if len(successes) != len(trials) or not trials:
        raise ValueError("need successes and trials for the same, non-empty list of arms")
    if any(not 0 <= s <= n for s, n in zip(successes, trials, strict=True)) or exploration < 0:
        raise ValueError("need 0 <= successes <= trials and a non-negative exploration")
    first = _unobserved_first(trials, floor)
    if first is not None:
        return first
    log_total = math.log(sum(trials))
    scores = [s / n + math.sqrt(exploration * log_total / n) for s, n in zip(successes, trials, strict=True)]
    best = max(scores)
    return apply_floor([1.0 if math.isclose(score, best) else 0.0 for score in scores], floor)
