"""Online monitoring: ingestion and scoring throughput, detection latency and false alarms.

1. Ingestion: `promptkeeper serve` in a subprocess (CPU 0, no in-process worker) receives
   generation records over HTTP in batches of 1,000 (`--sample-rate` of them queued for scoring).
2. Scoring: one `MonitorScorer` in this process claims, scores (json_valid, length, not_contains:
   heuristic scorers) and stores every sampled record, with a look after each batch. Baseline, in
   the same run: the same scorers on the same outputs in memory (no database): the cost of the
   scorers themselves.
3. Detection, simulated with the monitor's own decision code (`core.monitor_decisions`, same rule and
   defaults as the test: window 1,000, looks every 100, three in a row, margins 0 / 0.03, drift
   of the latest window against the first):
   `--deployments` deployments of a version whose pass rate drops from 98% to 90% give the
   latency in sampled records (and seconds at `--traffic` requests/s and the sample rate); as many
   deployments with no drop (98% vs 98%, 50 windows each) give the false-alarm rate.
4. One real closed loop through the database (SQLite or PostgreSQL): v1 at 98%, then v2 at 90%,
   until the automatic rollback; the sampled records it took and the wall time of the processing.
5. Judge cost: `--judge-records` sampled records with an `llm_judge` rule, judged by an
   OpenAI-compatible server (`tests.fake_llm`) answering after `--judge-latency-ms` (500), by two
   workers with the default lease, batch and judge rate: judge calls per sampled record (1.00:
   no record judged twice).

Usage: .venv/bin/python bench/monitoring.py [--backend postgresql|sqlite] [--records 100000]
       [--sample-rate 0.1] [--deployments 200] [--traffic 50] [--judge-records 200]
       [--judge-latency-ms 500] [--only-judge]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import ADMIN_KEY, database, save, server  # noqa: E402
from promptkeeper.config import Settings  # noqa: E402
from promptkeeper.core import monitor_decisions as detection
from promptkeeper.core import scorers as scoring  # noqa: E402
from promptkeeper.db.engine import Database  # noqa: E402
from promptkeeper.monitoring.looks import EVIDENCE_WINDOWS  # noqa: E402
from promptkeeper.monitoring.scoring import MonitorScorer  # noqa: E402

ENV = "production"
BATCH = 1_000
RULES = [
    {"scorer": "json_valid"},
    {"scorer": "length", "params": {"max_chars": 400}},
    {"scorer": "not_contains", "name": "safety", "params": {"values": ["UNSAFE"]}, "critical_margin": 0.03},
]
WINDOW, MIN_SAMPLE, EVERY, CONSECUTIVE = 1000, 200, 100, 3


def _output(rng: random.Random, fail_rate: float) -> str:
    words = " ".join(rng.choice(["alpha", "beta", "gamma", "delta"]) for _ in range(rng.randint(5, 40)))
    note = "UNSAFE " if rng.random() < fail_rate else ""
    return f'{{"answer": "{note}{words}", "confidence": {rng.random():.2f}}}'


def _http(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=120)


def _setup(http: httpx.Client, name: str, sample_rate: float, **monitor: Any) -> int:
    http.post("/v1/prompts", json={"name": name, "content": {"type": "text", "template": "A {{ q }}"}})
    http.post(
        f"/v1/prompts/{name.replace('/', '%2F')}/versions",
        json={"content": {"type": "text", "template": "B {{ q }}"}},
    )
    http.post(f"/v1/prompts/{name.replace('/', '%2F')}/deployments", json={"environment": ENV, "version": 1})
    created = http.post(
        "/v1/monitors",
        json={"prompt": name, "environment": ENV, "sample_rate": sample_rate, "scorers": RULES, **monitor},
    )
    created.raise_for_status()
    return int(created.json()["id"])


def _send(
    http: httpx.Client, name: str, version: int, start: int, count: int, fail_rate: float, rng: random.Random
) -> None:
    events = [
        {
            "type": "generation",
            "request_id": f"{name}-{start + i}",
            "prompt": name,
            "version": version,
            "environment": ENV,
            "output": _output(rng, fail_rate),
            "latency_ms": 300.0,
        }
        for i in range(count)
    ]
    http.post("/v1/events", json={"events": events}).raise_for_status()


def throughput(base: str, url: str, records: int, sample_rate: float) -> dict[str, float]:
    http = _http(base)
    _setup(http, "bench/mon", sample_rate)
    rng = random.Random(1)
    started = time.perf_counter()
    for start in range(0, records, BATCH):
        _send(http, "bench/mon", 1, start, min(BATCH, records - start), 0.02, rng)
    ingest_s = time.perf_counter() - started
    http.close()

    settings = Settings(database_url=url, worker_in_process=False)
    db = Database(settings)
    try:
        worker = MonitorScorer(db, settings, "bench")
        started = time.perf_counter()
        while worker.step():
            pass
        score_s = time.perf_counter() - started
        scored = worker.scored
    finally:
        db.dispose()

    rng = random.Random(2)
    outputs = [_output(rng, 0.02) for _ in range(min(scored, 20_000))]
    started = time.perf_counter()
    for output in outputs:
        data = scoring.ScoreInput(output=output)
        for rule in RULES:
            scoring.score(rule["scorer"], data, rule.get("params"))  # type: ignore[arg-type]
    memory_s = (time.perf_counter() - started) * scored / max(1, len(outputs))
    return {
        "records": records,
        "ingest_records_per_s": records / ingest_s,
        "sampled": scored,
        "scored_per_s_per_worker": scored / score_s,
        "scorers_only_per_s": scored / memory_s,
        "ratio_to_scorers_only": (scored / score_s) / (scored / memory_s),
    }


def _window(passed: list[bool]) -> detection.Window:
    return detection.Window([1.0 if p else 0.0 for p in passed], passed)


def _deployment(
    rng: random.Random, before: float, after: float, looks: int, acts_on: tuple[str, ...]
) -> int | None:
    """Sampled records of the new version until the monitor's acting level is in `acts_on`
    (critical: a rollback; warning or critical: any alert), or None within `looks` looks."""
    rule = detection.Rule("safety", warning_margin=0.0, critical_margin=0.03)
    baseline = _window([rng.random() < before for _ in range(WINDOW)])
    stream: list[bool] = []
    prefix = [0]  # passes among the first i records, so a look's evidence is counted in O(1)
    levels: list[str] = []
    for look in range(1, looks + 1):
        target = MIN_SAMPLE + (look - 1) * EVERY
        while len(stream) < target:
            stream.append(rng.random() < after)
            prefix.append(prefix[-1] + stream[-1])
        start = max(0, len(stream) - WINDOW * EVIDENCE_WINDOWS)  # what a look reads, as in monitoring
        evidence = detection.Window.counts(prefix[-1] - prefix[start], len(stream) - start)
        reference = _window(stream[:WINDOW]) if len(stream) >= 2 * WINDOW else None
        finding = detection.judge(
            rule, evidence, baseline, look=look, reference=reference, recent=_window(stream[-WINDOW:])
        )
        levels.append(finding.level)
        if detection.acting_level(levels, CONSECUTIVE) in acts_on:
            return len(stream)
    return None


def simulate(deployments: int, traffic: float, sample_rate: float) -> dict[str, float]:
    rng = random.Random(7)
    latencies = [_deployment(rng, 0.98, 0.90, 200, ("critical",)) for _ in range(deployments)]
    caught = sorted(x for x in latencies if x is not None)
    looks_per_run = (50 * WINDOW - MIN_SAMPLE) // EVERY + 1  # 50 windows of sampled records
    alarms = sum(
        1
        for _ in range(deployments)
        if _deployment(rng, 0.98, 0.98, looks_per_run, ("warning", "critical")) is not None
    )
    per_second = traffic * sample_rate
    return {
        "deployments": deployments,
        "detected_share": len(caught) / deployments,
        "latency_records_median": statistics.median(caught),
        "latency_records_p90": caught[int(0.9 * (len(caught) - 1))],
        "latency_records_max": caught[-1],
        "latency_s_median_at_traffic": statistics.median(caught) / per_second,
        "latency_s_p90_at_traffic": caught[int(0.9 * (len(caught) - 1))] / per_second,
        "false_alarm_deployments": alarms,
        "false_alarm_rate": alarms / deployments,
        "traffic_per_s": traffic,
    }


def closed_loop(base: str, url: str) -> dict[str, float]:
    http = _http(base)
    monitor = _setup(http, "bench/loop", 0.25, auto_rollback=True, consecutive=CONSECUTIVE)
    settings = Settings(database_url=url, worker_in_process=False)
    db = Database(settings)
    rng = random.Random(20261124)
    sent = 0
    try:
        worker = MonitorScorer(db, settings, "bench-loop")
        for _ in range(8):
            _send(http, "bench/loop", 1, sent, 500, 0.02, rng)
            sent += 500
            while worker.step():
                pass
        http.post(
            "/v1/prompts/bench%2Floop/deployments", json={"environment": ENV, "version": 2}
        ).raise_for_status()
        before = worker.scored
        started = time.perf_counter()
        while http.get("/v1/resolve/bench%2Floop", params={"environment": ENV}).json()["version"] == 2:
            _send(http, "bench/loop", 2, sent, 100, 0.10, rng)
            sent += 100
            while worker.step():
                pass
        seconds = time.perf_counter() - started
        alerts = http.get(f"/v1/monitors/{monitor}/alerts").json()["items"]
        critical = next(a for a in alerts if a["level"] == "critical")
        return {
            "sampled_records_at_decision": critical["evidence"]["windows"]["current"]["n"],
            "sampled_records_until_server_served_v1": worker.scored - before,
            "processing_s": seconds,
            "alerts": len(alerts),
        }
    finally:
        db.dispose()
        http.close()


def judge_cost(url: str, records: int, latency_ms: float) -> dict[str, float]:
    """Two workers (threads, the default lease, batch and judge rate) judge `records` sampled
    records with a judge that answers after `latency_ms`; the calls it received, per record. The
    API runs in this process (the records are set up through it; the workers are what is measured)."""
    import threading

    from fastapi.testclient import TestClient

    from promptkeeper.app import create_app
    from tests.fake_llm import FakeLLM

    api = Settings(database_url=url, admin_key=ADMIN_KEY, worker_in_process=False)
    http = TestClient(create_app(api), headers={"Authorization": f"Bearer {ADMIN_KEY}"}).__enter__()
    with FakeLLM(reply=lambda messages: '{"score": 5, "reasoning": "fine"}', latency_ms=latency_ms) as llm:
        judge = {"scorer": "llm_judge", "params": {"rubric": "Is it right?"}}
        _setup(http, "bench/judge", 1.0, scorers=[judge], judge_provider="openai", judge_model="gpt-4o-mini")
        _send(http, "bench/judge", 1, 0, records, 0.0, random.Random(3))
        settings = Settings(
            database_url=url,
            worker_in_process=False,
            openai_base_url=llm.openai_base_url,
            openai_api_key="sk",
        )
        db = Database(settings)
        try:
            workers = [MonitorScorer(db, settings, f"bench-judge-{i}") for i in range(2)]
            started = time.perf_counter()

            def drain(worker: MonitorScorer) -> None:
                while worker.step():
                    pass

            threads = [threading.Thread(target=drain, args=(w,)) for w in workers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - started
            scored = sum(w.scored for w in workers)
        finally:
            db.dispose()
            http.__exit__(None, None, None)
        return {
            "records": records,
            "scored": scored,
            "judge_calls": llm.requests,
            "calls_per_record": llm.requests / max(1, scored),
            "seconds": seconds,
            "lease_s": settings.worker_lease,
            "batch": settings.monitor_batch,
            "judge_rate": settings.monitor_judge_rate,
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--sample-rate", type=float, default=0.1)
    parser.add_argument("--deployments", type=int, default=200)
    parser.add_argument("--traffic", type=float, default=50.0, help="production requests per second")
    parser.add_argument("--judge-records", type=int, default=200)
    parser.add_argument("--judge-latency-ms", type=float, default=500.0)
    parser.add_argument("--only-judge", action="store_true", help="run the judge-cost part alone")
    args = parser.parse_args()
    results: dict[str, object] = {"backend": args.backend, "run": uuid.uuid4().hex[:8]}
    with database(args.backend) as url:
        env = {
            "PROMPTKEEPER_DATABASE_URL": url,
            "PROMPTKEEPER_ADMIN_KEY": ADMIN_KEY,
            "PROMPTKEEPER_WORKER_IN_PROCESS": "false",
        }
        cost = judge_cost(url, args.judge_records, args.judge_latency_ms)
        print(
            f"judge cost ({args.backend}): {cost['calls_per_record']:.2f} judge calls per sampled record "
            f"({cost['judge_calls']:.0f} calls for {cost['scored']:.0f} records, 1 judge scorer, "
            f"{args.judge_latency_ms:g} ms judge, 2 workers, lease {cost['lease_s']:g} s, batch "
            f"{cost['batch']:.0f}, {cost['judge_rate']:g} calls/s per worker; {cost['seconds']:.0f} s)"
        )
        results.update(judge_cost=cost)
        if args.only_judge:
            print(f"saved {save('monitoring', results)}")
            return
        with server(env) as base:
            speed = throughput(base, url, args.records, args.sample_rate)
            loop = closed_loop(base, url)
    print(
        f"ingestion ({args.backend}): {speed['ingest_records_per_s']:,.0f} generation records/s over HTTP; "
        f"scoring: {speed['scored_per_s_per_worker']:,.0f} sampled records/s per worker "
        f"({speed['sampled']:,.0f} records, 3 heuristic scorers); scorers alone in memory "
        f"{speed['scorers_only_per_s']:,.0f}/s; ratio {speed['ratio_to_scorers_only']:.2f}"
    )
    sim = simulate(args.deployments, args.traffic, args.sample_rate)
    print(
        f"detection (98% -> 90%, {sim['deployments']:.0f} simulated deployments): caught "
        f"{sim['detected_share']:.1%}; sampled records median {sim['latency_records_median']:.0f}, "
        f"p90 {sim['latency_records_p90']:.0f}, max {sim['latency_records_max']:.0f}; at "
        f"{args.traffic:g} req/s x {args.sample_rate:g} sampled: median "
        f"{sim['latency_s_median_at_traffic']:.0f} s, p90 {sim['latency_s_p90_at_traffic']:.0f} s"
    )
    print(
        f"false alarms (98% -> 98%, 50 windows each): {sim['false_alarm_deployments']:.0f} of "
        f"{sim['deployments']:.0f} deployments = {sim['false_alarm_rate']:.3f}"
    )
    print(
        f"closed loop ({args.backend}): rollback decided at "
        f"{loop['sampled_records_at_decision']:.0f} sampled records of v2 (the server, polling the "
        f"database without Redis, served v1 again after "
        f"{loop['sampled_records_until_server_served_v1']:.0f}); processing took "
        f"{loop['processing_s']:.2f} s; alerts {loop['alerts']:.0f}"
    )
    results.update(throughput=speed, simulation=sim, closed_loop=loop)
    print(f"saved {save('monitoring', results)}")


if __name__ == "__main__":
    main()
