"""Assignment against GrowthBook's cross-SDK cases, FNV-1a test vectors and the properties experiments use.

`tests/data/growthbook_cases.json` holds the `hash`, `getBucketRange` and `chooseVariation` sections of
GrowthBook's `packages/sdk-js/test/cases.json`, unmodified (its `_source` names the commit). The expected
values for non-ASCII strings were computed once with the SDK's `hashFnv32a` under Node.js.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from promptkeeper.core.assignment import (
    assign,
    choose_variation,
    fnv1a32,
    gb_hash,
    get_bucket_ranges,
    get_equal_weights,
    in_range,
)

CASES: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "data" / "growthbook_cases.json").read_text(encoding="utf-8")
)
UNITS = [f"user-{i}" for i in range(10_000)]


def _js_round(x: float) -> float:
    """The SDK's json.test.ts compares bucket ranges after `Math.floor(n * 1e8) / 1e8` on both sides."""
    return math.floor(x * 1e8) / 1e8


# ---------------------------------------------------------------------------------------------------
# GrowthBook's cases
# ---------------------------------------------------------------------------------------------------


def test_the_case_file_holds_the_three_sections() -> None:
    assert set(CASES) == {"_source", "hash", "getBucketRange", "chooseVariation"}
    assert CASES["_source"]["repository"] == "growthbook/growthbook"
    assert (len(CASES["hash"]), len(CASES["getBucketRange"]), len(CASES["chooseVariation"])) == (15, 13, 13)


@pytest.mark.parametrize(("seed", "value", "version", "expected"), CASES["hash"])
def test_hash_matches_growthbook(seed: str, value: str, version: int, expected: float | None) -> None:
    # Exact: the SDK test uses toEqual, and (h % 10000) / 10000 is the same double in both languages.
    assert gb_hash(seed, value, version) == expected


@pytest.mark.parametrize(
    ("args", "expected"), [pytest.param(c[1], c[2], id=c[0]) for c in CASES["getBucketRange"]]
)
def test_bucket_ranges_match_growthbook(args: list[Any], expected: list[list[float]]) -> None:
    num_variations, coverage, weights = args
    ranges = get_bucket_ranges(num_variations, coverage, weights)
    assert [[_js_round(x) for x in r] for r in ranges] == [[_js_round(x) for x in r] for r in expected]
    assert [list(r) for r in ranges] == [pytest.approx(r, abs=1e-6) for r in expected]


@pytest.mark.parametrize(
    ("n", "ranges", "expected"), [pytest.param(c[1], c[2], c[3], id=c[0]) for c in CASES["chooseVariation"]]
)
def test_choose_variation_matches_growthbook(n: float, ranges: list[list[float]], expected: int) -> None:
    assert choose_variation(n, [(r[0], r[1]) for r in ranges]) == expected


# ---------------------------------------------------------------------------------------------------
# Known values
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 2166136261),  # the offset basis
        ("a", 0xE40C292C),  # FNV-1a reference vectors
        ("foobar", 0xBF9CF968),
        ("user-42", 39875499),
        # UTF-16 code units, as the JS SDK's charCodeAt: not the UTF-8 bytes C3 A9 ...
        ("é", 1812687940),
        ("日本語", 1409693518),
        # ... and an astral character is its two surrogates, D83D DE00.
        ("😀", 3409036472),
    ],
)
def test_fnv1a32_known_values(text: str, expected: int) -> None:
    assert fnv1a32(text) == expected


@pytest.mark.parametrize(
    ("text", "bucket"),
    # GrowthBook's packages/sdk-js/test/cases/fnv.json: fnv1a32(text) % 1000.
    [("a", 220), ("b", 77), ("ab", 946), ("def", 652), ("8952klfjas09ujkasdf", 549), ("123", 11)],
)
def test_fnv1a32_matches_growthbook_fnv_cases(text: str, bucket: int) -> None:
    assert fnv1a32(text) % 1000 == bucket


def test_utf8_would_disagree_with_the_sdks() -> None:
    utf8 = 0x811C9DC5
    for byte in "é".encode():
        utf8 = ((utf8 ^ byte) * 0x01000193) & 0xFFFFFFFF
    assert fnv1a32("é") != utf8


@pytest.mark.parametrize(
    ("seed", "value", "version", "expected"),
    [
        ("exp-é", "user-😀", 2, 0.4092),
        ("exp-é", "user-😀", 1, 0.021),
        ("a", "b", 0, None),
        ("a", "b", 3, None),
    ],
)
def test_hash_of_non_ascii_and_unknown_versions(
    seed: str, value: str, version: int, expected: float | None
) -> None:
    assert gb_hash(seed, value, version) == expected


@pytest.mark.parametrize(
    ("n", "expected"), [(-1, []), (0, []), (1, [1.0]), (2, [0.5, 0.5]), (4, [0.25, 0.25, 0.25, 0.25])]
)
def test_equal_weights(n: int, expected: list[float]) -> None:
    assert get_equal_weights(n) == expected


@pytest.mark.parametrize(
    ("n", "expected"), [(0.0, True), (0.25, True), (0.5, False), (-0.0001, False), (0.4999, True)]
)
def test_in_range_is_half_open(n: float, expected: bool) -> None:
    assert in_range(n, (0.0, 0.5)) is expected


def test_bucket_ranges_default_to_full_coverage_and_equal_weights() -> None:
    assert get_bucket_ranges(3) == get_bucket_ranges(3, 1.0, None) == get_bucket_ranges(3, 1.0, [0.5, 0.5])


# ---------------------------------------------------------------------------------------------------
# assign
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # GrowthBook's "run" cases "default weights - 1/2", "three way test - 1" (hash version 1, seed = key).
        ({"seed": "my-test", "unit": "1", "weights": [0.5, 0.5], "hash_version": 1}, 1),
        ({"seed": "my-test", "unit": "2", "weights": [0.5, 0.5], "hash_version": 1}, 0),
        ({"seed": "my-test", "unit": "1", "weights": [1 / 3] * 3, "hash_version": 1}, 2),
        # "Uses seed with default weights/coverage": seed foo, hash version 2, id 1 -> variation 1.
        ({"seed": "foo", "unit": "1", "weights": [0.5, 0.5]}, 1),
        # Not enrolled: a single variant, an empty unit, an unknown hash version, zero coverage.
        ({"seed": "my-test", "unit": "1", "weights": [1.0]}, -1),
        ({"seed": "my-test", "unit": "", "weights": [0.5, 0.5]}, -1),
        ({"seed": "my-test", "unit": "1", "weights": [0.5, 0.5], "hash_version": 99}, -1),
        ({"seed": "my-test", "unit": "1", "weights": [0.5, 0.5], "coverage": 0.0}, -1),
    ],
)
def test_assign_known_values(kwargs: dict[str, Any], expected: int) -> None:
    assert assign(**kwargs) == expected


def test_assign_is_deterministic() -> None:
    first = [assign(seed="exp-1", unit=u, weights=[0.2, 0.3, 0.5]) for u in UNITS[:1000]]
    second = [assign(seed="exp-1", unit=u, weights=[0.2, 0.3, 0.5]) for u in UNITS[:1000]]
    assert first == second


def test_assign_follows_the_weights() -> None:
    counts = Counter(assign(seed="exp-1", unit=u, weights=[0.2, 0.3, 0.5]) for u in UNITS)
    for variant, weight in enumerate([0.2, 0.3, 0.5]):
        # Binomial sd is at most 50 for 10,000 units; 4 sd, and the units are fixed, so it cannot flake.
        assert abs(counts[variant] - weight * len(UNITS)) < 200


def _chi_squared_independence(table: list[list[int]]) -> float:
    total = float(sum(map(sum, table)))
    rows = [sum(r) for r in table]
    cols = [sum(c) for c in zip(*table, strict=True)]
    statistic = 0.0
    for i, row in enumerate(rows):
        for j, col in enumerate(cols):
            expected = row * col / total
            statistic += (table[i][j] - expected) * (table[i][j] - expected) / expected
    return statistic


@pytest.mark.parametrize(
    ("seed_a", "seed_b"), [("exp-1", "exp-2"), ("checkout-copy", "onboarding-tone"), ("a", "b")]
)
def test_different_seeds_are_independent(seed_a: str, seed_b: str) -> None:
    weights = [1 / 3] * 3
    table = [[0] * 3 for _ in range(3)]
    for unit in UNITS:
        table[assign(seed=seed_a, unit=unit, weights=weights)][
            assign(seed=seed_b, unit=unit, weights=weights)
        ] += 1
    # 18.47 is the chi-squared critical value for 4 degrees of freedom at p = 0.001. The units are fixed,
    # so the statistic is a constant: this test passes or fails the same way every run.
    assert _chi_squared_independence(table) < 18.47


def test_raising_a_weight_only_moves_units_into_it() -> None:
    before = [assign(seed="exp-1", unit=u, weights=[0.9, 0.1]) for u in UNITS]
    after = [assign(seed="exp-1", unit=u, weights=[0.8, 0.2]) for u in UNITS]
    moves = Counter((b, a) for b, a in zip(before, after, strict=True) if b != a)
    assert set(moves) == {(0, 1)}
    assert all(a == 1 for b, a in zip(before, after, strict=True) if b == 1)
    # About a tenth of the units should have moved, and none is lost.
    assert 800 < moves[(0, 1)] < 1200
    assert -1 not in after


def test_raising_a_middle_weight_from_its_neighbours_only_moves_units_into_it() -> None:
    before = [assign(seed="exp-1", unit=u, weights=[0.4, 0.2, 0.4]) for u in UNITS]
    after = [assign(seed="exp-1", unit=u, weights=[0.35, 0.3, 0.35]) for u in UNITS]
    assert {(b, a) for b, a in zip(before, after, strict=True) if b != a} == {(0, 1), (2, 1)}


def test_taking_weight_from_a_distant_variant_reshuffles_the_others() -> None:
    # The documented limit: 2 gains weight from 0, the 0|1 edge moves, and units move 0 -> 1.
    before = [assign(seed="exp-1", unit=u, weights=[0.2, 0.2, 0.6]) for u in UNITS]
    after = [assign(seed="exp-1", unit=u, weights=[0.1, 0.2, 0.7]) for u in UNITS]
    assert (0, 1) in {(b, a) for b, a in zip(before, after, strict=True) if b != a}


def test_below_full_coverage_raising_a_weight_can_drop_units() -> None:
    before = [assign(seed="exp-1", unit=u, weights=[0.9, 0.1], coverage=0.5) for u in UNITS]
    after = [assign(seed="exp-1", unit=u, weights=[0.8, 0.2], coverage=0.5) for u in UNITS]
    assert (1, -1) in {(b, a) for b, a in zip(before, after, strict=True) if b != a}


def test_raising_coverage_only_adds_units() -> None:
    before = [assign(seed="exp-1", unit=u, weights=[0.3, 0.7], coverage=0.4) for u in UNITS]
    after = [assign(seed="exp-1", unit=u, weights=[0.3, 0.7], coverage=0.9) for u in UNITS]
    assert {b for b, a in zip(before, after, strict=True) if b != a} == {-1}


def test_buckets_are_uniform_over_100k_units() -> None:
    """100,000 unit ids hashed into 10 equal buckets: the counts fit a uniform distribution."""
    from promptkeeper.core.experiment_stats import chi2_sf

    counts = [0] * 10
    for i in range(100_000):
        n = gb_hash("uniformity", f"user-{i}", 2)
        assert n is not None
        counts[int(n * 10)] += 1
    expected = 10_000
    statistic = sum((c - expected) ** 2 / expected for c in counts)
    # The ids are fixed, so the statistic is a constant; p > 0.001 says the hash spreads them evenly.
    assert chi2_sf(statistic, 9) > 0.001, (counts, statistic)
    ten_way = Counter(assign(seed="uniformity", unit=f"user-{i}", weights=[0.1] * 10) for i in range(100_000))
    assert chi2_sf(sum((ten_way[v] - expected) ** 2 / expected for v in range(10)), 9) > 0.001
