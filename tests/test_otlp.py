"""OpenTelemetry GenAI ingestion over real OTLP/HTTP: the OpenTelemetry SDK's own exporter sends
spans to a live server (SQLite and PostgreSQL), and a monitor and a running experiment see them."""

from __future__ import annotations

import base64
import gzip
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode
from sqlalchemy import select

from promptkeeper.app import create_app
from promptkeeper.client import Client
from promptkeeper.config import Settings
from promptkeeper.db.engine import Database
from promptkeeper.monitoring.models import Generation
from promptkeeper.otel import decode
from tests.conftest import ADMIN_KEY, LiveServer
from tests.helpers import add_version, bearer, create_prompt, deploy, start_experiment

NAME = "otel/chat"
MS = 1_000_000  # nanoseconds


def _wait(condition: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def exporter_env(live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> LiveServer:
    """What users set: the standard exporter appends /v1/traces to the endpoint."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"{live_server.url}/otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{ADMIN_KEY}")
    return live_server


@pytest.fixture
def provider(exporter_env: LiveServer) -> Iterator[TracerProvider]:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
    yield tracer_provider
    tracer_provider.shutdown()


def _output(text: str, finish: str = "stop") -> str:
    return json.dumps(
        [{"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": finish}]
    )


def test_sdk_linked_spans_feed_a_monitor_and_an_experiment(
    exporter_env: LiveServer, provider: TracerProvider
) -> None:
    server = exporter_env
    with server.client() as http:
        create_prompt(http, NAME, "A: {{ q }}")
        add_version(http, NAME, "B: {{ q }}")
        deploy(http, NAME, "production", 1)
        monitor = http.post(
            "/v1/monitors",
            json={
                "prompt": NAME,
                "sample_rate": 1.0,
                "scorers": [{"scorer": "not_contains", "name": "safety", "params": {"values": ["UNSAFE"]}}],
            },
        )
        assert monitor.status_code == 201, monitor.text
        metric = http.post(
            "/v1/metrics", json={"name": "llm_error", "kind": "binary", "higher_is_better": False}
        )
        assert metric.status_code == 201, metric.text
        experiment_id = start_experiment(http, NAME, "otel")

        tracer = provider.get_tracer("app")
        served: dict[str, int] = {"control": 0, "treatment": 0}
        errors = 0
        control_outputs: list[str] = []  # the live version's generation records (version 1)
        with Client(server.url, ADMIN_KEY, environment="production", stream=False) as sdk:
            for i in range(30):
                prompt = sdk.get(NAME, unit=f"user-{i}")
                assert prompt.variant in served and prompt.request_id
                served[prompt.variant] += 1
                slow = prompt.variant == "treatment"
                output = "UNSAFE tip" if i % 10 == 0 else f"answer {i}"
                start = time.time_ns()
                span = tracer.start_span(
                    "chat gpt-4o-mini",
                    start_time=start,
                    attributes={
                        **prompt.otel_attributes(),
                        "gen_ai.operation.name": "chat",
                        "gen_ai.request.model": "gpt-4o-mini",
                        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                        "gen_ai.usage.input_tokens": 100,
                        "gen_ai.usage.output_tokens": 40 if slow else 20,
                        "gen_ai.output.messages": _output(output),
                    },
                )
                span.add_event("gen_ai.content.completion.chunk", timestamp=start + 50 * MS)
                if i == 7:
                    span.set_status(Status(StatusCode.ERROR, "provider timeout"))
                    errors += 1
                elif not slow:
                    control_outputs.append(output)
                span.end(end_time=start + (400 if slow else 200) * MS)
            assert sdk.flush(timeout=60) and sdk.events.dropped == 0  # the exposures `get` queued
        assert provider.force_flush()

        monitor_id = monitor.json()["id"]
        status = _wait(
            lambda: (
                (s := http.get(f"/v1/monitors/{monitor_id}/status").json())["pending"] == 0
                and s["scorers"][0]["current"]
                and s["scorers"][0]["current"]["n"] == len(control_outputs)
                and s
            ),
            "the monitor to score the spans' generation records",
        )
        unsafe = control_outputs.count("UNSAFE tip")
        assert status["live_version"] == 1 and status["scored"] == len(control_outputs)
        assert status["scorers"][0]["current"]["level"] == pytest.approx(1 - unsafe / len(control_outputs))
        scored = http.get(f"/v1/monitors/{monitor_id}/examples", params={"limit": 100}).json()
        assert len(scored) == 30 - errors  # both variants' records are scored, each once
        assert sorted(f["output"] for f in scored if not f["passed"]) == ["UNSAFE tip"] * 3

        results = http.get(f"/v1/experiments/{experiment_id}/results").json()
        by_key = {v["key"]: v for v in results["variants"]}
        for key, latency, output_tokens in (("control", 200, 20), ("treatment", 400, 40)):
            variant = by_key[key]
            assert variant["exposures"] == served[key]
            metrics = variant["metrics"]
            assert metrics["latency_ms"]["n"] == served[key]
            assert metrics["latency_ms"]["mean"] == pytest.approx(latency, abs=1)
            assert metrics["ttft_ms"]["mean"] == pytest.approx(50, abs=1)
            assert metrics["input_tokens"]["mean"] == 100
            assert metrics["output_tokens"]["mean"] == output_tokens
            cost = (100 * 0.15 + output_tokens * 0.60) / 1_000_000  # gpt-4o-mini's list price
            assert metrics["cost_usd"]["mean"] == pytest.approx(cost)
        error_rates = {
            key: v["metrics"]["llm_error"]["mean"] * v["metrics"]["llm_error"]["n"]
            for key, v in by_key.items()
        }
        assert sum(error_rates.values()) == pytest.approx(errors)

        exposition = http.get("/metrics").text
        assert "promptkeeper_otlp_spans_stored_total 30" in exposition
        assert f"promptkeeper_otlp_generations_total {30 - errors}" in exposition
        assert "promptkeeper_otlp_outcomes_total 30" in exposition


# -- encodings, errors and partial success (the app in-process: no exporter involved) ------------------


def _span(span_id: int, **attributes: Any) -> dict[str, Any]:
    """An OTLP/JSON span: hex ids, camelCase, enum ints, integers as strings (as the spec writes them)."""
    start = 1_700_000_000_000_000_000
    values = []
    for key, value in attributes.items():
        if isinstance(value, bool):
            values.append({"key": key, "value": {"boolValue": value}})
        elif isinstance(value, int):
            values.append({"key": key, "value": {"intValue": str(value)}})
        else:
            values.append({"key": key, "value": {"stringValue": value}})
    return {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": f"{span_id:016x}",
        "name": "chat",
        "kind": 3,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 250 * MS),
        "attributes": values,
        "status": {"code": 1},
    }


def _request(*spans: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "app"}}]},
                "scopeSpans": [{"scope": {"name": "test"}, "spans": list(spans)}],
            }
        ]
    }


def _linked(span_id: int, version: int = 1, **extra: Any) -> dict[str, Any]:
    return _span(
        span_id,
        **{
            "promptkeeper.prompt.name": NAME,
            "promptkeeper.prompt.version": version,
            "promptkeeper.prompt.environment": "production",
            "gen_ai.completion.0.content": f"answer {span_id}",
            **extra,
        },
    )


JSON = {"Content-Type": "application/json"}
PROTOBUF = {"Content-Type": "application/x-protobuf"}


@pytest.fixture
def otlp(client: TestClient) -> TestClient:
    create_prompt(client, NAME, "A: {{ q }}")
    deploy(client, NAME, "production", 1)
    return client


def _counter(client: TestClient, name: str) -> int:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f"promptkeeper_{name} "):
            return int(float(line.split()[1]))
    raise AssertionError(f"no {name} in /metrics")


def _generations(client: TestClient) -> int:
    return _counter(client, "otlp_generations_total")


def test_json_encoding_with_gzip_is_stored_once(otlp: TestClient) -> None:
    body = gzip.compress(json.dumps(_request(_linked(1), _linked(2))).encode())
    headers = {**JSON, "Content-Encoding": "gzip"}
    response = otlp.post("/otlp/v1/traces", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}  # fully accepted: no partial_success
    assert _generations(otlp) == 2
    again = otlp.post("/otlp/v1/traces", content=body, headers=headers)  # an exporter's retry
    assert again.status_code == 200 and _generations(otlp) == 2


def test_a_batch_mixing_stored_and_new_records_stores_the_new_ones(
    otlp: TestClient, settings: Settings
) -> None:
    """Generation records go straight into their table unless one of the batch's request ids is
    stored already (or repeats within the batch): then the batch is stored again the slow way,
    skipping those. Neither way may drop a new record, store an old one twice or miscount."""
    first = otlp.post("/otlp/v1/traces", content=json.dumps(_request(_linked(1), _linked(2))), headers=JSON)
    assert first.status_code == 200 and _generations(otlp) == 2
    twice = {"promptkeeper.prompt.request_id": "req-twice"}
    mixed = _request(_linked(2), _linked(3), _linked(4, **twice), _linked(5, **twice), _linked(6))
    response = otlp.post("/otlp/v1/traces", content=json.dumps(mixed), headers=JSON)
    assert response.status_code == 200, response.text
    assert _generations(otlp) == 2 + 3  # spans 3, 6 and the first of the two with one request id
    database = Database(settings)
    try:
        with database.session() as session:
            stored = session.execute(select(Generation.request_id, Generation.output)).all()
    finally:
        database.dispose()
    outputs = sorted(output for _, output in stored)
    assert outputs == [f"answer {index}" for index in (1, 2, 3, 4, 6)]
    assert len({request_id for request_id, _ in stored}) == 5
    after = otlp.post("/otlp/v1/traces", content=json.dumps(_request(_linked(7))), headers=JSON)
    assert after.status_code == 200 and _generations(otlp) == 6  # the fast path again


def test_a_resent_batch_counts_its_outcomes_once(otlp: TestClient) -> None:
    """An exporter resends a batch whose answer it lost (a timeout after the commit): the experiment's
    outcomes, its per-unit rollup and the generation records each keep one copy of every span."""
    add_version(otlp, NAME, "B: {{ q }}")
    experiment_id = start_experiment(otlp, NAME, "resend")
    spans = [
        _linked(
            index,
            version=2 if variant == "treatment" else 1,
            **{
                "promptkeeper.prompt.experiment": experiment_id,
                "promptkeeper.prompt.variant": variant,
                "promptkeeper.prompt.unit": f"user-{variant}",  # two spans per unit
                "gen_ai.usage.output_tokens": 10 * index,
            },
        )
        for index, variant in enumerate(["control", "control", "treatment", "treatment"], start=1)
    ]
    exposures = [
        {
            "type": "exposure",
            "request_id": f"r-{key}",
            "experiment_id": experiment_id,
            "variant": key,
            "unit": f"user-{key}",
        }
        for key in ("control", "treatment")
    ]
    assert otlp.post("/v1/events", json={"events": exposures}).status_code in (200, 202)
    body = decode.parse(json.dumps(_request(*spans)).encode(), "json")  # OTLP/JSON ids are hex
    first = otlp.post("/otlp/v1/traces", content=body.SerializeToString(), headers=PROTOBUF)
    assert first.status_code == 200 and first.content == b""
    assert _counter(otlp, "otlp_outcomes_total") == 4
    # the same spans again, and the first of each unit once more in another encoding (an exporter
    # restarted with another configuration): a double count would move each unit's mean
    resent = json.dumps(_request(spans[0], spans[2]))
    for content, headers in ((body.SerializeToString(), PROTOBUF), (resent, JSON)):
        again = otlp.post("/otlp/v1/traces", content=content, headers=headers)
        assert again.status_code == 200, again.text
    assert _counter(otlp, "otlp_outcomes_total") == 4 and _generations(otlp) == 4
    results = otlp.get(f"/v1/experiments/{experiment_id}/results").json()
    by_key = {v["key"]: v["metrics"] for v in results["variants"]}
    for key, tokens in (("control", (10 + 20) / 2), ("treatment", (30 + 40) / 2)):
        assert by_key[key]["output_tokens"]["n"] == 1  # one unit per variant, its two spans once each
        assert by_key[key]["output_tokens"]["mean"] == pytest.approx(tokens)
        assert by_key[key]["latency_ms"]["mean"] == pytest.approx(250)


def test_a_batch_with_unlinked_and_invalid_spans_is_a_partial_success(otlp: TestClient) -> None:
    spans = [
        _linked(1),
        _span(2, **{"http.route": "/checkout"}),  # not an LLM span of a prompt: dropped, counted
        _linked(3, version=9),  # no such version
        _linked(
            4,
            **{
                "promptkeeper.prompt.experiment": 999,
                "promptkeeper.prompt.variant": "v1",
                "promptkeeper.prompt.unit": "u",
            },
        ),
        _linked(5, **{"promptkeeper.prompt.version": "one"}),  # not a number
    ]
    request = ExportTraceServiceRequest()
    # the same spans, through protobuf this time (the exporter's default encoding)
    document = _request(*spans)
    for span in document["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        span["traceId"] = _b64(span["traceId"])
        span["spanId"] = _b64(span["spanId"])
    json_format.ParseDict(document, request)
    response = otlp.post("/otlp/v1/traces", content=request.SerializeToString(), headers=PROTOBUF)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(response.content)
    assert answer.partial_success.rejected_spans == 4
    text = answer.partial_success.error_message
    assert text.startswith("4 of 5 spans rejected")
    assert "1 not linked to a prompt version" in text
    assert f"span {5:016x}" in text and "version it ran" in text
    assert f"prompt '{NAME}' has no version 9 (latest: 1)" in text
    assert "experiment 999 not found" in text
    assert _generations(otlp) == 1
    exposition = otlp.get("/metrics").text
    assert "promptkeeper_otlp_spans_unlinked_total 1" in exposition
    assert "promptkeeper_otlp_spans_rejected_total 3" in exposition


def _b64(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode()


@pytest.mark.parametrize(
    ("headers", "body", "status", "words"),
    [
        (PROTOBUF, b"\xff\xff\xff not protobuf", 400, "not an OTLP ExportTraceServiceRequest in protobuf"),
        (JSON, b"{not json", 400, "body: not JSON"),
        (JSON, b'{"resourceSpans": 5}', 400, "not an OTLP ExportTraceServiceRequest"),
        (JSON, json.dumps(_request({**_span(1), "traceId": "zz"})).encode(), 400, "is not a hex id"),
        ({**PROTOBUF, "Content-Encoding": "gzip"}, b"not gzip", 400, "not valid gzip"),
        ({**PROTOBUF, "Content-Encoding": "br"}, b"x", 415, "Content-Encoding"),
        ({"Content-Type": "text/plain"}, b"x", 415, "application/x-protobuf"),
    ],
)
def test_malformed_payloads_get_an_otlp_status(
    otlp: TestClient, headers: dict[str, str], body: bytes, status: int, words: str
) -> None:
    response = otlp.post("/otlp/v1/traces", content=body, headers=headers)
    assert response.status_code == status, response.text
    if headers["Content-Type"] == "application/json":
        assert response.headers["content-type"] == "application/json"
        assert words in response.json()["message"]
    else:
        assert response.headers["content-type"] == "application/x-protobuf"
        answer = status_pb2.Status()
        answer.ParseFromString(response.content)
        assert words in answer.message and answer.code in (3,)


def test_a_wrong_key_is_401_and_a_gzip_bomb_413(settings: Settings) -> None:
    small = settings.model_copy(
        update={"otlp_max_bytes": 4096, "max_body_bytes": 100_000, "build_routes_at_start": False}
    )
    with TestClient(create_app(small)) as client:
        body = ExportTraceServiceRequest().SerializeToString()
        wrong = client.post(
            "/otlp/v1/traces", content=body, headers={**PROTOBUF, **bearer("pk_wrong_" + "x" * 40)}
        )
        assert wrong.status_code == 401
        answer = status_pb2.Status()
        answer.ParseFromString(wrong.content)
        assert answer.code == 16 and "API key" in answer.message
        missing = client.post("/otlp/v1/traces", content=body, headers=JSON)
        assert missing.status_code == 401 and "Authorization" in missing.json()["message"]
        bomb = gzip.compress(b"\x00" * 1_000_000)
        too_big = client.post(
            "/otlp/v1/traces",
            content=bomb,
            headers={**PROTOBUF, "Content-Encoding": "gzip", **bearer(ADMIN_KEY)},
        )
        assert too_big.status_code == 413
        answer.ParseFromString(too_big.content)
        assert "PROMPTKEEPER_OTLP_MAX_BYTES" in answer.message
        # over the body limit as sent: refused by the middleware before it is read, still as a Status
        huge = client.post(
            "/otlp/v1/traces", content=b"\x00" * 200_000, headers={**PROTOBUF, **bearer(ADMIN_KEY)}
        )
        assert huge.status_code == 413 and huge.headers["content-type"] == "application/x-protobuf"
        answer.ParseFromString(huge.content)
        assert answer.code == 8 and "PROMPTKEEPER_MAX_BODY_BYTES" in answer.message
        # only traces are served; the other OTLP signals answer in OTLP's shape too
        metrics = client.post("/otlp/v1/metrics", content=body, headers={**JSON, **bearer(ADMIN_KEY)})
        assert metrics.status_code == 404 and metrics.json()["code"] == 5


def test_langfuse_prompt_link_is_understood(otlp: TestClient) -> None:
    span = _span(
        7,
        **{
            "langfuse.observation.prompt.name": NAME,
            "langfuse.observation.prompt.version": 1,
            "langfuse.observation.output": json.dumps("from langfuse"),
            "langfuse.observation.model.name": "gpt-4o",
            "langfuse.observation.usage_details": json.dumps({"input": 10, "output": 5}),
        },
    )
    response = otlp.post("/otlp/v1/traces", content=json.dumps(_request(span)), headers=JSON)
    assert response.status_code == 200 and response.json() == {}
    assert _generations(otlp) == 1
