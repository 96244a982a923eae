"""Deterministic assignment of units (users, sessions, requests) to experiment variants.

A port of GrowthBook's published bucketing (`packages/sdk-js/src/util.ts` in `growthbook/growthbook`;
the Python SDK's `growthbook/core.py` is the same algorithm). Matching it bit for bit is the point: a
unit hashed by the PromptKeeper server, by our SDK or by any GrowthBook SDK lands in the same variant,
so assignments can be computed anywhere without a round trip or a stored table. The tests replay
GrowthBook's cross-SDK cases (`tests/data/growthbook_cases.json`) against this module.

Pipeline: `gb_hash(seed, unit, version)` maps a unit to a bucket `n` in [0, 1) (steps of 1/10000 for
version 2, 1/1000 for the legacy version 1); `get_bucket_ranges` lays the variants out as intervals on
[0, 1); `choose_variation` returns the variant whose interval holds `n`, or -1. `assign` chains the three.

Strings are hashed as JavaScript does, over UTF-16 code units (`charCodeAt`), not UTF-8 bytes: that is
what GrowthBook's reference SDK does, and the Python SDK (`ord` per code point) agrees with it for every
character outside the astral planes. UTF-8 would disagree with both SDKs for any non-ASCII unit or seed.

Pure: standard library only, no I/O, no state. Invalid weights or coverage are repaired the way the SDKs
repair them (equal weights; coverage clamped to [0, 1]) rather than raised, so that we never assign
differently from a GrowthBook SDK given the same configuration.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

__all__ = [
    "BucketRange",
    "assign",
    "choose_variation",
    "fnv1a32",
    "gb_hash",
    "get_bucket_ranges",
    "get_equal_weights",
    "in_range",
]

BucketRange = tuple[float, float]
"""A half-open interval `[start, end)` of buckets."""

_FNV_OFFSET_BASIS = 0x811C9DC5
_FNV_PRIME = 0x01000193
_UINT32 = 0xFFFFFFFF

# GrowthBook accepts weights whose sum is within this band and falls back to equal weights otherwise.
_MIN_TOTAL_WEIGHT = 0.99
_MAX_TOTAL_WEIGHT = 1.01


def _utf16_code_units(text: str) -> Sequence[int]:
    """The values JavaScript's `charCodeAt` yields, so astral characters count as two surrogates."""
    if text.isascii():
        return text.encode("ascii")
    # surrogatepass: a lone surrogate in a Python string is one code unit in JavaScript too.
    data = text.encode("utf-16-le", "surrogatepass")
    return struct.unpack(f"<{len(data) // 2}H", data)


def fnv1a32(text: str) -> int:
    """FNV-1a, 32 bits, over the UTF-16 code units of `text` (GrowthBook's `hashFnv32a`).

    For ASCII this is standard FNV-1a over the bytes; see the module docstring for why it is not UTF-8.
    """
    hval = _FNV_OFFSET_BASIS
    for unit in _utf16_code_units(text):
        hval = ((hval ^ unit) * _FNV_PRIME) & _UINT32
    return hval


def gb_hash(seed: str, value: str, version: int) -> float | None:
    """GrowthBook's `hash`: the bucket in [0, 1) of `value` under `seed`, or None for an unknown version.

    Version 2 hashes twice (the second pass over the decimal digits of the first) and keeps 10,000
    buckets; it replaced version 1, which hashes `value + seed` once into 1,000 buckets and is biased
    (GrowthBook keeps it only so that old experiments keep their assignments).
    """
    if version == 2:
        return (fnv1a32(str(fnv1a32(seed + value))) % 10000) / 10000
    if version == 1:
        return (fnv1a32(value + seed) % 1000) / 1000
    return None


def get_equal_weights(num_variations: int) -> list[float]:
    """`num_variations` equal weights summing to 1; empty for zero or fewer variations."""
    if num_variations <= 0:
        return []
    return [1 / num_variations] * num_variations


def get_bucket_ranges(
    num_variations: int, coverage: float = 1.0, weights: Sequence[float] | None = None
) -> list[BucketRange]:
    """GrowthBook's `getBucketRanges`: one interval per variation, laid out in order on [0, 1).

    Variation i owns the slot `[w_0 + ... + w_{i-1}, w_0 + ... + w_i)` and is assigned only the first
    `coverage` fraction of it, so lowering coverage excludes units without moving anyone between variants.
    Coverage is clamped to [0, 1]; weights of the wrong length, or not summing to 1 within 0.01, are
    replaced with equal weights. The arithmetic (left-to-right sums, no rounding) is the SDK's, so the
    interval ends are the same floats the JavaScript computes.
    """
    coverage = min(max(coverage, 0.0), 1.0)
    equal = get_equal_weights(num_variations)
    chosen: Sequence[float] = equal if weights is None else weights
    if len(chosen) != num_variations:
        chosen = equal
    total = 0.0
    for weight in chosen:
        total += weight
    if total < _MIN_TOTAL_WEIGHT or total > _MAX_TOTAL_WEIGHT:
        chosen = equal

    ranges: list[BucketRange] = []
    cumulative = 0.0
    for weight in chosen:
        start = cumulative
        cumulative += weight
        ranges.append((start, start + coverage * weight))
    return ranges


def in_range(n: float, bucket_range: BucketRange) -> bool:
    """Whether bucket `n` lies in the half-open interval `[start, end)`."""
    return bucket_range[0] <= n < bucket_range[1]


def choose_variation(n: float, ranges: Sequence[BucketRange]) -> int:
    """The index of the first range holding `n`, or -1 when none does (the unit is not in the experiment).

    First, not only: a zero-width range never holds anything, so an emptied variant is skipped.
    """
    for index, bucket_range in enumerate(ranges):
        if in_range(n, bucket_range):
            return index
    return -1


def assign(
    *, seed: str, unit: str, weights: Sequence[float], coverage: float = 1.0, hash_version: int = 2
) -> int:
    """The variant index for `unit` in the experiment identified by `seed`, or -1 when it is not enrolled.

    -1 also when, as in GrowthBook's `run`, there are fewer than two variants, the unit is empty, or the
    hash version is unknown. The properties experiments rely on:

    * Pure function of its arguments: no randomness and no state, so the server and every SDK agree, and
      a unit keeps its variant across requests without anything stored.
    * Different seeds are independent: a unit's bucket under one seed says nothing about its bucket under
      another (tested: the joint distribution over 10,000 units matches the product of the marginals).
      The seed is concatenated with the unit before hashing, so use seeds that are opaque ids.
    * Raising a variant's weight only moves units into it, at full coverage. The unit's bucket `n` does
      not depend on the weights, and the variants sit side by side in order: variant i owns
      `[W_i, W_i + w_i)`, where W_i is the sum of the weights before it. Raising `w_i` while taking the
      weight from its neighbours (always the case with two variants) moves its left edge down and its right
      edge up and leaves every other edge in place, so its old interval is inside its new one and every
      unit that changes variant changes into i. Taking weight from a variant further away shifts the
      edges in between and reshuffles units among the other variants. Below full coverage only the first
      `coverage * w_i` of each slot is used, so the covered part of a widened slot can move away from
      units it held; raising coverage itself, with fixed weights, only adds units.
    """
    if len(weights) < 2 or not unit:
        return -1
    n = gb_hash(seed, unit, hash_version)
    if n is None:
        return -1
    return choose_variation(n, get_bucket_ranges(len(weights), coverage, weights))
