"""OTLP export while PostgreSQL is down, for longer than every TTL in the path, then back.

A real `promptkeeper serve` on a private PostgreSQL cluster that the test stops (never the shared
one), and the OpenTelemetry SDK's own exporter. The key check's cache (1 s) and its stale-if-error
window (3 s) both run out during the outage, so the answer must still be one an exporter retries
(a 503 `google.rpc.Status` UNAVAILABLE with `Retry-After`), never a 401 or 400 that makes it drop the
batch. The exporter keeps retrying; once the database is back its span is stored, and sending the
same span again (the exporter's answer lost after the commit) stores nothing twice.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from sqlalchemy import create_engine, text

from tests.conftest import ADMIN_KEY
from tests.helpers import add_version, create_prompt, deploy, start_experiment, text_content
from tests.processes import PostgresCluster, ServerProcess, wait_until

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
NAME = "otel/outage"
MS = 1_000_000


def _setup(http: httpx.Client) -> int:
    create_prompt(http, NAME, "A")
    add_version(http, NAME, "B")
    deploy(http, NAME, "production", 1)
    experiment_id = start_experiment(http, NAME, "outage")
    exposure = {"type": "exposure", "request_id": "r-1", "experiment_id": experiment_id}
    exposure.update(variant="control", unit="user-1")
    assert http.post("/v1/events", json={"events": [exposure]}).status_code in (200, 202)
    return experiment_id


def _span(experiment_id: int) -> ReadableSpan:
    tracer = TracerProvider().get_tracer("app")
    start = time.time_ns()
    span = tracer.start_span(
        "chat gpt-4o-mini",
        start_time=start,
        attributes={
            "promptkeeper.prompt.name": NAME,
            "promptkeeper.prompt.version": 1,
            "promptkeeper.prompt.environment": "production",
            "promptkeeper.prompt.request_id": "r-1",
            "promptkeeper.prompt.experiment": experiment_id,
            "promptkeeper.prompt.variant": "control",
            "promptkeeper.prompt.unit": "user-1",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.output_tokens": 30,
            "gen_ai.completion.0.content": "the answer",
        },
    )
    span.end(end_time=start + 300 * MS)
    assert isinstance(span, ReadableSpan)
    return span


def _stored(url: str) -> tuple[int, int, int]:
    """(outcome events from spans, the unit's latency count in the rollup, generation records)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            outcomes = connection.scalar(text("SELECT count(*) FROM events WHERE span_key IS NOT NULL"))
            latency_n = connection.scalar(text("SELECT coalesce(sum(latency_ms_n), 0) FROM experiment_units"))
            generations = connection.scalar(text("SELECT count(*) FROM generations"))
    finally:
        engine.dispose()
    return int(outcomes or 0), int(latency_n or 0), int(generations or 0)


def test_an_export_during_an_outage_longer_than_every_ttl_is_retried_and_stored_once(
    stoppable_postgres: PostgresCluster, tmp_path: Path
) -> None:
    cluster = stoppable_postgres
    server = ServerProcess(
        {
            "PROMPTKEEPER_ADMIN_KEY": ADMIN_KEY,
            "PROMPTKEEPER_DATABASE_URL": cluster.url,
            "PROMPTKEEPER_DB_TIMEOUT": "2",
            "PROMPTKEEPER_AUTH_CACHE_TTL": "1",
            "PROMPTKEEPER_AUTH_STALE_TTL": "3",
            "PROMPTKEEPER_WORKER_IN_PROCESS": "false",
        },
        tmp_path,
    ).start()
    try:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http:
            experiment_id = _setup(http)
            span = _span(experiment_id)
            body = encode_spans([span]).SerializeToString()
            protobuf = {"Content-Type": "application/x-protobuf"}
            assert http.post("/otlp/v1/traces", content=body, headers=protobuf).status_code == 200
            assert _stored(cluster.url) == (1, 1, 1)
            http.post("/v1/prompts", json={"name": "warm", "content": text_content("x")})  # key cached
            cluster.stop()
            outage_started = time.monotonic()
            time.sleep(5)  # past the key cache (1 s) and its stale-if-error window (3 s)
            down = http.post("/otlp/v1/traces", content=body, headers=protobuf)
            assert down.status_code == 503, (down.status_code, down.content[:300])
            assert down.headers["content-type"] == "application/x-protobuf"
            assert int(down.headers["retry-after"]) > 0
            status = status_pb2.Status.FromString(down.content)
            assert status.code == 14 and status.message, status  # UNAVAILABLE: the exporter retries

            # a second span, exported by the SDK's exporter during the outage
            second = _span(experiment_id)
            exporter = OTLPSpanExporter(endpoint=f"{server.url}/otlp/v1/traces", headers=AUTH, timeout=60)
            results: list[SpanExportResult] = []
            sending = threading.Thread(target=lambda: results.append(exporter.export([second])))
            sending.start()
            time.sleep(3)
            assert not results, "the exporter gave up while the database was down"
            cluster.start()
            outage = time.monotonic() - outage_started
            sending.join(timeout=60)
            exporter.shutdown()
            assert results == [SpanExportResult.SUCCESS], results
            assert outage > 1 + 3  # longer than every TTL in the path
            wait_until(lambda: _stored(cluster.url) == (2, 2, 1), timeout=10, message="the span stored")
            # the generation record is one per request id (both spans are request r-1); the second
            # span's outcome counts; a resend of either stores nothing more
            for again in (body, encode_spans([second]).SerializeToString()):
                assert http.post("/otlp/v1/traces", content=again, headers=protobuf).status_code == 200
            assert _stored(cluster.url) == (2, 2, 1)
    finally:
        server.stop()
