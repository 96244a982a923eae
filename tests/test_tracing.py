"""Optional OpenTelemetry tracing, exported over real OTLP/HTTP to a collector stand-in that decodes
the protobuf the way a collector does."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from promptkeeper import tracing
from promptkeeper.app import create_app
from tests.conftest import ADMIN_KEY, Backend, make_settings
from tests.helpers import bearer, create_prompt, deploy

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class Collector:
    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.resources: list[dict[str, str]] = []
        self.paths: list[str] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.paths.append(f"{self.path} {self.headers['Content-Type']}")
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for resource_spans in request.resource_spans:
                    attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                    collector.resources.append(attributes)
                    for scope_spans in resource_spans.scope_spans:
                        collector.spans.extend(scope_spans.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def attributes(self, span: Any) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for attribute in span.attributes:
            value = attribute.value
            found[attribute.key] = value.int_value if value.HasField("int_value") else value.string_value
        return found


@pytest.fixture
def collector() -> Iterator[Collector]:
    stand_in = Collector()
    yield stand_in
    stand_in.server.shutdown()
    stand_in.server.server_close()
    tracing.shutdown()


def test_requests_are_traced_and_join_the_callers_trace(
    backend: Backend, tmp_path: Path, collector: Collector
) -> None:
    settings = make_settings(backend, tmp_path, otel_endpoint=collector.url, otel_service_name="pk-test")
    with TestClient(create_app(settings), headers=bearer(ADMIN_KEY)) as client:
        create_prompt(client, "traced/p", "Hello {{ name }}")
        deploy(client, "traced/p", "production", 1)
        traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
        response = client.get(
            "/v1/resolve/traced%2Fp",
            params={"environment": "production"},
            headers={"traceparent": traceparent},
        )
        assert response.status_code == 200
        assert client.get("/v1/prompts/traced%2Fnope").status_code == 404
    # leaving the app flushed the batch: no sleeping for the exporter
    assert collector.paths and all(p == "/v1/traces application/x-protobuf" for p in collector.paths)
    assert {"service.name": "pk-test"}.items() <= collector.resources[0].items()
    by_name: dict[str, list[Any]] = {}
    for span in collector.spans:
        by_name.setdefault(span.name, []).append(span)
    (resolve,) = by_name["GET /v1/resolve/{name:path}"]
    assert resolve.trace_id.hex() == TRACE_ID and resolve.parent_span_id.hex() == PARENT_ID
    assert collector.attributes(resolve)["http.response.status_code"] == 200
    assert collector.attributes(resolve)["http.route"] == "/v1/resolve/{name:path}"
    # the cache was cold for this key: the database read is a child span of the request
    (load,) = [s for s in by_name["promptkeeper.resolve.load"] if s.trace_id.hex() == TRACE_ID]
    assert load.parent_span_id == resolve.span_id
    assert collector.attributes(load)["promptkeeper.environment"] == "production"
    (missing,) = by_name["GET /v1/prompts/{name}"]
    assert collector.attributes(missing)["http.response.status_code"] == 404
    assert all("traced/p" not in span.name for span in collector.spans)  # templates, not names


def test_tracing_off_exports_nothing(backend: Backend, tmp_path: Path, collector: Collector) -> None:
    with TestClient(create_app(make_settings(backend, tmp_path)), headers=bearer(ADMIN_KEY)) as client:
        assert client.get("/v1/prompts").status_code == 200
    assert collector.paths == [] and tracing._tracer is None


def test_missing_extra_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(tracing.TracingUnavailable, match=r"promptkeeper\[otel\]"):
        tracing.setup("http://127.0.0.1:4318", "x")
    # `serve` in its own process (it configures logging): one line and exit code 2, not a traceback
    hide = "import sys; sys.modules['opentelemetry.exporter.otlp.proto.http.trace_exporter'] = None"
    env = {
        **os.environ,
        "PROMPTKEEPER_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "PROMPTKEEPER_OTEL_ENDPOINT": "http://127.0.0.1:4318",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            f"{hide}; from promptkeeper.cli import main; sys.argv[1:] = ['serve']; main()",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: PROMPTKEEPER_OTEL_ENDPOINT is set but OpenTelemetry is not installed: "
        "pip install 'promptkeeper[otel]'"
    )
    assert "Traceback" not in result.stderr
