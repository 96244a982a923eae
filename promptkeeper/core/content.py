"""The shape of a prompt version's content, its canonical JSON and its hash.

Pure: pydantic only. The canonical form (sorted keys, no insignificant whitespace, `None` fields
dropped) is what `content_hash` is computed from, so two requests that differ only in key order or
in an explicit `null` produce the same hash and are recognised as "unchanged content".
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from promptkeeper.core.templates import content_placeholders, content_variables

__all__ = [
    "ChatContent",
    "ChatItem",
    "Message",
    "Placeholder",
    "PromptContent",
    "TextContent",
    "canonical_json",
    "content_hash",
]

MAX_TEMPLATE_CHARS = 200_000
MAX_MESSAGES = 500
#: The roles every provider knows; others are kept as written. Langfuse takes any string role, and
#: so do providers' newer ones (`function`, or a persona in a multi-agent prompt): refusing them
#: made prompts moved from Langfuse fail at save.
STANDARD_ROLES = ("system", "developer", "user", "assistant", "tool")
Role = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\s\x00-\x1f\x7f]+$")]


class Message(BaseModel):
    """One chat message whose `content` is a template."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    content: str = Field(max_length=MAX_TEMPLATE_CHARS)


class Placeholder(BaseModel):
    """A slot the caller fills with a list of messages at render time (e.g. conversation history)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["placeholder"]
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)


def _chat_item_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return "placeholder" if kind == "placeholder" else "message"


ChatItem = Annotated[
    Annotated[Message, Tag("message")] | Annotated[Placeholder, Tag("placeholder")],
    Discriminator(_chat_item_kind),
]


class _ContentBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    examples: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=1000,
        description="Few-shot examples; templates can read them as the variable `examples`.",
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="Free model configuration: model, temperature, max_tokens, tools, ...",
    )
    response_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema the model's output is expected to follow."
    )


class TextContent(_ContentBase):
    type: Literal["text"]
    template: str = Field(max_length=MAX_TEMPLATE_CHARS)


class ChatContent(_ContentBase):
    type: Literal["chat"]
    messages: list[ChatItem] = Field(min_length=1, max_length=MAX_MESSAGES)

    @model_validator(mode="after")
    def _unique_placeholders(self) -> ChatContent:
        names = [m.name for m in self.messages if isinstance(m, Placeholder)]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"placeholder names must be unique: {', '.join(duplicates)}")
        return self


PromptContent = Annotated[TextContent | ChatContent, Field(discriminator="type")]


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(content: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a content document (as stored)."""
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()


def content_document(content: TextContent | ChatContent) -> dict[str, Any]:
    """The JSON document stored for a version: no `None` fields, so equal content hashes equally."""
    document = content.model_dump(mode="json", exclude_none=True)
    order = ("type", "template", "messages", "examples", "config", "response_schema")
    # a readable order for people reading stored JSON; the hash sorts keys anyway
    return {key: document[key] for key in order if key in document}


def describe(content: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Variables and placeholders of a content document (raises `InvalidTemplate`)."""
    return content_variables(content), content_placeholders(content)
