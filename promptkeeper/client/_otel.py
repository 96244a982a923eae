"""Linking the spans an instrumentation library starts (openai, anthropic, LangChain ...) to the
prompt in use, when the application cannot reach those spans to set `prompt.otel_attributes()`.

    provider.add_span_processor(otel_span_processor())   # once, where tracing is set up
    with link_spans(prompt):
        reply = openai_client.chat.completions.create(...)  # its span carries the prompt's link

The prompt in use lives in a context variable, so threads and asyncio tasks each see their own.
The processor needs `opentelemetry-sdk` (imported when it is made); `link_spans` needs nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from promptkeeper.client._prompt import Prompt

_linked: ContextVar[Mapping[str, str | int] | None] = ContextVar("promptkeeper_linked_prompt", default=None)


@contextmanager
def link_spans(prompt: Prompt) -> Iterator[None]:
    """Spans started inside this block carry `prompt.otel_attributes()` (with `otel_span_processor`)."""
    token = _linked.set(prompt.otel_attributes())
    try:
        yield
    finally:
        _linked.reset(token)


def otel_span_processor() -> Any:
    """An OpenTelemetry `SpanProcessor` that sets the linked prompt's attributes on every span
    started inside `link_spans(prompt)`."""
    try:
        from opentelemetry.sdk.trace import SpanProcessor
    except ImportError:
        raise ImportError(
            "otel_span_processor needs opentelemetry-sdk: pip install opentelemetry-sdk"
        ) from None

    class PromptSpanProcessor(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            attributes = _linked.get()
            if attributes:
                span.set_attributes(dict(attributes))

    return PromptSpanProcessor()
