/**
 * Deterministic assignment of units to experiment variants: the port of `promptkeeper/core/assignment.py`
 * (itself GrowthBook's bucketing), so that a unit lands in the same variant here, in the Python SDK and on
 * the server without a request. Checked against vectors generated from the Python module
 * (`tests/data/assignment_vectors.json`, `scripts/assignment_vectors.py`).
 *
 * Strings are hashed over UTF-16 code units (`charCodeAt`), which is what the Python module emulates.
 */

const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

export type BucketRange = readonly [number, number];

/** FNV-1a, 32 bits, over the UTF-16 code units of `text`. */
export function fnv1a32(text: string): number {
  let hval = FNV_OFFSET_BASIS;
  for (let i = 0; i < text.length; i++) {
    hval = Math.imul(hval ^ text.charCodeAt(i), FNV_PRIME) >>> 0;
  }
  return hval >>> 0;
}

/** The bucket in [0, 1) of `value` under `seed`, or null for an unknown hash version. */
export function gbHash(seed: string, value: string, version: number): number | null {
  if (version === 2) return (fnv1a32(String(fnv1a32(seed + value))) % 10000) / 10000;
  if (version === 1) return (fnv1a32(value + seed) % 1000) / 1000;
  return null;
}

export function getEqualWeights(count: number): number[] {
  if (count <= 0) return [];
  return new Array<number>(count).fill(1 / count);
}

/** One interval per variation on [0, 1); weights that do not sum to 1 (within 0.01) become equal. */
export function getBucketRanges(count: number, coverage = 1, weights?: readonly number[]): BucketRange[] {
  const clamped = Math.min(Math.max(coverage, 0), 1);
  const equal = getEqualWeights(count);
  let chosen: readonly number[] = weights ?? equal;
  if (chosen.length !== count) chosen = equal;
  let total = 0;
  for (const w of chosen) total += w;
  if (total < 0.99 || total > 1.01) chosen = equal;
  const ranges: BucketRange[] = [];
  let cumulative = 0;
  for (const w of chosen) {
    const start = cumulative;
    cumulative += w;
    ranges.push([start, start + clamped * w]);
  }
  return ranges;
}

export function chooseVariation(n: number, ranges: readonly BucketRange[]): number {
  for (let i = 0; i < ranges.length; i++) {
    const range = ranges[i]!;
    if (range[0] <= n && n < range[1]) return i;
  }
  return -1;
}

/** The variant index for `unit`, or -1 when it is not enrolled (as `core.assignment.assign`). */
export function assign(options: {
  seed: string;
  unit: string;
  weights: readonly number[];
  coverage?: number;
  hashVersion?: number;
}): number {
  const { seed, unit, weights } = options;
  if (weights.length < 2 || !unit) return -1;
  const n = gbHash(seed, unit, options.hashVersion ?? 2);
  if (n === null) return -1;
  return chooseVariation(n, getBucketRanges(weights.length, options.coverage ?? 1, weights));
}
