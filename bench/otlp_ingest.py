"""OTLP ingestion: spans per second one `promptkeeper serve` stores from the standard OTLP/HTTP
protobuf encoding, against the same rows written directly.

Setup (PostgreSQL by default): a prompt with two versions, v1 in production, a monitor with a
heuristic rule (every generation record is queued for scoring) and a running experiment (v2 as
treatment). Every span is linked the way `Prompt.otel_attributes()` links it (name, version,
environment, request id, unit, experiment, variant) and carries GenAI attributes (models, tokens,
output messages, finish reasons), so each span is one generation record and one experiment outcome.

1. OTLP: the server in a subprocess (CPU 0, no in-process worker) receives `--spans` spans as
   `ExportTraceServiceRequest` protobuf bodies of `--batch` spans (the SDK exporter's default batch
   is 512), from `--senders` concurrent clients; the bodies are serialized before the clock starts.
2. Baseline, in the same run and database: the same spans' rows (outcome events and generation
   records, built before the clock starts) written directly by the writers the receiver uses
   (`otel.service.write`) in the same batches, one transaction each: the database's share of the
   cost, without HTTP, protobuf or mapping.

Usage: .venv/bin/python bench/otlp_ingest.py [--backend postgresql|sqlite] [--spans 200000]
       [--batch 512] [--senders 4]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue  # noqa: E402
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span  # noqa: E402

from bench._harness import (  # noqa: E402
    ADMIN_KEY,
    SERVER_PIDS,
    cpu_seconds,
    database,
    postgres_cpu_seconds,
    save,
    server,
)
from promptkeeper.config import Settings  # noqa: E402
from promptkeeper.db.engine import Database  # noqa: E402
from promptkeeper.otel import service  # noqa: E402

NAME = "bench/otlp"
ENV = "production"
MS = 1_000_000


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def _span(run: str, index: int, experiment_id: int, variant: tuple[str, int]) -> Span:
    start = 1_760_000_000_000_000_000 + index * MS
    key, version = variant
    output = json.dumps(
        [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": f"answer {index}"}],
                "finish_reason": "stop",
            }
        ]
    )
    attributes = {
        "promptkeeper.prompt.name": NAME,
        "promptkeeper.prompt.version": version,
        "promptkeeper.prompt.environment": ENV,
        "promptkeeper.prompt.request_id": f"{run}-{index}",
        "promptkeeper.prompt.unit": f"user-{index % 5000}",
        "promptkeeper.prompt.experiment": experiment_id,
        "promptkeeper.prompt.variant": key,
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 30 + index % 20,
        "gen_ai.output.messages": output,
    }
    span = Span(
        trace_id=uuid.uuid4().bytes,
        span_id=index.to_bytes(8, "big"),
        name="chat gpt-4o-mini",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=start,
        end_time_unix_nano=start + (200 + index % 100) * MS,
        attributes=[_kv(k, v) for k, v in attributes.items()],
    )
    span.attributes.append(
        KeyValue(
            key="gen_ai.response.finish_reasons",
            value=AnyValue(array_value={"values": [AnyValue(string_value="stop")]}),
        )
    )
    return span


def _batches(
    run: str, count: int, batch: int, experiment_id: int, variants: list[tuple[str, int]]
) -> list[ExportTraceServiceRequest]:
    requests = []
    for begin in range(0, count, batch):
        request = ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    scope_spans=[
                        ScopeSpans(
                            spans=[
                                _span(run, i, experiment_id, variants[i % len(variants)])
                                for i in range(begin, min(count, begin + batch))
                            ]
                        )
                    ]
                )
            ]
        )
        requests.append(request)
    return requests


def _setup(http: httpx.Client) -> tuple[int, list[tuple[str, int]]]:
    quoted = NAME.replace("/", "%2F")
    for template in ("A {{ q }}", "B {{ q }}"):
        if template.startswith("A"):
            http.post(
                "/v1/prompts", json={"name": NAME, "content": {"type": "text", "template": template}}
            ).raise_for_status()
        else:
            http.post(
                f"/v1/prompts/{quoted}/versions", json={"content": {"type": "text", "template": template}}
            ).raise_for_status()
    http.post(f"/v1/prompts/{quoted}/deployments", json={"environment": ENV, "version": 1}).raise_for_status()
    http.post(
        "/v1/monitors",
        json={
            "prompt": NAME,
            "sample_rate": 0.1,
            "scorers": [{"scorer": "length", "params": {"max_chars": 400}}],
        },
    ).raise_for_status()
    created = http.post(
        "/v1/experiments",
        json={
            "prompt": NAME,
            "name": "bench",
            "candidates": [{"version": 2, "weight": 1, "key": "treatment"}],
            "primary_metric": "latency_ms",
            "std_dev": 100,
            "mde": 20,
        },
    )
    created.raise_for_status()
    experiment_id = int(created.json()["id"])
    http.post(f"/v1/experiments/{experiment_id}/start", json={}).raise_for_status()
    return experiment_id, [("control", 1), ("treatment", 2)]


def server_env(url: str) -> dict[str, str]:
    """The receiver's settings: no in-process worker, whose scoring would share the server's core."""
    return {
        "PROMPTKEEPER_DATABASE_URL": url,
        "PROMPTKEEPER_ADMIN_KEY": ADMIN_KEY,
        "PROMPTKEEPER_WORKER_IN_PROCESS": "false",
    }


def seed(base: str) -> tuple[int, list[tuple[str, int]]]:
    """`_setup` through the running server's API: its experiment id and (variant, version) pairs."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:
        return _setup(http)


def otlp(base: str, bodies: list[bytes], senders: int) -> tuple[float, list[float]]:
    """Post every body, `senders` at a time, each sender on its own connection."""
    headers = {"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/x-protobuf"}
    latencies: list[float] = []
    local = threading.local()
    clients: list[httpx.Client] = []

    def send(body: bytes) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=base, timeout=120)
            clients.append(local.client)
        started = time.perf_counter()
        response = local.client.post("/otlp/v1/traces", content=body, headers=headers)
        latencies.append(time.perf_counter() - started)
        if response.status_code != 200 or response.content:
            raise RuntimeError(f"{response.status_code}: {response.content[:300]!r}")

    started = time.perf_counter()
    with ThreadPoolExecutor(senders) as pool:
        list(pool.map(send, bodies))
    seconds = time.perf_counter() - started
    for client in clients:
        client.close()
    return seconds, latencies


def direct(url: str, requests: list[ExportTraceServiceRequest]) -> float:
    """The same rows through `service.write` (what the receiver calls), built before the clock."""
    settings = Settings(database_url=url, worker_in_process=False)
    db = Database(settings)
    prepared = []
    try:
        with db.session() as session:
            for request in requests:
                batch = service.classify(request)
                prepared.append((batch, service.prepare(session=session, project_id=1, batch=batch)))
        started = time.perf_counter()
        for batch, rows in prepared:
            with db.write_session() as session:
                service.write(session=session, project_id=1, batch=batch, rows=rows)
                session.commit()
        return time.perf_counter() - started
    finally:
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--senders", type=int, default=4)
    args = parser.parse_args()
    results: dict[str, Any] = {"backend": args.backend, "spans": args.spans, "batch": args.batch}
    with database(args.backend, schema=f"pk_bench_otlp_{os.getpid()}") as url:
        with server(server_env(url), ready_timeout=300) as base:
            experiment_id, variants = seed(base)
            over_http = _batches("otlp", args.spans, args.batch, experiment_id, variants)
            bodies = [request.SerializeToString() for request in over_http]
            cpu_before, database_before = cpu_seconds(SERVER_PIDS[base]), postgres_cpu_seconds()
            seconds, latencies = otlp(base, bodies, args.senders)
            server_cpu = cpu_seconds(SERVER_PIDS[base]) - cpu_before
            database_cpu = postgres_cpu_seconds() - database_before
        baseline = _batches("direct", args.spans, args.batch, experiment_id, variants)
        direct_seconds = direct(url, baseline)
    latencies.sort()
    results.update(
        otlp_spans_per_second=args.spans / seconds,
        otlp_batch_p50_ms=latencies[len(latencies) // 2] * 1000,
        otlp_batch_p99_ms=latencies[int(len(latencies) * 0.99)] * 1000,
        direct_spans_per_second=args.spans / direct_seconds,
        server_cpu_us_per_span=server_cpu / args.spans * 1e6,
        database_cpu_us_per_span=database_cpu / args.spans * 1e6,
        load_average=os.getloadavg()[0],
    )
    ratio = results["otlp_spans_per_second"] / results["direct_spans_per_second"]
    results["ratio"] = ratio
    print(
        f"OTLP ingestion ({args.backend}, one instance, {args.senders} senders, batches of {args.batch}): "
        f"{args.spans:,} spans in {seconds:.2f} s = {results['otlp_spans_per_second']:,.0f} spans/s "
        f"(batch p50 {results['otlp_batch_p50_ms']:.0f} ms, p99 {results['otlp_batch_p99_ms']:.0f} ms; "
        f"CPU per span: server {results['server_cpu_us_per_span']:.1f} µs, "
        f"PostgreSQL {results['database_cpu_us_per_span']:.1f} µs); "
        f"direct-write baseline {results['direct_spans_per_second']:,.0f} spans/s; "
        f"ratio {ratio:.2f}; goal >= 20,000 spans/s; load average {results['load_average']:.1f}"
    )
    print(f"saved {save('otlp_ingest', results)}")


if __name__ == "__main__":
    main()
