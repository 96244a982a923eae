"""Propagation: from a rollback's HTTP response to every server instance and every subscribed SDK
serving the new version.

    .venv/bin/python bench/propagation.py [--instances 4] [--rounds 200]

PostgreSQL + Redis (pub/sub and L2), N `promptkeeper serve` processes with a 10-minute cache TTL,
and N SDK clients (in this process), each subscribed to a different instance. Each round toggles
`production` between two versions (deploy, then rollback, ...) through instance 0 and, as soon as the
HTTP response arrives, watches all instances (a resolve every ~1 ms each) and all SDKs (their
in-memory cache) until each serves the new version. Reported: p50/p99/max over rounds of the time
until *all* of them serve it, and per kind. Everything shares the machine's CPUs with the watchers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import ADMIN_KEY, database, save, server  # noqa: E402

from promptkeeper import Client  # noqa: E402

REDIS_URL = os.environ.get("PROMPTKEEPER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def watch_instance(http: httpx.Client, target: int, started: float, out: list[float]) -> None:
    while True:
        if http.get("/v1/resolve/p").json()["version"] == target:
            out.append(time.perf_counter() - started)
            return
        time.sleep(0.001)


def watch_sdk(client: Client, target: int, started: float, out: list[float]) -> None:
    while client.get("p").version != target:
        time.sleep(0.0002)
    out.append(time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with database("postgresql") as url:
        env = {
            "PROMPTKEEPER_DATABASE_URL": url,
            "PROMPTKEEPER_ADMIN_KEY": ADMIN_KEY,
            "PROMPTKEEPER_REDIS_URL": REDIS_URL,
            "PROMPTKEEPER_REDIS_PREFIX": f"pkbench-{uuid.uuid4().hex[:8]}",
            "PROMPTKEEPER_CACHE_L1_TTL": "600",
        }
        contexts = [server(env, cpu=None) for _ in range(args.instances)]
        urls = [context.__enter__() for context in contexts]
        try:
            with httpx.Client(base_url=urls[0], headers=AUTH, timeout=10) as http:
                http.post(
                    "/v1/prompts", json={"name": "p", "content": {"type": "text", "template": "one"}}
                ).raise_for_status()
                http.post(
                    "/v1/prompts/p/versions", json={"content": {"type": "text", "template": "two"}}
                ).raise_for_status()
                http.post(
                    "/v1/prompts/p/deployments", json={"environment": "production", "version": 1}
                ).raise_for_status()
                clients = [Client(u, ADMIN_KEY, cache_ttl=600) for u in urls]
                for client in clients:
                    assert client.get("p").version == 1
                deadline = time.monotonic() + 10
                while not all(c.stream_connected for c in clients):
                    if time.monotonic() > deadline:
                        raise SystemExit("SDK streams did not connect")
                    time.sleep(0.01)
                watchers = [httpx.Client(base_url=u, headers=AUTH, timeout=5) for u in urls]
                for watcher in watchers:  # warm every instance's cache and the watchers' connections
                    watcher.get("/v1/resolve/p").raise_for_status()
                all_served: list[float] = []
                instances: list[float] = []
                sdks: list[float] = []
                current = 1
                for round_number in range(args.rounds):
                    target = 2 if current == 1 else 1
                    if round_number % 2 == 0:
                        response = http.post(
                            "/v1/prompts/p/deployments", json={"environment": "production", "version": target}
                        )
                    else:
                        response = http.post("/v1/prompts/p/rollback", json={"environment": "production"})
                    started = time.perf_counter()
                    response.raise_for_status()
                    assert response.json()["version"] == target
                    round_instances: list[float] = []
                    round_sdks: list[float] = []
                    threads = [
                        threading.Thread(target=watch_instance, args=(w, target, started, round_instances))
                        for w in watchers
                    ] + [
                        threading.Thread(target=watch_sdk, args=(c, target, started, round_sdks))
                        for c in clients
                    ]
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join(timeout=30)
                    if len(round_instances) != len(urls) or len(round_sdks) != len(clients):
                        raise SystemExit(f"round {round_number}: not everyone saw v{target} within 30 s")
                    instances.extend(round_instances)
                    sdks.extend(round_sdks)
                    all_served.append(max(round_instances + round_sdks))
                    current = target
                    time.sleep(0.02)
                for client in clients:
                    client.close()
                for watcher in watchers:
                    watcher.close()
        finally:
            for context in contexts:
                context.__exit__(None, None, None)
    ms = lambda values, q: percentile(values, q) * 1000  # noqa: E731
    print(f"{args.instances} instances, {args.instances} SDK subscribers, {args.rounds} deploys/rollbacks")
    print(f"{'':28} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for label, values in (
        ("all serve the new version", all_served),
        ("each instance", instances),
        ("each SDK", sdks),
    ):
        print(f"{label:28} {ms(values, 0.5):8.1f} {ms(values, 0.99):8.1f} {max(values) * 1000:8.1f}")
    results = {
        "instances": args.instances,
        "rounds": args.rounds,
        "all_p50_ms": ms(all_served, 0.5),
        "all_p99_ms": ms(all_served, 0.99),
        "all_max_ms": max(all_served) * 1000,
        "instance_p50_ms": ms(instances, 0.5),
        "instance_p99_ms": ms(instances, 0.99),
        "sdk_p50_ms": ms(sdks, 0.5),
        "sdk_p99_ms": ms(sdks, 0.99),
        "mean_all_ms": statistics.mean(all_served) * 1000,
    }
    print(f"saved {save('propagation', results)}")


if __name__ == "__main__":
    main()
