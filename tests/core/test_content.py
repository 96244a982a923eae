"""Content validation and canonical hashing (pure)."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from promptkeeper.core.content import PromptContent, content_document, content_hash

ADAPTER: TypeAdapter[object] = TypeAdapter(PromptContent)


def test_hash_ignores_key_order_and_nulls() -> None:
    a = content_document(
        ADAPTER.validate_python({"type": "text", "template": "x", "config": {"a": 1, "b": 2}})
    )  # type: ignore[arg-type]
    b = content_document(
        ADAPTER.validate_python(
            {"config": {"b": 2, "a": 1}, "template": "x", "type": "text", "response_schema": None}
        )  # type: ignore[arg-type]
    )
    assert a == b
    assert content_hash(a) == content_hash(b)
    assert len(content_hash(a)) == 64
    assert content_hash(a) != content_hash({**a, "template": "y"})


def test_chat_items_are_messages_or_placeholders() -> None:
    chat = ADAPTER.validate_python(
        {
            "type": "chat",
            "messages": [{"role": "system", "content": "s"}, {"type": "placeholder", "name": "history"}],
        }
    )
    document = content_document(chat)  # type: ignore[arg-type]
    assert document["messages"] == [
        {"role": "system", "content": "s"},
        {"type": "placeholder", "name": "history"},
    ]
    assert list(document)[0] == "type"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"type": "text"}, "template"),
        ({"type": "image", "template": "x"}, "type"),
        ({"type": "chat", "messages": []}, "at least 1"),
        ({"type": "chat", "messages": [{"role": "", "content": "x"}]}, "role"),
        ({"type": "chat", "messages": [{"type": "placeholder", "name": "bad name"}]}, "pattern"),
        (
            {
                "type": "chat",
                "messages": [{"type": "placeholder", "name": "h"}, {"type": "placeholder", "name": "h"}],
            },
            "unique",
        ),
        ({"type": "text", "template": "x", "unknown": 1}, "Extra inputs"),
    ],
)
def test_invalid_content_is_rejected(raw: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        ADAPTER.validate_python(raw)
    assert fragment in str(info.value)
