"""`GET /metrics` in the Prometheus text format, without a client library.

Request counts and a latency histogram per route template, method and status class are kept by a
small ASGI middleware (two clock reads and a dict update per request: nothing measurable next to
the resolve path's cache hit); cache, invalidation, webhook, evaluation and monitoring figures
are read from the components that already count them when the endpoint is scraped.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from promptkeeper.runtime.lag import BUCKETS as LAG_BUCKETS

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
router = APIRouter(tags=["health"])


class RequestMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[tuple[str, str, str], int] = {}
        self.buckets: dict[tuple[str, str], list[int]] = {}
        self.sums: dict[tuple[str, str], float] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method)
        with self._lock:
            counted = (route, method, f"{status // 100}xx")
            self.counts[counted] = self.counts.get(counted, 0) + 1
            buckets = self.buckets.get(key)
            if buckets is None:
                buckets = self.buckets[key] = [0] * (len(BUCKETS) + 1)
            buckets[bisect_left(BUCKETS, seconds)] += 1
            self.sums[key] = self.sums.get(key, 0.0) + seconds


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.observe(route, scope["method"], status, time.perf_counter() - started)


def _line(name: str, labels: dict[str, Any], value: float) -> str:
    if labels:
        inner = ",".join(f'{key}="{str(val).replace(chr(34), "")}"' for key, val in labels.items())
        return f"{name}{{{inner}}} {value:g}"
    return f"{name} {value:g}"


def _family(name: str, kind: str, help_text: str, samples: Iterable[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]


def _histogram(
    name: str, labels: dict[str, Any], bounds: tuple[float, ...], values: list[int], total: float
) -> list[str]:
    samples: list[str] = []
    running = 0
    for bound, count in zip((*bounds, float("inf")), values, strict=True):
        running += count
        le = "+Inf" if bound == float("inf") else f"{bound:g}"
        samples.append(_line(f"{name}_bucket", {**labels, "le": le}, running))
    samples.append(_line(f"{name}_sum", labels, total))
    samples.append(_line(f"{name}_count", labels, running))
    return samples


def exposition(
    metrics: RequestMetrics, context: Any, extra: Iterable[tuple[str, str, str, float]] = ()
) -> str:
    lines: list[str] = []
    with metrics._lock:
        counts = dict(metrics.counts)
        buckets = {key: list(values) for key, values in metrics.buckets.items()}
        sums = dict(metrics.sums)
    lines += _family(
        "promptkeeper_http_requests_total",
        "counter",
        "HTTP requests by route template, method and status class.",
        (
            _line("promptkeeper_http_requests_total", {"route": r, "method": m, "status": s}, n)
            for (r, m, s), n in sorted(counts.items())
        ),
    )
    histogram: list[str] = []
    for (route, method), values in sorted(buckets.items()):
        labels = {"route": route, "method": method}
        total = sums[(route, method)]
        histogram += _histogram("promptkeeper_http_request_seconds", labels, BUCKETS, values, total)
    lines += _family("promptkeeper_http_request_seconds", "histogram", "HTTP request latency.", histogram)
    lag: list[str] = []
    for path, (values, total) in context.runtime.lag.snapshot().items():
        lag += _histogram("promptkeeper_invalidation_lag_seconds", {"path": path}, LAG_BUCKETS, values, total)
    lines += _family(
        "promptkeeper_invalidation_lag_seconds",
        "histogram",
        "From a release change being recorded to this instance dropping its cached copy, by path "
        "(pubsub, or the periodic check that catches missed messages).",
        lag,
    )
    status = context.runtime.status()
    cache, invalidation = status["cache"], status["invalidation"]
    worker = context.worker
    single: list[tuple[str, str, str, float]] = [
        ("cache_hits_total", "counter", "Resolves answered from the in-process cache.", cache["hits"]),
        ("cache_misses_total", "counter", "Resolves loaded from Redis or the database.", cache["misses"]),
        ("cache_shared_hits_total", "counter", "Misses answered from Redis.", cache["shared_hits"]),
        (
            "cache_stale_served_total",
            "counter",
            "Stale copies served, the database down.",
            cache["stale_served"],
        ),
        ("cache_entries", "gauge", "Prompts in the in-process cache.", cache["entries"]),
        (
            "invalidations_received_total",
            "counter",
            "Invalidations received over Redis.",
            invalidation["pubsub_messages"],
        ),
        (
            "invalidation_checks_total",
            "counter",
            "Periodic checks for missed invalidations.",
            invalidation["checks"],
        ),
        (
            "invalidations_by_check_total",
            "counter",
            "Changes the periodic check caught.",
            invalidation["check_invalidations"],
        ),
        ("stream_subscribers", "gauge", "Open /v1/stream connections.", status["stream_subscribers"]),
    ]
    if worker is not None:
        single += [
            (
                "eval_runs_completed_total",
                "counter",
                "Evaluation runs this process executed.",
                worker.completed,
            ),
            (
                "monitor_records_scored_total",
                "counter",
                "Generations this process scored.",
                worker.scored,
            ),
            (
                "monitor_judge_calls_total",
                "counter",
                "LLM-judge calls of monitors.",
                worker.judge_calls,
            ),
        ]
    single += list(extra)
    for short, kind, help_text, value in single:
        name = f"promptkeeper_{short}"
        lines += _family(name, kind, help_text, [_line(name, {}, value)])
    return "\n".join(lines) + "\n"


@router.get("/metrics", response_class=Response)
async def metrics_endpoint(request: Request) -> Response:
    """Prometheus metrics of this process (no credentials: counts only, no names of prompts)."""
    state = request.app.state
    extra = state.otlp.samples() if hasattr(state, "otlp") else ()
    return Response(exposition(state.metrics, state.context, extra), media_type="text/plain; version=0.0.4")
