"""Evaluation runs: wall time of `run_calls` against a provider with a fixed latency, against the ideal.

    .venv/bin/python bench/eval_concurrency.py [--cases 200] [--repeats 3] [--concurrency 32] \\
        [--latency-ms 200]

Cases × repeats calls at the given concurrency; the ideal wall time is ceil(calls / concurrency) ×
latency (every slot busy all the time, no overhead). Measured against

- `local`: the deterministic provider sleeping `local_latency_ms` (the executor's own overhead), and
- `openai` and `anthropic`: the real SDK clients (streaming, usage) against tests/fake_llm.py answering
  after the latency, served by uvicorn in its own process (pinned to CPU 1 on a machine with 2+ CPUs,
  this process to CPU 0), so the server never competes for the client's event loop.

Each is run a second time with the same response cache: no provider call at all.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import HAS_TASKSET, ROOT, free_port, save  # noqa: E402

from promptkeeper.evaluations.providers import (  # noqa: E402
    Call,
    MemoryCache,
    Provider,
    ProviderRequest,
    ProviderSettings,
    get_provider,
    run_calls,
)

TOLERANCE = 0.15


@dataclass
class Result:
    case: str
    calls: int
    provider_calls: int
    errors: int
    wall_s: float
    ideal_s: float

    @property
    def ratio(self) -> float:
        return self.wall_s / self.ideal_s if self.ideal_s else math.inf


def make_calls(cases: int, repeats: int, params: dict[str, Any]) -> list[Call]:
    return [
        Call(
            key=(case, repeat),
            request=ProviderRequest(
                model="bench-model",
                messages=[
                    {"role": "system", "content": "Answer in one short sentence."},
                    {"role": "user", "content": f"Case {case}: what is {case} plus {case}?"},
                ],
                params={"temperature": 0, **params},
            ),
            repeat=repeat,
        )
        for case in range(cases)
        for repeat in range(repeats)
    ]


def measure(
    label: str, provider: Provider, calls: list[Call], cache: MemoryCache, concurrency: int, ideal_s: float
) -> Result:
    async def scenario() -> tuple[float, list[Any]]:
        started = time.perf_counter()
        outcomes = await run_calls(
            provider, calls, concurrency=concurrency, timeout=30, max_retries=3, retry_base=0.5, cache=cache
        )
        wall = time.perf_counter() - started
        aclose = getattr(provider, "aclose", None)
        if aclose is not None:
            await aclose()
        return wall, outcomes

    wall, outcomes = asyncio.run(scenario())
    return Result(
        case=label,
        calls=len(calls),
        provider_calls=sum(o.attempts for o in outcomes),
        errors=sum(1 for o in outcomes if o.error),
        wall_s=wall,
        ideal_s=ideal_s,
    )


def fake_server(latency_ms: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "tests.fake_llm", "--port", str(port), "--latency-ms", str(latency_ms)]
    if HAS_TASKSET:
        command = ["taskset", "-c", "1", *command]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"fake LLM server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("fake LLM server did not start")
        time.sleep(0.1)


def header() -> str:
    return (
        f"{'case':34} {'calls':>6} {'provider':>8} {'errors':>6} {'wall s':>7} {'ideal s':>7}"
        f" {'ratio':>6} {'≤ +15%':>6}"
    )


def row(result: Result, *, judged: bool) -> str:
    verdict = ("yes" if result.ratio <= 1 + TOLERANCE else "NO") if judged else ""
    ideal = f"{result.ideal_s:7.2f}" if judged else f"{'':>7}"
    ratio = f"{result.ratio:6.3f}" if judged else f"{'':>6}"
    return (
        f"{result.case:34} {result.calls:6d} {result.provider_calls:8d} {result.errors:6d}"
        f" {result.wall_s:7.3f} {ideal} {ratio} {verdict:>6}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=200)
    args = parser.parse_args()
    if HAS_TASKSET:
        os.sched_setaffinity(0, {0})

    total = args.cases * args.repeats
    ideal = math.ceil(total / args.concurrency) * args.latency_ms / 1000
    print(
        f"{args.cases} cases x {args.repeats} repeats = {total} calls, concurrency {args.concurrency},"
        f" latency {args.latency_ms:g} ms: ideal ceil({total}/{args.concurrency}) x {args.latency_ms:g} ms"
        f" = {ideal:.2f} s"
    )
    print(header())
    results: list[Result] = []

    local = get_provider("local", ProviderSettings())
    calls = make_calls(args.cases, args.repeats, {"local_latency_ms": args.latency_ms})
    cache = MemoryCache()
    for label, judged in (("local", True), ("local, cached re-run", False)):
        results.append(measure(label, local, calls, cache, args.concurrency, ideal))
        print(row(results[-1], judged=judged), flush=True)

    process, url = fake_server(args.latency_ms)
    settings = ProviderSettings(
        openai_base_url=f"{url}/v1",
        openai_api_key="sk-bench",
        anthropic_base_url=url,
        anthropic_api_key="sk-bench",
    )
    try:
        for name in ("openai", "anthropic"):
            provider = get_provider(name, settings)
            calls = make_calls(args.cases, args.repeats, {})
            cache = MemoryCache()
            for label, judged in ((f"{name} client -> fake server", True), (f"{name}, cached re-run", False)):
                before = httpx.get(f"{url}/stats").json()["requests"]
                results.append(measure(label, provider, calls, cache, args.concurrency, ideal))
                stats = httpx.get(f"{url}/stats").json()
                print(row(results[-1], judged=judged), flush=True)
                print(f"{'':4}(the server saw {stats['requests'] - before} requests)")
        print(f"at most {stats['max_in_flight']} requests were in flight at the server")
    finally:
        process.terminate()
        process.wait(timeout=10)

    path = save("eval_concurrency", {"args": vars(args), "ideal_s": ideal, "results": results})
    print(f"saved {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
