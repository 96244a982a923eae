"""A whole evaluation run, end to end: 200 cases x 3 repeats, concurrency 32, 200 ms model latency.

Unlike `eval_concurrency.py` (the executor alone), this measures what a user waits for: the run is
queued over HTTP, claimed by the in-process worker, every case rendered, called (the `local`
provider sleeping 200 ms), scored and stored, and the summary computed. The ideal wall time is
ceil(600 / 32) x 200 ms = 3.8 s. Usage: `.venv/bin/python bench/eval_run.py [--backend sqlite|postgresql]`.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from promptkeeper.app import create_app
from promptkeeper.config import Settings

KEY = "pk_benchadm_0123456789abcdefghijklmnopqrstuvwxyzABCDEF"
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def settings_for(backend: str, folder: Path) -> Settings:
    if backend == "sqlite":
        url = f"sqlite:///{folder / 'bench.db'}"
    else:
        engine = create_engine(POSTGRES)
        with engine.begin() as connection:
            connection.execute(
                text("DROP SCHEMA IF EXISTS pk_bench_eval CASCADE; CREATE SCHEMA pk_bench_eval")
            )
        engine.dispose()
        url = POSTGRES + "?options=-csearch_path%3Dpk_bench_eval"
    return Settings(database_url=url, admin_key=KEY, admin_key_file=folder / "key", worker_poll_interval=0.05)


def measure(backend: str, cases: int, repeats: int, concurrency: int, latency_ms: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        settings = settings_for(backend, Path(folder))
        with TestClient(create_app(settings), headers={"Authorization": f"Bearer {KEY}"}) as client:
            client.post(
                "/v1/prompts", json={"name": "bench", "content": {"type": "text", "template": "Q{{ n }}"}}
            )
            body = {
                "name": "bench",
                "scorers": [{"name": "exact_match"}, {"name": "length", "params": {"max_chars": 100}}],
                "cases": [{"key": f"c{i}", "variables": {"n": i}, "expected": f"Q{i}"} for i in range(cases)],
            }
            assert client.post("/v1/suites", json=body).status_code == 201
            results = {}
            for label in ("first run", "cached re-run"):
                started = time.perf_counter()
                run = client.post(
                    "/v1/prompts/bench/evaluations",
                    json={
                        "suite": "bench",
                        "repeats": repeats,
                        "concurrency": concurrency,
                        "params": {"local_latency_ms": latency_ms},
                    },
                ).json()
                while run["status"] in ("queued", "running"):
                    time.sleep(0.01)
                    run = client.get(f"/v1/evaluations/{run['id']}").json()
                elapsed = time.perf_counter() - started
                assert run["status"] == "succeeded" and run["done"] == cases * repeats, run
                results[label] = elapsed
            return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=200)
    args = parser.parse_args()
    calls = args.cases * args.repeats
    ideal = math.ceil(calls / args.concurrency) * args.latency_ms / 1000
    print(f"{calls} calls, concurrency {args.concurrency}, {args.latency_ms:g} ms each: ideal {ideal:.2f} s")
    print("| backend | run | wall s | ideal s | wall / ideal |")
    print("|---|---|---:|---:|---:|")
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        results = measure(backend, args.cases, args.repeats, args.concurrency, args.latency_ms)
        for label, elapsed in results.items():
            if label == "first run":
                print(f"| {backend} | {label} | {elapsed:.3f} | {ideal:.2f} | **{elapsed / ideal:.3f}** |")
            else:  # no model call at all: the ideal does not apply
                print(f"| {backend} | {label} | {elapsed:.3f} | | |")


if __name__ == "__main__":
    main()
