"""One OTLP span -> what PromptKeeper learns from it: the prompt version it ran and its measurements.

Pure (no I/O): a span is linked to a prompt version by the attributes the SDK's
`Prompt.otel_attributes()` sets (`promptkeeper.prompt.*`) or by Langfuse's prompt link
(`langfuse.observation.prompt.name` / `.version`), so applications moving from Langfuse keep their
instrumentation. A span without a link is `None` (counted and dropped by the receiver); a link that
cannot be right (a version that is not a number, a name that is no prompt name) is a `Rejected`
with the reason, which the receiver reports in the OTLP partial-success answer.

The measurements follow the GenAI semantic conventions first and the older names that
instrumentations still emit after them (OpenLLMetry, OpenInference, Langfuse); docs/opentelemetry.md
has the table.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from promptkeeper.core import storable
from promptkeeper.core.fields import ENVIRONMENT_PATTERN, NAME_PATTERN
from promptkeeper.experiments.schemas import MAX_OUTPUT_CHARS

#: The attributes `Prompt.otel_attributes()` sets (both SDKs use these keys).
NAME = "promptkeeper.prompt.name"
VERSION = "promptkeeper.prompt.version"
ENVIRONMENT = "promptkeeper.prompt.environment"
REQUEST_ID = "promptkeeper.prompt.request_id"
UNIT = "promptkeeper.prompt.unit"
EXPERIMENT = "promptkeeper.prompt.experiment"
VARIANT = "promptkeeper.prompt.variant"
#: Langfuse's prompt link (langfuse-python `LangfuseOtelSpanAttributes`).
LANGFUSE_NAME = "langfuse.observation.prompt.name"
LANGFUSE_VERSION = "langfuse.observation.prompt.version"
LANGFUSE_ENVIRONMENT = "langfuse.environment"
DEFAULT_ENVIRONMENT = "production"

_PROMPT_NAME = re.compile(NAME_PATTERN)
_ENVIRONMENT_NAME = re.compile(ENVIRONMENT_PATTERN)
_MAX_TEXT = 128

_INPUT_TOKENS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
    "llm.usage.prompt_tokens",
)
_OUTPUT_TOKENS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
    "llm.usage.completion_tokens",
)
_MODEL = (
    "gen_ai.response.model",
    "gen_ai.request.model",
    "llm.model_name",
    "langfuse.observation.model.name",
)
#: seconds from the request to the first token, as an attribute
_TTFT_SECONDS = ("gen_ai.server.time_to_first_token", "gen_ai.response.time_to_first_chunk")
#: span events whose first occurrence marks the first token (OpenLLMetry streams chunk events;
#: OpenInference records "First Token Stream Event")
_FIRST_TOKEN_EVENTS = frozenset(
    {"gen_ai.content.completion.chunk", "llm.content.completion.chunk", "First Token Stream Event"}
)
_SAFETY_FINISH = frozenset({"content_filter", "safety", "refusal"})
_OUTPUT_MESSAGES = "gen_ai.output.messages"
_LANGFUSE_USAGE = "langfuse.observation.usage_details"
_OUTPUT_TEXTS = ("gen_ai.completion.0.content", "llm.output_messages.0.message.content", "output.value")
_STRINGS = (
    NAME,
    ENVIRONMENT,
    REQUEST_ID,
    UNIT,
    VARIANT,
    LANGFUSE_NAME,
    LANGFUSE_ENVIRONMENT,
    *_MODEL,
    _OUTPUT_MESSAGES,
    *_OUTPUT_TEXTS,
    _LANGFUSE_USAGE,
    "langfuse.observation.completion_start_time",
    "langfuse.observation.output",
    "gen_ai.completion.0.finish_reason",
)
_NUMBERS = (VERSION, EXPERIMENT, LANGFUSE_VERSION, *_INPUT_TOKENS, *_OUTPUT_TOKENS)
#: every attribute `map_span` reads (the others are skipped unconverted), with the `AnyValue` field
#: its value is usually in: read first, a set value is found in one call instead of two (the
#: oneof's name, then its field), and only an unset one costs the `WhichOneof` that says which
_READ: dict[str, str] = {
    **dict.fromkeys(_STRINGS, "string_value"),
    **dict.fromkeys(_NUMBERS, "int_value"),
    **dict.fromkeys(_TTFT_SECONDS, "double_value"),
    "gen_ai.response.finish_reasons": "array_value",
}


@dataclass(slots=True)
class Rejected:
    reason: str


@dataclass(slots=True)
class Linked:
    """A span linked to a prompt version, with what it measured (None: the span did not say)."""

    prompt: str
    version: int
    environment: str
    request_id: str | None
    unit: str | None
    experiment_id: int | None
    variant: str | None
    at: datetime
    latency_ms: float | None
    ttft_ms: float | None
    input_tokens: int | None
    output_tokens: int | None
    model: str | None
    error: bool
    finish_reasons: list[str] = field(default_factory=list)
    output: str | None = None
    #: the span's trace id and span id in hex, set by the receiver once it has checked their lengths
    span_key: str = ""

    @property
    def safety_flag(self) -> bool | None:
        """True when the model stopped for a content filter or a refusal; None when it did not say."""
        if not self.finish_reasons:
            return None
        return not _SAFETY_FINISH.isdisjoint(self.finish_reasons)


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        items = value.array_value.values
        if len(items) == 1:  # most arrays (finish reasons) hold one item
            return [value_of(items[0])]
        return [value_of(item) for item in items]
    if kind == "kvlist_value":
        return {item.key: value_of(item.value) for item in value.kvlist_value.values}
    return getattr(value, kind)


def attributes(items: Any, wanted: dict[str, str] | None = None) -> dict[str, Any]:
    """A repeated `KeyValue` field as a dict (the last value of a repeated key wins), of the
    `wanted` keys only when given (key -> the field its value is usually in): instrumentations
    attach many attributes this module never reads (prompts, tool definitions), and every access
    to a protobuf field is a lookup by name and a new object: half of a span's mapping cost."""
    found: dict[str, Any] = {}
    item: KeyValue
    for item in items:
        key = item.key
        usual = None
        if wanted is not None:
            usual = wanted.get(key)
            if usual is None:
                continue
        value = item.value
        if usual is not None and usual != "array_value":
            direct = getattr(value, usual)
            if direct:  # a falsy one may be that field's default or another field: ask
                found[key] = direct
                continue
        kind = value.WhichOneof("value")
        if kind == "string_value":
            found[key] = value.string_value
        elif kind == "int_value":
            found[key] = value.int_value
        else:
            found[key] = value_of(value)
    return found


def describe(span: Span) -> str:
    return f"span {span.span_id.hex() or '-'} of trace {span.trace_id.hex() or '-'}"


def map_span(span: Span) -> Linked | Rejected | None:
    """What `span` tells about a prompt version, a reason to reject it, or None when not linked."""
    attrs = attributes(span.attributes, _READ)
    name = attrs.get(NAME)
    version = attrs.get(VERSION)
    environment = attrs.get(ENVIRONMENT)
    if name is None and LANGFUSE_NAME in attrs:
        name, version = attrs.get(LANGFUSE_NAME), attrs.get(LANGFUSE_VERSION)
        environment = environment if environment is not None else attrs.get(LANGFUSE_ENVIRONMENT)
    if name is None:
        return None
    if not isinstance(name, str) or len(name) > _MAX_TEXT or not _PROMPT_NAME.match(name):
        return Rejected(f"{NAME}: {str(name)[:_MAX_TEXT]!r} is not a prompt name")
    number = _integer(version)
    if number is None or number < 1:
        return Rejected(f"{VERSION}: a linked span names the version it ran (a number >= 1), not {version!r}")
    if environment is None or environment == "default":  # Langfuse's environment when none is set
        environment = DEFAULT_ENVIRONMENT
    if not isinstance(environment, str) or not _ENVIRONMENT_NAME.match(environment):
        return Rejected(f"{ENVIRONMENT}: {str(environment)[:64]!r} is not an environment name")
    experiment = attrs.get(EXPERIMENT)
    experiment_id = _integer(experiment)
    if experiment is not None and (experiment_id is None or experiment_id < 1):
        return Rejected(f"{EXPERIMENT}: an experiment id is a number, not {experiment!r}")
    request_id, unit, variant = attrs.get(REQUEST_ID), attrs.get(UNIT), attrs.get(VARIANT)
    for key, text in ((REQUEST_ID, request_id), (UNIT, unit), (VARIANT, variant)):
        if text is not None and (
            not isinstance(text, str) or not 0 < len(text) <= _MAX_TEXT or storable.problem(text)
        ):
            return Rejected(f"{key}: 1 to {_MAX_TEXT} characters of text")
    if experiment_id is not None and (variant is None or unit is None):
        return Rejected(f"{EXPERIMENT}: a span in an experiment names its {VARIANT} and {UNIT}")
    messages = _json(attrs.get(_OUTPUT_MESSAGES))
    output = _output(attrs, messages, span)
    if output is not None and (storable.problem(output) or len(output) > MAX_OUTPUT_CHARS):
        return Rejected(
            f"output: at most {MAX_OUTPUT_CHARS:,} characters of text without NUL or lone surrogates"
        )
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    latency = (end - start) / 1e6 if start and end >= start else None
    input_tokens = _first_count(attrs, _INPUT_TOKENS)
    output_tokens = _first_count(attrs, _OUTPUT_TOKENS)
    usage = _json(attrs.get(_LANGFUSE_USAGE))
    if isinstance(usage, dict):
        input_tokens = input_tokens if input_tokens is not None else _count(usage.get("input"))
        output_tokens = output_tokens if output_tokens is not None else _count(usage.get("output"))
    model = None
    for key in _MODEL:
        found = attrs.get(key)
        if found and isinstance(found, str):
            model = found
            break
    return Linked(
        prompt=name,
        version=number,
        environment=environment,
        request_id=request_id,
        unit=unit,
        experiment_id=experiment_id,
        variant=variant,
        at=datetime.fromtimestamp((end or start) / 1e9, tz=UTC) if (end or start) else datetime.now(UTC),
        latency_ms=latency,
        ttft_ms=_ttft_ms(attrs, span),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        model=model,
        error=span.status.code == Status.STATUS_CODE_ERROR,
        finish_reasons=_finish_reasons(attrs, messages),
        output=output,
    )


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isdigit() and len(value) < 10:
        return int(value)
    return None


def _count(value: Any) -> int | None:
    number = _integer(value)
    return number if number is not None and 0 <= number < 2**31 else None


def _first_count(attrs: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = attrs.get(key)
        if value is not None and (number := _count(value)) is not None:
            return number
    return None


def _json(value: Any) -> Any:
    if value is None or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return None


def _ttft_ms(attrs: dict[str, Any], span: Span) -> float | None:
    for key in _TTFT_SECONDS:
        seconds = attrs.get(key)
        if (
            seconds is not None
            and isinstance(seconds, int | float)
            and not isinstance(seconds, bool)
            and seconds >= 0
        ):
            return float(seconds) * 1000
    start = span.start_time_unix_nano
    if span.events:
        firsts = [e.time_unix_nano for e in span.events if e.name in _FIRST_TOKEN_EVENTS and e.time_unix_nano]
        if firsts and start and min(firsts) >= start:
            return float(min(firsts) - start) / 1e6
    completion_start = attrs.get("langfuse.observation.completion_start_time")
    if isinstance(completion_start, str) and start:
        try:
            at = datetime.fromisoformat(str(_json(completion_start) or completion_start))
        except ValueError:
            return None
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        milliseconds = at.timestamp() * 1000 - start / 1e6
        return milliseconds if milliseconds >= 0 else None
    return None


def _finish_reasons(attrs: dict[str, Any], messages: Any) -> list[str]:
    reasons = attrs.get("gen_ai.response.finish_reasons")
    if isinstance(reasons, str):
        reasons = [reasons]
    if isinstance(reasons, list):
        return [str(reason) for reason in reasons]
    single = attrs.get("gen_ai.completion.0.finish_reason")
    if isinstance(single, str):
        return [single]
    if isinstance(messages, list):
        return [str(m["finish_reason"]) for m in messages if isinstance(m, dict) and m.get("finish_reason")]
    return []


def _output(attrs: dict[str, Any], messages: Any, span: Span) -> str | None:
    """The model's text: GenAI output messages (`messages`, decoded), OpenLLMetry's completion,
    OpenInference's output, Langfuse's observation output, or a `gen_ai.choice` span event (older
    GenAI conventions)."""
    if isinstance(messages, list):
        texts = [
            str(part.get("content"))
            for message in messages
            if isinstance(message, dict)
            for part in message.get("parts") or []
            if isinstance(part, dict) and part.get("type") == "text" and part.get("content") is not None
        ]
        if texts:
            return "\n".join(texts)
    for key in _OUTPUT_TEXTS:
        text = attrs.get(key)
        if isinstance(text, str):
            return text
    langfuse = attrs.get("langfuse.observation.output")
    if isinstance(langfuse, str):
        decoded = _json(langfuse)
        if isinstance(decoded, str):
            return decoded
        if isinstance(decoded, dict) and isinstance(decoded.get("content"), str):
            return str(decoded["content"])
        return langfuse
    for event in span.events:
        if event.name == "gen_ai.choice":
            message = _json(attributes(event.attributes).get("message"))
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                return str(message["content"])
    return None
