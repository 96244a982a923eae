"""SDK cache hit: nanoseconds per `Client.get()` once the prompt is cached, compared in the same run
with MLflow's prompt-registry client (`MlflowClient().load_prompt`) cache hit.

    .venv/bin/python bench/sdk_cache_hit.py [--calls 1000000] [--no-mlflow]

MLflow runs in its own virtualenv (bench/.venv-mlflow, created on first use with the pinned
version below) because its dependency pins would fight ours. Both sides are timed the same way:
batches of 1,000 calls timed with perf_counter_ns, per-call time = batch time / 1,000, and the
percentiles are taken over the batches, so the timer's own cost does not dominate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import ADMIN_KEY, ROOT, database, save, server  # noqa: E402

from promptkeeper import Client  # noqa: E402

MLFLOW_VERSION = "3.17.2"
MLFLOW_VENV = ROOT / "bench" / ".venv-mlflow"
BATCH = 1000

TIMING = """
def measure(call, calls, batch={batch}):
    import time
    for _ in range(batch * 10):
        call()
    per_call = []
    for _ in range(max(1, calls // batch)):
        started = time.perf_counter_ns()
        for _ in range(batch):
            call()
        per_call.append((time.perf_counter_ns() - started) / batch)
    per_call.sort()
    return {"p50_ns": per_call[len(per_call) // 2], "p99_ns": per_call[int(len(per_call) * 0.99) - 1],
            "mean_ns": sum(per_call) / len(per_call), "calls": len(per_call) * batch}
""".replace("{batch}", str(BATCH))

MLFLOW_SCRIPT = (
    TIMING
    + """
import json, os, sys, tempfile
os.environ["MLFLOW_TRACKING_URI"] = "sqlite:///" + tempfile.mkdtemp() + "/mlflow.db"
import logging; logging.disable(logging.WARNING)
import warnings; warnings.simplefilter("ignore")
import mlflow
from mlflow import MlflowClient
mlflow.genai.register_prompt(name="greet", template="Hello {{name}}")
mlflow.genai.set_prompt_alias("greet", alias="production", version=1)
client = MlflowClient()
client.load_prompt("prompts:/greet@production")
print(json.dumps(measure(lambda: client.load_prompt("prompts:/greet@production"), int(sys.argv[1]))))
"""
)


def ensure_mlflow() -> Path:
    python = MLFLOW_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {MLFLOW_VENV} with mlflow=={MLFLOW_VERSION} (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"mlflow=={MLFLOW_VERSION}"], check=True)
    return python


def measure_promptkeeper(calls: int) -> dict[str, float]:
    namespace: dict[str, object] = {}
    exec(TIMING, namespace)  # the same timing code as the MLflow side
    with (
        database("sqlite") as url,
        server({"PROMPTKEEPER_DATABASE_URL": url, "PROMPTKEEPER_ADMIN_KEY": ADMIN_KEY}) as base,
    ):
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        httpx.post(
            f"{base}/v1/prompts",
            headers=headers,
            json={"name": "greet", "content": {"type": "text", "template": "Hello {{ name }}"}},
        ).raise_for_status()
        httpx.post(
            f"{base}/v1/prompts/greet/deployments",
            headers=headers,
            json={"environment": "production", "version": 1},
        ).raise_for_status()
        with Client(base, ADMIN_KEY, snapshot_path=str(Path(tempfile.mkdtemp()) / "snap.json")) as client:
            client.get("greet")
            get = client.get
            result = namespace["measure"](lambda: get("greet"), calls)  # type: ignore[operator]
            direct = []
            for _ in range(20000):
                started = time.perf_counter_ns()
                get("greet")
                direct.append(time.perf_counter_ns() - started)
            assert client.stats["fetches"] == 1, client.stats  # every measured call was a hit
    result["single_call_p50_ns_incl_timer"] = statistics.median(direct)
    return result  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--no-mlflow", action="store_true")
    args = parser.parse_args()
    ours = measure_promptkeeper(args.calls)
    results: dict[str, object] = {"promptkeeper": ours}
    print(
        f"PromptKeeper Client.get() hit: p50 {ours['p50_ns']:.0f} ns, p99 {ours['p99_ns']:.0f} ns "
        f"(single call incl. timer: {ours['single_call_p50_ns_incl_timer']:.0f} ns)"
    )
    if not args.no_mlflow:
        python = ensure_mlflow()
        mlflow_calls = max(BATCH * 20, args.calls // 20)  # MLflow is slower; fewer calls, same batching
        output = subprocess.run(
            [str(python), "-c", MLFLOW_SCRIPT, str(mlflow_calls)], capture_output=True, text=True, check=True
        ).stdout
        theirs = json.loads(output.strip().splitlines()[-1])
        results[f"mlflow_{MLFLOW_VERSION}"] = theirs
        print(
            f"MLflow {MLFLOW_VERSION} MlflowClient().load_prompt hit: p50 {theirs['p50_ns']:.0f} ns, "
            f"p99 {theirs['p99_ns']:.0f} ns"
        )
        print(f"ratio (MLflow / PromptKeeper, p50): {theirs['p50_ns'] / ours['p50_ns']:.1f}x")
    print(f"saved {save('sdk_cache_hit', results)}")


if __name__ == "__main__":
    main()
