"""Bandit simulation: mean cumulative regret of Thompson sampling, UCB1 and a fixed 50/50 split.

Two arms with true conversion rates 0.10 and 0.12, 10,000 pulls per run, 1,000 seeded runs (run i
uses `random.Random(i)`). Each pull asks the product's own allocation functions (`core.bandits`)
for the weights given the counts so far and draws the arm from them: Thompson with one posterior
draw per pull (classic Thompson sampling), UCB1 (exploration 2), and the uniform split as the
baseline. Regret is the pseudo-regret sum over pulls of (0.12 - rate of the arm pulled).

Usage: .venv/bin/python bench/bandit_regret.py [--runs 1000] [--pulls 10000] [--processes 2]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from multiprocessing import Pool
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import save  # noqa: E402
from promptkeeper.core.bandits import thompson_weights, ucb1_weights  # noqa: E402

RATES = (0.10, 0.12)
BEST = max(RATES)


def _choose(weights: list[float], rng: random.Random) -> int:
    return 0 if rng.random() < weights[0] else 1


def simulate(policy: str, seed: int, pulls: int) -> float:
    rng = random.Random(seed)
    successes, trials = [0, 0], [0, 0]
    regret = 0.0
    for _ in range(pulls):
        if policy == "thompson":
            failures = [n - s for s, n in zip(successes, trials, strict=True)]
            arm = _choose(thompson_weights(successes, failures, draws=1, rng=rng), rng)
        elif policy == "ucb":
            arm = _choose(ucb1_weights(successes, trials), rng)
        else:
            arm = _choose([0.5, 0.5], rng)
        trials[arm] += 1
        successes[arm] += rng.random() < RATES[arm]
        regret += BEST - RATES[arm]
    return regret


def _task(args: tuple[str, int, int]) -> float:
    return simulate(*args)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1_000)
    parser.add_argument("--pulls", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, object] = {"runs": args.runs, "pulls": args.pulls, "rates": RATES}
    expected = {"thompson": "20-32", "ucb": "65-73", "uniform": "100"}
    with Pool(args.processes) as pool:
        for policy in ("uniform", "thompson", "ucb"):
            started = time.perf_counter()
            regrets = pool.map(_task, [(policy, seed, args.pulls) for seed in range(args.runs)], chunksize=10)
            mean = statistics.fmean(regrets)
            error = statistics.stdev(regrets) / len(regrets) ** 0.5 if len(regrets) > 1 else 0.0
            results[policy] = {"mean_regret": mean, "standard_error": error}
            print(
                f"{policy:9} mean cumulative regret {mean:7.2f} +- {error:5.2f} "
                f"(expected band {expected[policy]}), {time.perf_counter() - started:.0f} s"
            )
    uniform = results["uniform"]["mean_regret"]  # type: ignore[index]
    for policy in ("thompson", "ucb"):
        print(f"{policy} / uniform regret ratio: {results[policy]['mean_regret'] / uniform:.2f}")  # type: ignore[index]
    print(f"saved {save('bandit-regret', results)}")


if __name__ == "__main__":
    main()
