"""Monitor decisions: alpha spending, the regression/floor/drift rules, acting on runs of breaches."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats as scipy_stats

from promptkeeper.core import monitor_decisions as dt


def _window(rate: float, n: int, rng: random.Random) -> dt.Window:
    passed = [rng.random() < rate for _ in range(n)]
    return dt.Window([1.0 if p else 0.0 for p in passed], passed)


def _exact(passes: int, n: int) -> dt.Window:
    passed = [True] * passes + [False] * (n - passes)
    return dt.Window([1.0 if p else 0.0 for p in passed], passed)


def test_spent_alpha_sums_to_alpha() -> None:
    assert dt.spent_alpha(0.05, 1) == pytest.approx(0.05 * 6 / math.pi**2)
    assert math.fsum(dt.spent_alpha(0.05, k) for k in range(1, 200_000)) == pytest.approx(0.05, rel=1e-4)
    for bad in ((0.05, 0), (0.0, 1), (1.0, 1)):
        with pytest.raises(ValueError):
            dt.spent_alpha(*bad)


def test_a_clear_drop_is_critical_and_a_small_one_a_warning() -> None:
    rule = dt.Rule("safety", warning_margin=0.0, critical_margin=0.03)
    baseline = _exact(980, 1000)
    big = dt.judge(rule, _exact(900, 1000), baseline, look=1)
    assert (big.level, big.reason, big.method) == ("critical", "regression", "two_proportion")
    assert big.effect == pytest.approx(-0.08) and big.p_value is not None and big.p_value < big.alpha
    assert big.bound is not None and big.bound < 0  # the whole one-sided interval lies below zero
    small = dt.judge(rule, _exact(965, 1000), baseline, look=1)
    assert small.level == "warning"
    assert small.tests["critical"]["p_value"] > small.alpha > small.tests["warning"]["p_value"]
    same = dt.judge(rule, _exact(979, 1000), baseline, look=1)
    assert same.level == "ok"
    better = dt.judge(rule, _exact(999, 1000), baseline, look=1)
    assert better.level == "ok" and better.effect is not None and better.effect > 0


def test_later_looks_need_stronger_evidence() -> None:
    rule = dt.Rule("safety", warning_margin=0.0, critical_margin=0.5)
    baseline, current = _exact(980, 1000), _exact(960, 1000)
    first = dt.judge(rule, current, baseline, look=1)
    late = dt.judge(rule, current, baseline, look=30)
    assert first.p_value == late.p_value and first.p_value is not None
    assert late.alpha < first.p_value < first.alpha  # the same evidence: a warning at look 1 only
    assert (first.level, late.level) == ("warning", "ok")


def test_small_windows_use_fishers_exact_test() -> None:
    rule = dt.Rule("format", critical_margin=0.2)
    finding = dt.judge(rule, _exact(10, 40), _exact(38, 40), look=1)
    expected = scipy_stats.fisher_exact([[10, 30], [38, 2]], alternative="less").pvalue
    assert finding.method == "fisher" and finding.p_value == pytest.approx(float(expected), rel=1e-9)
    assert finding.level == "critical"


def test_scores_compare_means_with_the_margin() -> None:
    rng = random.Random(3)
    baseline = [min(1.0, max(0.0, rng.gauss(0.8, 0.1))) for _ in range(400)]
    drop = [min(1.0, max(0.0, rng.gauss(0.72, 0.1))) for _ in range(400)]

    def window(values: list[float]) -> dt.Window:
        return dt.Window(values, [v >= 0.5 for v in values])

    rule = dt.Rule("judge", kind="score", warning_margin=0.0, critical_margin=0.15)
    finding = dt.judge(rule, window(drop), window(baseline), look=1)
    assert finding.method == "welch" and finding.level == "warning"  # within the 0.15 margin
    assert finding.effect == pytest.approx(sum(drop) / 400 - sum(baseline) / 400)
    theirs = scipy_stats.ttest_ind(drop, baseline, equal_var=False, alternative="less").pvalue
    assert finding.tests["warning"]["p_value"] == pytest.approx(float(theirs), rel=1e-6)


def test_a_judge_answering_1_or_5_is_critical_on_the_drop_of_its_mean() -> None:
    """Scores of 0 or 1 only: 1.0 -> 0.58. A median shift reads 0 here and a rank test with the
    margin as a shift sees v2 as better; the difference of means is -0.42, beyond 0.1."""
    rule = dt.Rule("judge", kind="score", warning_margin=0.0, critical_margin=0.1)
    baseline = dt.Window([1.0] * 200, [True] * 200)
    values = [0.0] * 84 + [1.0] * 116
    current = dt.Window(values, [v >= 0.75 for v in values])
    finding = dt.judge(rule, current, baseline, look=1)
    assert (finding.level, finding.reason) == ("critical", "regression")
    assert finding.effect == pytest.approx(-0.42)
    assert finding.bound is not None and finding.bound < -0.1
    small = dt.Window([0.0] * 5 + [1.0] * 95, [False] * 5 + [True] * 95)  # 0.95: within the margin
    assert dt.judge(rule, small, baseline, look=1).level == "warning"


def test_the_floor_applies_without_a_baseline() -> None:
    rule = dt.Rule("json", floor=0.9)
    low = dt.judge(rule, _exact(160, 200), None, look=1)
    assert (low.level, low.reason, low.baseline) == ("critical", "floor", None)
    theirs = scipy_stats.binomtest(160, 200, 0.9, alternative="less").pvalue
    assert low.tests["floor"]["p_value"] == pytest.approx(float(theirs), rel=1e-9)
    assert dt.judge(rule, _exact(186, 200), None, look=1).level == "ok"


def test_drift_within_a_version_warns() -> None:
    rule = dt.Rule("safety")
    reference = _exact(200, 200)
    steady = dt.Window([1.0] * 1000, [True] * 1000)
    assert dt.judge(rule, steady, None, look=1, reference=reference).level == "ok"
    passed = [True] * 700 + [False, True] * 150  # the last 300 records pass half the time
    drifting = dt.Window([1.0 if p else 0.0 for p in passed], passed)
    finding = dt.judge(rule, drifting, None, look=1, reference=reference)
    assert (finding.level, finding.reason) == ("warning", "drift")
    assert finding.tests["drift"]["alarm_at"] is not None
    assert 700 <= finding.tests["drift"]["alarm_at"] < 800  # soon after the decline began


def test_acting_level_needs_a_run_of_breaches() -> None:
    assert dt.acting_level(["critical", "ok", "critical"], 2) == "ok"
    assert dt.acting_level(["ok", "warning", "critical"], 2) == "warning"
    assert dt.acting_level(["warning", "critical", "critical"], 2) == "critical"
    assert dt.acting_level(["critical"], 3) == "ok"
    assert dt.acting_level(["critical"], 1) == "critical"


def test_false_alarms_stay_within_alpha_over_many_looks() -> None:
    """500 simulated deployments of an unchanged version (98% vs 98%), 50 looks each over a
    sliding window: the share of deployments with any breaching look stays below alpha."""
    rng = random.Random(11)
    rule = dt.Rule("safety", warning_margin=0.0, critical_margin=0.03)
    alarmed = 0
    for _ in range(500):
        baseline = _window(0.98, 1000, rng)
        stream = [rng.random() < 0.98 for _ in range(200 + 50 * 50)]
        for look in range(1, 51):
            end = 200 + 50 * look
            passed = stream[max(0, end - 1000) : end]
            current = dt.Window([1.0 if p else 0.0 for p in passed], passed)
            if dt.judge(rule, current, baseline, look=look).level != "ok":
                alarmed += 1
                break
    assert alarmed / 500 <= 0.05


def test_drift_catches_a_decline_within_a_window_and_stays_quiet_without_one() -> None:
    """98% for 2,000 records, then 90%: the drift test warns within 1,000 records of the change in
    each of 20 seeded streams; on 20 streams that stay at 98%, it never warns."""
    rng = random.Random(5)
    rule = dt.Rule("safety")

    def first_warning(after: float) -> int | None:
        stream = [rng.random() < 0.98 for _ in range(2000)]
        reference = dt.Window([1.0 if p else 0.0 for p in stream[:1000]], stream[:1000])
        for look in range(1, 31):
            stream.extend(rng.random() < after for _ in range(100))
            recent = stream[-1000:]
            finding = dt.judge(
                rule,
                dt.Window.counts(sum(stream), len(stream)),
                None,
                look=20 + look,
                reference=reference,
                recent=dt.Window([1.0 if p else 0.0 for p in recent], recent),
            )
            if finding.level != "ok":
                assert finding.reason == "drift"
                return look * 100
        return None

    declines = [first_warning(0.90) for _ in range(20)]
    assert all(d is not None and d <= 1000 for d in declines), declines
    assert [first_warning(0.98) for _ in range(20)] == [None] * 20
