"""Sequential tests for experiments watched while they run: the mixture SPRT (always-valid inference).

Pure, like `experiment_stats.py`, whose `SampleSummary` it takes. Control first, treatment second;
a difference is treatment minus control.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from promptkeeper.core.experiment_stats import SampleSummary
from promptkeeper.core.intervals import Interval

__all__ = [
    "DEFAULT_STANDARDIZED_TAU",
    "SequentialResult",
    "always_valid_interval",
    "always_valid_p_value",
    "sequential_test",
]

# Always-valid tests mix over effects of this many standard deviations of one observation (see below).
DEFAULT_STANDARDIZED_TAU = 0.1


# ---------------------------------------------------------------------------------------------------
# Sequential tests: the mixture sequential probability ratio test (mSPRT)
# ---------------------------------------------------------------------------------------------------
#
# Re-running a fixed-horizon test at every peek and stopping at the first p < alpha inflates the false
# positive rate far past alpha (the tests show ~30% at 50 peeks). The mSPRT of Johari, Pekelis and Walsh
# ("Always valid inference", 2017), in the normal approximation Optimizely and Eppo use, fixes this: with
# a difference estimate d of variance V and a N(0, tau^2) mixture over the true effect, the likelihood
# ratio against "no difference" is
#     Lambda = sqrt(V / (V + tau^2)) * exp(d^2 tau^2 / (2 V (V + tau^2))),
# and 1 / Lambda is a p-value valid at any stopping time (Ville's inequality). Monitoring takes the
# running minimum of the p-value and the running intersection of the intervals.


class SequentialResult(NamedTuple):
    difference: float
    p_value: float
    interval: Interval


def always_valid_p_value(difference: float, variance: float, *, tau2: float, previous: float = 1.0) -> float:
    """min(previous, 1 / Lambda) for a difference estimate with the given variance (see above)."""
    if variance <= 0 or tau2 <= 0:
        raise ValueError(f"need positive variances, got variance={variance}, tau2={tau2}")
    log_lambda = 0.5 * math.log(variance / (variance + tau2)) + difference**2 * tau2 / (
        2.0 * variance * (variance + tau2)
    )
    return min(previous, 1.0, math.exp(-log_lambda))


def always_valid_interval(
    difference: float, variance: float, *, tau2: float, alpha: float = 0.05, previous: Interval | None = None
) -> Interval:
    """The effects the mSPRT does not reject at `alpha`, intersected with the interval of the last peek.

    d +- sqrt(V (V + tau^2) / tau^2 * (log((V + tau^2) / V) - 2 log alpha)): wider than the fixed
    horizon interval, which is the price of being allowed to look at every peek.
    """
    if variance <= 0 or tau2 <= 0 or not 0.0 < alpha < 1.0:
        raise ValueError("need positive variances and alpha in (0, 1)")
    half = math.sqrt(
        variance * (variance + tau2) / tau2 * (math.log((variance + tau2) / variance) - 2.0 * math.log(alpha))
    )
    low, high = difference - half, difference + half
    if previous is not None:
        low, high = max(low, previous.low), min(high, previous.high)
    return Interval(low, high, 1.0 - alpha)


def sequential_test(
    control: SampleSummary,
    treatment: SampleSummary,
    *,
    alpha: float = 0.05,
    tau2: float | None = None,
    previous: SequentialResult | None = None,
) -> SequentialResult:
    """One peek of the mSPRT on the difference of two means; pass the last peek's result as `previous`.

    For conversion rates pass `SampleSummary.of_conversions(successes, trials)` for each variant.

    The default mixing variance is tau^2 = (0.1 s)^2, s^2 the pooled per-observation variance: the test
    is most powerful for effects near tau and prompt changes typically move a metric by about a tenth
    of its standard deviation (a "small" standardized effect). Any tau keeps the test valid; a wrong
    one only costs power. Pass `tau2` (in squared metric units) when past experiments suggest better.
    Variances are the sample estimates at each peek (plug-in), as in the normal approximation.
    """
    if control.n < 2 or treatment.n < 2:
        raise ValueError("a sequential test needs at least two observations per variant")
    variance_of_difference = control.variance / control.n + treatment.variance / treatment.n
    if tau2 is None:
        pooled = ((control.n - 1) * control.variance + (treatment.n - 1) * treatment.variance) / (
            control.n + treatment.n - 2
        )
        tau2 = DEFAULT_STANDARDIZED_TAU**2 * pooled
    difference = treatment.mean - control.mean
    p_value = always_valid_p_value(
        difference, variance_of_difference, tau2=tau2, previous=1.0 if previous is None else previous.p_value
    )
    last_interval = None if previous is None else previous.interval
    interval = always_valid_interval(
        difference, variance_of_difference, tau2=tau2, alpha=alpha, previous=last_interval
    )
    return SequentialResult(difference, p_value, interval)


# ---------------------------------------------------------------------------------------------------
# Multiple comparisons
# ---------------------------------------------------------------------------------------------------
