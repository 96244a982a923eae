"""Span -> prompt link and measurements (`promptkeeper.otel.mapping`): pure, tables of known values."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from promptkeeper.client import Prompt
from promptkeeper.otel.mapping import Linked, Rejected, map_span

START = 1_700_000_000_000_000_000
MS = 1_000_000
LINK = {"promptkeeper.prompt.name": "support/reply", "promptkeeper.prompt.version": 3}


def _value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[_value(v) for v in value]))
    return AnyValue(string_value=value)


def _span(attributes: dict[str, Any], *, events: dict[str, int] | None = None, error: bool = False) -> Span:
    span = Span(
        trace_id=b"\x01" * 16,
        span_id=b"\x02" * 8,
        start_time_unix_nano=START,
        end_time_unix_nano=START + 250 * MS,
        attributes=[KeyValue(key=k, value=_value(v)) for k, v in attributes.items()],
    )
    for name, offset_ms in (events or {}).items():
        span.events.add(name=name, time_unix_nano=START + offset_ms * MS)
    if error:
        span.status.code = Status.STATUS_CODE_ERROR
    return span


def _linked(attributes: dict[str, Any], **kwargs: Any) -> Linked:
    mapped = map_span(_span({**LINK, **attributes}, **kwargs))
    assert isinstance(mapped, Linked), mapped
    return mapped


def test_a_span_without_a_link_is_not_linked() -> None:
    assert map_span(_span({"gen_ai.request.model": "gpt-4o", "http.route": "/x"})) is None


@pytest.mark.parametrize(
    ("attributes", "input_tokens", "output_tokens"),
    [
        ({"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 4}, 10, 4),
        ({"gen_ai.usage.prompt_tokens": 11, "gen_ai.usage.completion_tokens": 5}, 11, 5),  # older names
        ({"llm.token_count.prompt": 12, "llm.token_count.completion": 6}, 12, 6),  # OpenInference
        ({"gen_ai.usage.input_tokens": 13, "gen_ai.usage.prompt_tokens": 99}, 13, None),  # newest first
        ({"gen_ai.usage.input_tokens": -1}, None, None),  # not a count
        ({}, None, None),
    ],
)
def test_tokens(attributes: dict[str, Any], input_tokens: int | None, output_tokens: int | None) -> None:
    linked = _linked(attributes)
    assert (linked.input_tokens, linked.output_tokens) == (input_tokens, output_tokens)


@pytest.mark.parametrize(
    ("attributes", "events", "ttft"),
    [
        ({"gen_ai.server.time_to_first_token": 0.12}, None, 120.0),
        ({}, {"gen_ai.content.completion.chunk": 80, "llm.content.completion.chunk": 90}, 80.0),
        ({}, {"First Token Stream Event": 40}, 40.0),  # OpenInference
        (
            {"langfuse.observation.completion_start_time": json.dumps("2023-11-14T22:13:20.075000+00:00")},
            None,
            75.0,
        ),
        ({}, {"other event": 10}, None),
    ],
)
def test_time_to_first_token(
    attributes: dict[str, Any], events: dict[str, int] | None, ttft: float | None
) -> None:
    linked = _linked(attributes, events=events)
    assert linked.ttft_ms == (pytest.approx(ttft) if ttft is not None else None)
    assert linked.latency_ms == pytest.approx(250.0)


@pytest.mark.parametrize(
    ("attributes", "output"),
    [
        (
            {
                "gen_ai.output.messages": json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": "hi"}]}]
                )
            },
            "hi",
        ),
        ({"gen_ai.completion.0.content": "from openllmetry"}, "from openllmetry"),
        ({"output.value": "from openinference"}, "from openinference"),
        ({"langfuse.observation.output": json.dumps("from langfuse")}, "from langfuse"),
        ({}, None),
    ],
)
def test_output_text(attributes: dict[str, Any], output: str | None) -> None:
    assert _linked(attributes).output == output


def test_finish_reasons_model_and_error() -> None:
    linked = _linked(
        {
            "gen_ai.response.finish_reasons": ["content_filter"],
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
        },
        error=True,
    )
    assert linked.finish_reasons == ["content_filter"] and linked.safety_flag is True
    assert linked.model == "gpt-4o-2024-08-06" and linked.error
    assert _linked({"gen_ai.response.finish_reasons": ["stop"]}).safety_flag is False
    assert _linked({}).safety_flag is None


def test_langfuse_link_and_environment() -> None:
    mapped = map_span(
        _span({"langfuse.observation.prompt.name": "movie-critic", "langfuse.observation.prompt.version": 2})
    )
    assert isinstance(mapped, Linked) and (mapped.prompt, mapped.version, mapped.environment) == (
        "movie-critic",
        2,
        "production",
    )
    staged = map_span(
        _span(
            {
                "langfuse.observation.prompt.name": "movie-critic",
                "langfuse.observation.prompt.version": 2,
                "langfuse.environment": "staging",
            }
        )
    )
    assert isinstance(staged, Linked) and staged.environment == "staging"


@pytest.mark.parametrize(
    ("attributes", "words"),
    [
        ({"promptkeeper.prompt.version": "latest"}, "names the version it ran"),
        ({"promptkeeper.prompt.version": 0}, "names the version it ran"),
        ({"promptkeeper.prompt.name": "Bad Name"}, "is not a prompt name"),
        ({"promptkeeper.prompt.environment": "Prod!"}, "is not an environment name"),
        ({"promptkeeper.prompt.experiment": 4}, "names its promptkeeper.prompt.variant"),
        ({"promptkeeper.prompt.experiment": "x"}, "an experiment id is a number"),
        ({"promptkeeper.prompt.unit": "a\x00b"}, "characters of text"),
        ({"gen_ai.completion.0.content": "nul\x00"}, "without NUL"),
    ],
)
def test_links_that_cannot_be_right_are_rejected(attributes: dict[str, Any], words: str) -> None:
    mapped = map_span(_span({**LINK, **attributes}))
    assert isinstance(mapped, Rejected) and words in mapped.reason


def test_sdk_attributes_round_trip() -> None:
    """What `Prompt.otel_attributes()` sets is what the receiver reads."""
    served = Prompt(
        name="support/reply",
        version=3,
        environment="production",
        revision=1,
        content={"type": "text", "template": "x"},
        variables=[],
        placeholders=[],
        experiment_id=12,
        variant="treatment",
    ).served_to("user-7", "req-1")
    linked = map_span(_span(served.otel_attributes()))
    assert isinstance(linked, Linked)
    assert (linked.prompt, linked.version, linked.environment) == ("support/reply", 3, "production")
    assert (linked.experiment_id, linked.variant, linked.unit, linked.request_id) == (
        12,
        "treatment",
        "user-7",
        "req-1",
    )
    fallback = Prompt.from_fallback("support/reply", "Hello", "production")
    assert fallback.otel_attributes() == {}
