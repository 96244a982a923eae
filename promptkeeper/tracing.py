"""Optional OpenTelemetry tracing: a server span per request, child spans where time goes.

Off unless `PROMPTKEEPER_OTEL_ENDPOINT` names an OTLP/HTTP collector, and then it needs the
`otel` extra; without either, `span()` is a no-op costing one global read, so the resolve hot path
pays nothing. The server joins the caller's trace (W3C `traceparent`), so a slow request in the
application's trace shows where PromptKeeper spent the time: the cache miss that read the
database, or the LLM call of an evaluation. Span names use route templates, never prompt names.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

log = logging.getLogger("promptkeeper.tracing")


class TracingUnavailable(RuntimeError):
    """Tracing was asked for but the `otel` extra is not installed."""


_tracer: Tracer | None = None
_provider: TracerProvider | None = None


def setup(endpoint: str | None, service_name: str) -> bool:
    """Export spans to `endpoint` (`http://collector:4318`); returns whether tracing is on."""
    global _tracer, _provider
    if not endpoint:
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise TracingUnavailable(
            "PROMPTKEEPER_OTEL_ENDPOINT is set but OpenTelemetry is not installed: "
            "pip install 'promptkeeper[otel]'"
        ) from exc
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    _provider = provider
    _tracer = provider.get_tracer("promptkeeper")
    log.info("tracing: exporting spans to %s", endpoint)
    return True


def shutdown() -> None:
    """Flush what is buffered (on server stop): spans of the last requests are not lost."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[None]:
    """A child span of the current one when tracing is on; nothing otherwise."""
    tracer = _tracer
    if tracer is None:
        yield
        return
    with tracer.start_as_current_span(name, attributes=attributes):
        yield


class TracingMiddleware:
    """A SERVER span per HTTP request, joined to the caller's trace by its `traceparent`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracer = _tracer
        if tracer is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from opentelemetry.propagate import extract
        from opentelemetry.trace import SpanKind, Status, StatusCode

        carrier = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        method = scope["method"]
        with tracer.start_as_current_span(
            method, context=extract(carrier), kind=SpanKind.SERVER, attributes={"http.request.method": method}
        ) as current:

            async def sending(message: Message) -> None:
                if message["type"] == "http.response.start":
                    current.set_attribute("http.response.status_code", message["status"])
                    if message["status"] >= 500:
                        current.set_status(Status(StatusCode.ERROR))
                await send(message)

            try:
                await self.app(scope, receive, sending)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route is not None:
                    current.set_attribute("http.route", route)
                    current.update_name(f"{method} {route}")
