"""Statistics of evaluation runs: per-scorer summaries and paired comparisons of two runs.

Pure, on the intervals of `intervals.py`.

Errors: `ValueError` for impossible input (mismatched pairs, no values).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from promptkeeper.core.intervals import Interval, mean_interval, wilson_interval

__all__ = ["ScoreSummary", "paired_difference", "summarize"]


# ---------------------------------------------------------------------------------------------------
# Aggregation
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreSummary:
    scorer: str
    n: int
    mean: float
    mean_ci: Interval
    pass_rate: float
    pass_ci: Interval
    threshold: float


def summarize(
    scores: Iterable[tuple[str, float, bool, float]], level: float = 0.95
) -> dict[str, ScoreSummary]:
    """Per-scorer summaries of `(scorer, value, passed, threshold)` items, in order of first appearance.

    Per-tag summaries are the same call on the items of that tag's cases. A scorer is expected to
    have one threshold per run; if items disagree, the summary reports the first one seen.
    """
    values: dict[str, list[float]] = {}
    passes: dict[str, int] = {}
    thresholds: dict[str, float] = {}
    for scorer, value, passed, threshold in scores:
        values.setdefault(scorer, []).append(value)
        passes[scorer] = passes.get(scorer, 0) + (1 if passed else 0)
        thresholds.setdefault(scorer, threshold)
    summaries: dict[str, ScoreSummary] = {}
    for scorer, items in values.items():
        n = len(items)
        summaries[scorer] = ScoreSummary(
            scorer=scorer,
            n=n,
            mean=math.fsum(items) / n,
            mean_ci=mean_interval(items, level),
            pass_rate=passes[scorer] / n,
            pass_ci=wilson_interval(passes[scorer], n, level),
            threshold=thresholds[scorer],
        )
    return summaries


# ---------------------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------------------


def paired_difference(
    before: Sequence[float], after: Sequence[float], level: float = 0.95
) -> tuple[float, Interval]:
    """Mean of `after - before` over the same cases, with a t interval.

    Paired because candidate and baseline ran on the same cases: case difficulty cancels out, so the
    interval is much narrower than comparing two independent means. An interval excluding 0 is a
    difference the run can stand behind.
    """
    if len(before) != len(after):
        raise ValueError(
            f"paired_difference needs the same cases on both sides, got {len(before)} and {len(after)}"
        )
    differences = [b - a for a, b in zip(before, after, strict=True)]
    interval = mean_interval(differences, level)
    return math.fsum(differences) / len(differences), interval
