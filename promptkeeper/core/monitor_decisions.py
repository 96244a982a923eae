"""Monitor decisions: is the live version worse than the previous one, or drifting? Pure.

A monitor looks at each scorer of a version every `check_every` of its scored records (and on a
timer). Each look judges every
scorer with `judge`, which combines the tests of `regression_stats.py`:

- **Regression** against the previous version's frozen window, one-sided, at two non-inferiority
  margins: significant beyond `warning_margin` is a warning, beyond `critical_margin` critical.
  Pass rates use the two-proportion test (Fisher's exact below `SMALL` records per window, where
  the observed drop must also exceed the margin, since Fisher has none); scores (`kind: score`)
  use Welch's t on the difference of means with the margin (below `SMALL` records the observed
  drop must exceed the margin too): the margin is in score units, so the effect must be the
  difference of means; a rank test's median shift reads 0 for a judge answering on a few levels.
- **Floor**: a pass rate (or mean) significantly below the scorer's absolute `floor` is critical,
  with or without a previous version (a first deployment has no baseline).
- **Drift** within the version: a likelihood-ratio CUSUM over the latest window against the
  version's own first window raises a warning (a decline after a good start: a provider change,
  new traffic), where the regression test sees nothing if the previous version was as bad. Its
  threshold is log(window / alpha_k): by Ville's inequality each start point of the CUSUM crosses
  it with probability at most alpha_k / window under no change, so a look's drift test, over all
  its start points, keeps to alpha_k too.

The regression and floor tests read the live version's accumulated evidence (see `judge`); drift
reads its latest window. Repeated looks must not inflate false alarms. Look k tests at
`spent_alpha(alpha, k)` = alpha * 6 / (pi^2 k^2): these sum to alpha over infinitely many looks,
so by the union bound the chance of any false breach over a version's whole life stays below
alpha per scorer and level (an alpha-spending rule; conservative, and valid whatever the looks'
correlation). On top, the monitor acts only after `consecutive` breaching looks in a row
(`regression.breaches`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Literal

from promptkeeper.core import regression_stats as regression
from promptkeeper.core.intervals import binomial_upper_tail, wilson_interval

__all__ = ["LEVELS", "Finding", "Rule", "Window", "acting_level", "judge", "spent_alpha"]

Level = Literal["ok", "warning", "critical"]
LEVELS: tuple[Level, ...] = ("ok", "warning", "critical")
#: Below this many records in either window, pass rates are compared with Fisher's exact test.
SMALL = 100
_NORMAL = NormalDist()


@dataclass(frozen=True)
class Rule:
    """How one scorer is judged. Margins and the floor are in score units (a pass rate of 0.98
    minus a margin of 0.03 is 0.95)."""

    scorer: str
    kind: Literal["pass_rate", "score"] = "pass_rate"
    warning_margin: float = 0.0
    critical_margin: float = 0.05
    floor: float | None = None


@dataclass(frozen=True)
class Window:
    """Scores oldest first: `values` in [0, 1] and whether each passed its threshold.

    A pass-rate test needs only the counts: `Window.counts(passes, n)` carries them without the
    values (a look then aggregates in SQL instead of reading thousands of rows)."""

    values: Sequence[float]
    passed: Sequence[bool]
    total: int | None = None
    passed_total: int | None = None

    @classmethod
    def counts(cls, passes: int, n: int) -> Window:
        return cls((), (), n, passes)

    @property
    def n(self) -> int:
        return self.total if self.total is not None else len(self.values)

    @property
    def passes(self) -> int:
        return self.passed_total if self.passed_total is not None else sum(1 for p in self.passed if p)

    def level_of(self, kind: str) -> float:
        """The pass rate, or the mean score."""
        if self.n == 0:
            return math.nan
        if kind == "pass_rate":
            return self.passes / self.n
        if not self.values:
            raise ValueError("a mean score needs the values, not only the counts")
        return math.fsum(self.values) / self.n


@dataclass
class Finding:
    """One scorer at one look: the level and the evidence (for alerts and the status page)."""

    scorer: str
    level: Level = "ok"
    reason: str = ""
    method: str = ""
    current: float = math.nan
    current_n: int = 0
    baseline: float | None = None
    baseline_n: int = 0
    effect: float | None = None
    p_value: float | None = None
    bound: float | None = None
    alpha: float = 0.0
    tests: dict[str, Any] = field(default_factory=dict)

    def raise_to(self, level: Level, reason: str) -> None:
        if LEVELS.index(level) > LEVELS.index(self.level):
            self.level = level
            self.reason = reason

    def as_dict(self) -> dict[str, Any]:
        def clean(value: Any) -> Any:
            return None if isinstance(value, float) and not math.isfinite(value) else value

        return {
            "scorer": self.scorer,
            "level": self.level,
            "reason": self.reason,
            "method": self.method,
            "current": clean(self.current),
            "current_n": self.current_n,
            "baseline": clean(self.baseline),
            "baseline_n": self.baseline_n,
            "effect": clean(self.effect),
            "p_value": clean(self.p_value),
            "bound": clean(self.bound),
            "alpha": self.alpha,
            "tests": {k: {kk: clean(vv) for kk, vv in v.items()} for k, v in self.tests.items()},
        }


def spent_alpha(alpha: float, look: int) -> float:
    """The significance level of look `look` (1, 2, ...): alpha * 6 / (pi^2 look^2)."""
    if look < 1:
        raise ValueError(f"looks are numbered from 1, got {look}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return alpha * 6.0 / (math.pi**2 * look * look)


def _regression(rule: Rule, current: Window, baseline: Window, alpha: float, finding: Finding) -> None:
    if rule.kind == "score":
        finding.method = "welch"
        for level, margin in (("warning", rule.warning_margin), ("critical", rule.critical_margin)):
            means = regression.mean_regression(baseline.values, current.values, margin, level=1 - alpha)
            finding.tests[level] = {"margin": margin, "p_value": means.p_value}
            finding.effect, finding.bound = means.effect, means.bound
            if means.p_value < alpha and not (min(baseline.n, current.n) < SMALL and means.effect >= -margin):
                finding.raise_to(level, "regression")  # type: ignore[arg-type]
        _headline(finding)
        return
    b_pass, b_n, c_pass, c_n = baseline.passes, baseline.n, current.passes, current.n
    difference = c_pass / c_n - b_pass / b_n
    finding.effect = difference
    p_b, p_c = b_pass / b_n, c_pass / c_n
    se = math.sqrt(p_b * (1 - p_b) / b_n + p_c * (1 - p_c) / c_n)
    finding.bound = difference + _NORMAL.inv_cdf(1 - alpha) * se  # one-sided upper bound on the change
    if min(b_n, c_n) < SMALL:
        finding.method = "fisher"
        p_value = regression.fisher_regression(b_pass, b_n, c_pass, c_n).p_value
        finding.p_value = p_value
        for level, margin in (("warning", rule.warning_margin), ("critical", rule.critical_margin)):
            finding.tests[level] = {"margin": margin, "p_value": p_value}
            if p_value < alpha and difference < -margin:
                finding.raise_to(level, "regression")  # type: ignore[arg-type]
        _headline(finding)
        return
    finding.method = "two_proportion"
    for level, margin in (("warning", rule.warning_margin), ("critical", rule.critical_margin)):
        test = regression.proportion_regression(b_pass, b_n, c_pass, c_n, margin=margin)
        finding.tests[level] = {"margin": margin, "p_value": test.p_value}
        if test.p_value < alpha:
            finding.raise_to(level, "regression")  # type: ignore[arg-type]
    _headline(finding)


def _headline(finding: Finding) -> None:
    """The p-value an alert quotes: the critical test's when critical, else the warning test's."""
    finding.p_value = finding.tests["critical" if finding.level == "critical" else "warning"]["p_value"]


def _floor(rule: Rule, current: Window, alpha: float, finding: Finding) -> None:
    """H0: the true level is at least the floor. Exact binomial for pass rates, z for means."""
    assert rule.floor is not None
    if rule.kind == "pass_rate":
        p_value = 1.0 - binomial_upper_tail(current.passes + 1, current.n, rule.floor)
    else:
        mean = current.level_of("score")
        sd = math.sqrt(math.fsum((v - mean) ** 2 for v in current.values) / max(1, current.n - 1))
        if sd == 0:
            p_value = 0.0 if mean < rule.floor else 1.0
        else:
            p_value = _NORMAL.cdf((mean - rule.floor) / (sd / math.sqrt(current.n)))
    finding.tests["floor"] = {"floor": rule.floor, "p_value": p_value}
    if p_value < alpha:
        finding.raise_to("critical", "floor")


def _drift(rule: Rule, recent: Window, reference: Window, alpha: float, finding: Finding) -> None:
    """Likelihood-ratio CUSUM of the latest window against the version's first (frozen) window.

    No change (H0) is the reference's level taken pessimistically: its 95% upper bound on the
    failure rate (pass rates) or its mean minus two standard errors (scores), so a lucky first
    window does not read as a later decline. The alternative is a drop by the larger of the
    warning margin and a doubling of the failure rate (pass rates) or half a standard deviation
    (scores, with normal errors).
    """
    if recent.n < 2 or reference.n < 2 or not recent.values:
        return
    threshold = math.log(recent.n / alpha)
    if rule.kind == "pass_rate":
        fails = reference.n - reference.passes
        q0 = min(max(wilson_interval(fails, reference.n).high, 1.0 / reference.n), 0.5)
        q1 = min(0.99, q0 + max(rule.warning_margin, q0))
        fail_step, pass_step = math.log(q1 / q0), math.log((1 - q1) / (1 - q0))
        steps = [-(pass_step if p else fail_step) for p in recent.passed]
        null, alternative = 1 - q0, 1 - q1
    else:
        mean = reference.level_of("score")
        sd = max(math.sqrt(math.fsum((v - mean) ** 2 for v in reference.values) / (reference.n - 1)), 0.01)
        null = mean - 2 * sd / math.sqrt(reference.n)
        shift = max(rule.warning_margin, 0.5 * sd)
        alternative = null - shift
        steps = [-(shift / sd**2) * (null - shift / 2 - v) for v in recent.values]
    alarm = regression.cusum_alarm(steps, 0.0, 0.0, threshold)  # S = max(0, S + log LR)
    finding.tests["drift"] = {
        "null": null,
        "alternative": alternative,
        "reference_n": reference.n,
        "threshold": threshold,
        "alarm_at": alarm,
    }
    if alarm is not None:
        finding.raise_to("warning", "drift")


def judge(
    rule: Rule,
    current: Window,
    baseline: Window | None,
    *,
    look: int,
    alpha: float = 0.05,
    reference: Window | None = None,
    recent: Window | None = None,
) -> Finding:
    """One scorer at look `look`.

    `current` is the evidence on the live version: everything it scored since it went live (the
    caller caps it), so that it grows with the looks while their alpha shrinks; a sliding window
    would keep the evidence fixed while the bar rises, and lose power look after look. `baseline`
    is the previous version's frozen window (None: no previous version, or too few records);
    `reference` the live version's first records and `recent` its latest window, for drift
    (default: `current`). The caller has checked that `current` holds the minimum sample."""
    if current.n == 0:
        raise ValueError("the current window is empty")
    level_alpha = spent_alpha(alpha, look)
    finding = Finding(
        scorer=rule.scorer,
        current=current.level_of(rule.kind),
        current_n=current.n,
        alpha=level_alpha,
    )
    if baseline is not None and baseline.n > 0:
        finding.baseline = baseline.level_of(rule.kind)
        finding.baseline_n = baseline.n
        _regression(rule, current, baseline, level_alpha, finding)
    if rule.floor is not None:
        _floor(rule, current, level_alpha, finding)
    if reference is not None and finding.level == "ok":
        _drift(rule, recent if recent is not None else current, reference, level_alpha, finding)
    return finding


def acting_level(history: Sequence[str], needed: int) -> Level:
    """The highest level reached by each of the newest `needed` looks (oldest first in `history`):
    the monitor acts on a run of breaches, never on one unlucky window."""
    level: Level
    for level in ("critical", "warning"):
        rank = LEVELS.index(level)
        if regression.breaches([LEVELS.index(h) >= rank for h in history], needed):
            return level
    return "ok"
