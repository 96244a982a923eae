"""Render cost of the sandbox on the hot path, the price of rendering out of process instead, and the
time and peak memory of each hostile template of tests/test_render_limits.py.

    .venv/bin/python bench/render_sandbox.py [--renders 20000] [--baseline /path/to/other/checkout]

`--baseline` runs the same ordinary-template measurement with another checkout first on the path
(e.g. a worktree of `main`) and prints the ratio. Renders are timed in batches of 100 by the
thread's CPU time (steadier than wall time on a shared machine; wall time is printed too); the
percentiles are over the batches. The process pool is timed by wall time per round trip, which is
what a caller would wait. Peak memory is the kernel's high-water mark
(`VmHWM`), reset before each hostile render through /proc/self/clear_refs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BATCH = 100
ORDINARY: dict[str, Any] = {
    "type": "chat",
    "messages": [
        {
            "role": "system",
            "content": "You are a support agent for {{ product }}.{% if tier == 'premium' %} Offer a call"
            " back.{% endif %}\n{% for ex in examples %}Q: {{ ex.q|trim }}\nA: {{ ex.a }}\n{% endfor %}"
            "Reply in {{ language|default('English')|title }}, at most {{ '%d'|format(limit) }} words.",
        },
        {"role": "user", "content": "{{ question }}{% if tags %} [{{ tags|join(', ') }}]{% endif %}"},
    ],
    "examples": [{"q": f" question {i} ", "a": f"answer {i}"} for i in range(3)],
}
VARIABLES = {
    "product": "Acme",
    "tier": "premium",
    "limit": 120,
    "question": "Where is my order?",
    "tags": ["a", "b"],
}


def ordinary_p50(renders: int) -> dict[str, float]:
    """Microseconds per render of `ORDINARY` (the parse is cached, as it is for a live version)."""
    from promptkeeper.core.templates import render_content

    render_content(ORDINARY, VARIABLES)
    batches, walls = [], []
    for _ in range(max(renders // BATCH, 1)):
        started, wall = time.thread_time_ns(), time.perf_counter_ns()
        for _ in range(BATCH):
            render_content(ORDINARY, VARIABLES)
        batches.append((time.thread_time_ns() - started) / BATCH / 1000)
        walls.append((time.perf_counter_ns() - wall) / BATCH / 1000)
    batches.sort()
    return {
        "p50_us": statistics.median(batches),
        "p99_us": batches[int(len(batches) * 0.99) - 1],
        "wall_p50_us": statistics.median(walls),
    }


def _render_once(_: int) -> Any:
    from promptkeeper.core.templates import render_content

    return render_content(ORDINARY, VARIABLES)


def _nothing(_: int) -> None:
    return None


def out_of_process_p50(renders: int) -> tuple[float, float]:
    """Wall microseconds per round trip through a warm one-process pool, rendering and doing nothing:
    the floor of sandboxing by process (a killed worker must also be replaced, which costs more)."""
    with ProcessPoolExecutor(1) as pool:
        out = []
        for function in (_render_once, _nothing):
            pool.submit(function, 0).result()
            times = []
            for i in range(renders):
                started = time.perf_counter_ns()
                pool.submit(function, i).result()
                times.append((time.perf_counter_ns() - started) / 1000)
            out.append(statistics.median(times))
    return out[0], out[1]


def _memory(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def hostile_table() -> list[tuple[str, float, float, str]]:
    sys.path.insert(0, str(ROOT))
    from promptkeeper.core.templates import TemplateError, render_content
    from tests.test_render_limits import HOSTILE, S

    rows = []
    for template, _ in HOSTILE:
        Path("/proc/self/clear_refs").write_text("5")
        before = _memory("VmRSS")
        started = time.monotonic()
        try:
            render_content({"type": "text", "template": template}, {})
            outcome = "rendered!"
        except TemplateError as exc:
            outcome = exc.message
        elapsed = time.monotonic() - started
        rows.append((template.replace(S, "S:"), elapsed, _memory("VmHWM") - before, outcome))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=20_000)
    parser.add_argument("--baseline", type=Path, help="another checkout to compare the ordinary render with")
    parser.add_argument("--ordinary-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ordinary_only:
        print(json.dumps(ordinary_p50(args.renders)))
        return
    here = ordinary_p50(args.renders)
    print(
        f"ordinary render, this checkout: CPU p50 {here['p50_us']:.1f} us, p99 {here['p99_us']:.1f} us"
        f" (wall p50 {here['wall_p50_us']:.1f} us)"
    )
    if args.baseline is not None:
        env = {**os.environ, "PYTHONPATH": str(args.baseline)}
        command = [sys.executable, __file__, "--ordinary-only", "--renders", str(args.renders)]
        out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
        base = json.loads(out.strip().splitlines()[-1])
        ratio = here["p50_us"] / base["p50_us"]
        print(
            f"ordinary render, {args.baseline}: CPU p50 {base['p50_us']:.1f} us, p99 {base['p99_us']:.1f} us"
        )
        print(f"ratio (this / baseline, CPU p50): {ratio:.2f}")
    pooled, empty = out_of_process_p50(min(args.renders, 2000))
    print(f"out of process (warm 1-process pool): render round trip wall p50 {pooled:.1f} us,")
    print(f"    round trip doing nothing {empty:.1f} us (the least it adds to every render)")
    print(f"\n{'seconds':>8} {'peak MB':>8}  template -> error")
    for template, elapsed, grown, outcome in hostile_table():
        print(f"{elapsed:8.3f} {grown:8.1f}  {template[:70]} -> {outcome[:60]}")


if __name__ == "__main__":
    main()
