"""Monitor decisions: is the live version worse than the previous one, or drifting? Pure.

A monitor looks at a version's scores every `check_every` scored records. Each look judges every
scorer with `judge`, which combines the tests of `regression.py`:

- **Regression** against the previous version's frozen window, one-sided, at two non-inferiority
  margins: significant beyond `warning_margin` is a warning, beyond `critical_margin` critical.
  Pass rates use the two-proportion test (Fisher's exact below `SMALL` records per window, where
  the observed drop must also exceed the margin, since Fisher has none); continuous scores use
  Mann–Whitney with the margin as the tolerance.
- **Floor**: a pass rate (or mean) significantly below the scorer's absolute `floor` is critical,
  with or without a previous version (a first deployment has no baseline).
- **Drift** within the version: a lower CUSUM over blocks of the current window against the
  version's own first records raises a warning (a decline after a good start: a provider change,
  new traffic), where the regression test sees nothing if the previous version was as bad.

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

from promptkeeper.core import regression
from promptkeeper.core.stats import binomial_upper_tail

__all__ = ["LEVELS", "Finding", "Rule", "Window", "acting_level", "judge", "spent_alpha"]

Level = Literal["ok", "warning", "critical"]
LEVELS: tuple[Level, ...] = ("ok", "warning", "critical")
#: Below this many records in either window, pass rates are compared with Fisher's exact test.
SMALL = 100
#: Drift: the current window is cut into this many blocks; the CUSUM runs over block means.
DRIFT_BLOCKS = 20
#: Drift: CUSUM slack and threshold in standard deviations of a block mean. With h = 8 the
#: in-control average run length is about 19,000 blocks (Siegmund's approximation), so drift
#: warnings are rare on a steady stream even though every look re-reads the window.
DRIFT_SLACK = 0.5
DRIFT_THRESHOLD = 8.0
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
    """Scores oldest first: `values` in [0, 1] and whether each passed its threshold."""

    values: Sequence[float]
    passed: Sequence[bool]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def passes(self) -> int:
        return sum(1 for p in self.passed if p)

    def level_of(self, kind: str) -> float:
        """The pass rate, or the mean score."""
        if not self.values:
            return math.nan
        return self.passes / self.n if kind == "pass_rate" else math.fsum(self.values) / self.n


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
        finding.method = "mann_whitney"
        for level, margin in (("warning", rule.warning_margin), ("critical", rule.critical_margin)):
            test = regression.mann_whitney_regression(baseline.values, current.values, tolerance=margin)
            finding.tests[level] = {"margin": margin, "p_value": test.p_value}
            finding.effect = test.effect
            if test.p_value < alpha:
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


def _drift(rule: Rule, current: Window, reference: Window, finding: Finding) -> None:
    """Lower CUSUM over block means of the current window, against the version's first records."""
    size = current.n // DRIFT_BLOCKS
    if size < 5 or reference.n < 2:
        return
    series = [1.0 if p else 0.0 for p in current.passed] if rule.kind == "pass_rate" else list(current.values)
    target = reference.level_of(rule.kind)
    if rule.kind == "pass_rate":
        # a rate of exactly 0 or 1 would give no variance: use the rule of three's pseudo-count
        rate = min(max(target, 0.5 / reference.n), 1 - 0.5 / reference.n)
        sd_one = math.sqrt(rate * (1 - rate))
    else:
        values = reference.values
        sd_one = math.sqrt(math.fsum((v - target) ** 2 for v in values) / (len(values) - 1)) or 0.05
    sd = sd_one / math.sqrt(size)
    blocks = [
        math.fsum(series[i : i + size]) / size
        for i in range(len(series) - size * DRIFT_BLOCKS, len(series), size)
    ]
    alarm = regression.cusum_alarm(blocks, target, DRIFT_SLACK * sd, DRIFT_THRESHOLD * sd)
    finding.tests["drift"] = {"reference": target, "reference_n": reference.n, "alarm_block": alarm}
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
        _drift(rule, recent if recent is not None else current, reference, finding)
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
