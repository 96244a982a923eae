"""An instrumented `openai` client (the OpenTelemetry project's `opentelemetry-instrumentation-openai-v2`)
talks to a fake OpenAI server; its GenAI spans, linked to the prompt by `link_spans`, reach a live
server over the standard OTLP exporter and become the monitor's generation records."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from promptkeeper.client import Client, link_spans, otel_span_processor
from tests.conftest import ADMIN_KEY, LiveServer
from tests.fake_llm import FakeLLM
from tests.helpers import create_prompt, deploy

NAME = "otel/openai"


@pytest.fixture
def instrumented(live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[TracerProvider]:
    # the latest GenAI conventions, with the output text on the span (off by default: privacy)
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "span_only")
    provider = TracerProvider()
    provider.add_span_processor(otel_span_processor())  # before the exporter: it sets the link on start
    exporter = OTLPSpanExporter(
        endpoint=f"{live_server.url}/otlp/v1/traces", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield provider
    finally:
        instrumentor.uninstrument()
        provider.shutdown()


def test_instrumented_openai_spans_become_generation_records(
    live_server: LiveServer, instrumented: TracerProvider
) -> None:
    with FakeLLM(reply=lambda messages: "Paris is the capital.") as llm, live_server.client() as http:
        create_prompt(http, NAME, "Answer: {{ q }}")
        deploy(http, NAME, "production", 1)
        created = http.post(
            "/v1/monitors",
            json={
                "prompt": NAME,
                "sample_rate": 1.0,
                "scorers": [{"scorer": "contains", "params": {"values": ["Paris"]}}],
            },
        )
        assert created.status_code == 201, created.text
        model = openai.OpenAI(base_url=f"{llm.url}/v1", api_key="sk-test", max_retries=0)
        with Client(live_server.url, ADMIN_KEY, environment="production", stream=False) as sdk:
            prompt = sdk.get(NAME)
            for _ in range(3):
                with link_spans(prompt):
                    model.chat.completions.create(
                        model="gpt-4o-mini", messages=prompt.openai_messages(q="capital of France?")
                    )
            unlinked = model.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
            )
            assert unlinked.choices
        assert instrumented.force_flush()
        monitor_id = created.json()["id"]
        deadline = time.monotonic() + 60
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = http.get(f"/v1/monitors/{monitor_id}/status").json()
            current = status["scorers"][0]["current"]
            if status["pending"] == 0 and current and current["n"] == 3:
                break
            time.sleep(0.05)
        assert status["scorers"][0]["current"]["n"] == 3, status
        assert status["scorers"][0]["current"]["level"] == 1.0
        examples = http.get(f"/v1/monitors/{monitor_id}/examples").json()
        assert [e["output"] for e in examples] == ["Paris is the capital."] * 3
        exposition = http.get("/metrics").text
        assert "promptkeeper_otlp_spans_stored_total 3" in exposition
        assert "promptkeeper_otlp_spans_unlinked_total 1" in exposition
