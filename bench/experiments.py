"""Experiment events: ingestion throughput over HTTP, and analysis time on 1,000,000 events.

Ingestion: `promptkeeper serve` in a subprocess (pinned to CPU 0), senders in this process post
batches of 10,000 events (half exposures, half outcomes joined by request id) to `/v1/events`.
Baseline, in the same run: the same rows written straight into the table the way ingestion writes
them (COPY on PostgreSQL), with no HTTP, validation, tagging or rollup: what ingestion cannot beat.

Analysis: 1,000,000 events (250,000 units x one exposure and one outcome, twice) are stored
through the ingestion code (events and the per-unit rollup), then `GET /v1/experiments/{id}/results`
is timed (primary metric completion, guardrail latency
with its median interval). Baseline, in the same run: `SELECT count(*)` over the experiment's rows,
the cost of touching every row once.

Usage: .venv/bin/python bench/experiments.py [--backend postgresql|sqlite] [--events 200000]
       [--analysis-events 1000000] [--senders 2]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import ADMIN_KEY, database, save, server  # noqa: E402
from promptkeeper.config import Settings  # noqa: E402
from promptkeeper.db.engine import Database, copy_rows  # noqa: E402
from promptkeeper.experiments.ingestion import COLUMNS, ingest  # noqa: E402
from promptkeeper.experiments.schemas import EventIn  # noqa: E402

ENV = "production"
BATCH = 10_000


def _setup(base: str) -> tuple[httpx.Client, int]:
    http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=120)
    for body in ({"name": "bench/exp", "content": {"type": "text", "template": "A {{ q }}"}},):
        http.post("/v1/prompts", json=body).raise_for_status()
    http.post(
        "/v1/prompts/bench%2Fexp/versions", json={"content": {"type": "text", "template": "B {{ q }}"}}
    ).raise_for_status()
    http.post(
        "/v1/prompts/bench%2Fexp/deployments", json={"environment": "staging", "version": 1}
    ).raise_for_status()
    created = http.post(
        "/v1/experiments",
        json={
            "prompt": "bench/exp",
            "environment": "staging",
            "name": "bench",
            "candidates": [{"version": 2, "weight": 1, "key": "b"}],
            "primary_metric": "completion",
            "guardrails": ["latency_ms"],
            "baseline": 0.5,
            "mde": 0.02,
        },
    )
    created.raise_for_status()
    experiment_id = int(created.json()["id"])
    http.post(f"/v1/experiments/{experiment_id}/start", json={}).raise_for_status()
    return http, experiment_id


def _batch(experiment_id: int, start: int, pairs: int, rng: random.Random) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for i in range(start, start + pairs):
        variant = "control" if i % 2 else "b"
        request_id = f"r{i}"
        events.append(
            {
                "type": "exposure",
                "request_id": request_id,
                "experiment_id": experiment_id,
                "variant": variant,
                "unit": f"u{i // 2}",
            }
        )
        events.append(
            {
                "type": "outcome",
                "request_id": request_id,
                "completed": rng.random() < 0.5,
                "latency_ms": rng.gauss(800, 100),
            }
        )
    return events


def ingestion(base: str, url: str, total: int, senders: int) -> dict[str, float]:
    http, experiment_id = _setup(base)
    rng = random.Random(1)
    pairs = BATCH // 2
    batches = [_batch(experiment_id, n * pairs, pairs, rng) for n in range(total // BATCH)]
    http.post("/v1/events", json={"events": batches[0]}).raise_for_status()  # warm-up, not timed
    work = batches[1:]
    lock = threading.Lock()
    latencies: list[float] = []

    def sender() -> None:
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=120)
        while True:
            with lock:
                if not work:
                    break
                batch = work.pop()
            started = time.perf_counter()
            client.post("/v1/events", json={"events": batch}).raise_for_status()
            latencies.append(time.perf_counter() - started)
        client.close()

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    sent = BATCH * (len(batches) - 1)

    # baseline: the same rows written the fastest way the database offers, with nothing else done
    database = Database(Settings(database_url=url, admin_key=ADMIN_KEY))
    now = datetime.now(UTC)
    rows = [
        {
            **dict.fromkeys(COLUMNS),
            "project_id": 1,
            "kind": e["type"],
            "request_id": "x" + e["request_id"],
            "at": now,
            "experiment_id": experiment_id,
            "variant": 0,
            "unit": "u",
            "completed": e.get("completed"),
            "latency_ms": e.get("latency_ms"),
        }
        for batch in batches[1:]
        for e in batch
    ]
    direct_started = time.perf_counter()
    with database.write_session() as session:
        for start in range(0, len(rows), BATCH):
            _copy_rows(session, rows[start : start + BATCH])
        session.commit()
    direct = time.perf_counter() - direct_started
    database.dispose()
    http.close()
    return {
        "events": sent,
        "seconds": elapsed,
        "events_per_second": sent / elapsed,
        "batch_p50_ms": statistics.median(latencies) * 1000,
        "direct_copy_events_per_second": len(rows) / direct,
    }


def _copy_rows(session: Any, rows: list[dict[str, Any]]) -> None:
    """The baseline's writer: COPY straight into `events` (no rollup, no de-duplication)."""
    raw = session.connection().connection.dbapi_connection
    with raw.cursor() as cursor:
        copy_rows(
            cursor, "events", COLUMNS, ([row[name] for name in COLUMNS] for row in rows), types_of="events"
        )


def _load(url: str, experiment_id: int, events: int) -> None:
    """Store `events` through the ingestion code (events + per-unit rollup), 10,000 at a time.

    In-process rather than over HTTP only to save time: the same `events.ingest` the route runs.
    """
    rng = random.Random(2)
    rates = (0.50, 0.52)
    database = Database(Settings(database_url=url, admin_key=ADMIN_KEY))
    started = time.perf_counter()
    batch: list[EventIn] = []
    try:
        for unit in range(events // 4):
            variant = unit % 2
            key = "control" if variant == 0 else "b"
            for visit in range(2):
                request_id = f"a{unit}-{visit}"
                batch.append(
                    EventIn(
                        type="exposure",
                        request_id=request_id,
                        experiment_id=experiment_id,
                        variant=key,
                        unit=f"u{unit}",
                    )
                )
                batch.append(
                    EventIn(
                        type="outcome",
                        request_id=request_id,
                        completed=rng.random() < rates[variant],
                        latency_ms=rng.gauss(800 + 10 * variant, 120),
                    )
                )
            if len(batch) >= BATCH:
                with database.write_session() as session:
                    ingest(session=session, project_id=1, events=batch)
                    session.commit()
                batch = []
        if batch:
            with database.write_session() as session:
                ingest(session=session, project_id=1, events=batch)
                session.commit()
        if database.is_postgres:
            with database.engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    finally:
        database.dispose()
    print(f"  loaded {events:,} events in {time.perf_counter() - started:.1f} s")


def analysis(base: str, url: str, events: int, backend: str) -> dict[str, float]:
    http, experiment_id = _setup(base)
    _load(url, experiment_id, events)
    timings = []
    body: dict[str, Any] = {}
    for _ in range(5):
        started = time.perf_counter()
        response = http.get(f"/v1/experiments/{experiment_id}/results")
        response.raise_for_status()
        timings.append(time.perf_counter() - started)
        body = response.json()
    engine = create_engine(url)
    scans = []
    with engine.connect() as connection:
        for _ in range(5):
            started = time.perf_counter()
            connection.execute(
                text("SELECT count(*) FROM events WHERE experiment_id = :e"), {"e": experiment_id}
            ).scalar()
            scans.append(time.perf_counter() - started)
    engine.dispose()
    http.close()
    return {
        "events": events,
        "results_http_s_median": statistics.median(timings),
        "results_http_s_best": min(timings),
        "analysis_s_reported": float(body["seconds"]),
        "count_scan_s_median": statistics.median(scans),
        "exposures_per_variant": float(body["variants"][0]["exposures"]),
        "state": body["state"],  # type: ignore[dict-item]
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--analysis-events", type=int, default=1_000_000)
    parser.add_argument("--senders", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, object] = {"backend": args.backend, "run": uuid.uuid4().hex[:8]}
    with database(args.backend) as url:
        env = {"PROMPTKEEPER_DATABASE_URL": url, "PROMPTKEEPER_ADMIN_KEY": ADMIN_KEY}
        with server(env) as base:
            ingest = ingestion(base, url, args.events, args.senders)
    print(
        f"ingestion ({args.backend}): {ingest['events']:,.0f} events in {ingest['seconds']:.2f} s = "
        f"{ingest['events_per_second']:,.0f} events/s "
        f"(batch of 10,000: p50 {ingest['batch_p50_ms']:.0f} ms); "
        f"direct COPY baseline {ingest['direct_copy_events_per_second']:,.0f} events/s; "
        f"ratio {ingest['events_per_second'] / ingest['direct_copy_events_per_second']:.2f}"
    )
    results["ingestion"] = ingest
    with database(args.backend) as url:
        env = {"PROMPTKEEPER_DATABASE_URL": url, "PROMPTKEEPER_ADMIN_KEY": ADMIN_KEY}
        with server(env) as base:
            analysed = analysis(base, url, args.analysis_events, args.backend)
    print(
        f"analysis ({args.backend}): {analysed['events']:,.0f} events: results over HTTP median "
        f"{analysed['results_http_s_median']:.3f} s (best {analysed['results_http_s_best']:.3f} s, "
        f"in-server {analysed['analysis_s_reported']:.3f} s); count(*) scan baseline "
        f"{analysed['count_scan_s_median']:.3f} s; ratio "
        f"{analysed['results_http_s_median'] / analysed['count_scan_s_median']:.1f}; goal <= 1 s"
    )
    results["analysis"] = analysed
    print(f"saved {save('experiments', results)}")


if __name__ == "__main__":
    main()
