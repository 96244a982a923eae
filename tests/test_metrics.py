"""`GET /metrics`: Prometheus text format with request counts, latency histograms and cache figures."""

from __future__ import annotations

import re
import time

from fastapi.testclient import TestClient

from promptkeeper.runtime.lag import PropagationLag
from tests.helpers import create_prompt, deploy


def _samples(text: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def test_metrics_count_requests_and_cache_hits(client: TestClient) -> None:
    create_prompt(client, "metrics/p", "Hi {{ n }}")
    deploy(client, "metrics/p", "production", 1)
    for _ in range(3):
        assert client.get("/v1/resolve/metrics%2Fp", params={"environment": "production"}).status_code == 200
    assert client.get("/v1/prompts/metrics%2Fnope").status_code == 404
    response = client.get("/metrics", headers={"Authorization": ""})  # no credentials needed
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# TYPE promptkeeper_http_requests_total counter" in text
    assert "# TYPE promptkeeper_http_request_seconds histogram" in text
    samples = _samples(text)
    resolve = 'route="/v1/resolve/{name:path}",method="GET"'
    assert samples[f'promptkeeper_http_requests_total{{{resolve},status="2xx"}}'] == 3
    missing = 'route="/v1/prompts/{name}",method="GET",status="4xx"'
    assert samples[f"promptkeeper_http_requests_total{{{missing}}}"] == 1
    bucket = f"promptkeeper_http_request_seconds_bucket{{{resolve}"
    buckets = [v for k, v in samples.items() if k.startswith(bucket)]
    assert buckets == sorted(buckets) and buckets[-1] == 3  # cumulative, +Inf holds every request
    assert samples[f"promptkeeper_http_request_seconds_count{{{resolve}}}"] == 3
    assert samples["promptkeeper_cache_hits_total"] >= 2 and samples["promptkeeper_cache_misses_total"] >= 1
    assert "promptkeeper_eval_runs_completed_total" in samples  # the in-process worker's figures
    assert not re.search(r"metrics/p", text)  # route templates only, never prompt names


def test_propagation_lag_histogram_is_exposed(client: TestClient) -> None:
    client.app.state.context.runtime.lag.observe("check", time.time() - 0.3)  # type: ignore[attr-defined]
    samples = _samples(client.get("/metrics").text)
    check = 'path="check"'
    assert samples[f"promptkeeper_invalidation_lag_seconds_count{{{check}}}"] == 1
    assert 0.3 <= samples[f"promptkeeper_invalidation_lag_seconds_sum{{{check}}}"] < 5
    assert samples[f'promptkeeper_invalidation_lag_seconds_bucket{{{check},le="0.25"}}'] == 0
    assert samples[f'promptkeeper_invalidation_lag_seconds_bucket{{{check},le="0.5"}}'] == 1
    assert samples['promptkeeper_invalidation_lag_seconds_count{path="pubsub"}'] == 0


def test_lag_ignores_events_without_a_time() -> None:
    lag = PropagationLag()
    lag.observe("pubsub", 0.0)  # an event from a sender that predates the field
    lag.observe("pubsub", 100.0, now=100.02)
    buckets, total = lag.snapshot()["pubsub"]
    assert sum(buckets) == 1 and abs(total - 0.02) < 1e-9
