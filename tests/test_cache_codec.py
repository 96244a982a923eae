"""The L2 encoding keeps every field of a cached payload (issue 19.1 lost the experiment split).

Payloads are generated from the dataclasses' own fields and type hints, so a field added to
`Payload` or `Split` is generated here without anyone remembering to; a field of a type this
strategy does not know fails the test instead of going untested.
"""

from __future__ import annotations

import asyncio
import dataclasses
import typing
import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from promptkeeper.runtime import codec
from promptkeeper.runtime.redis_link import RedisLink
from promptkeeper.runtime.resolver import Key, Payload

JSON: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def strategy(hint: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values of the type `hint`, walking dataclasses field by field."""
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        hints = typing.get_type_hints(hint)
        fields = {f.name: strategy(hints[f.name], depth + 1) for f in dataclasses.fields(hint)}
        return st.builds(hint, **fields)
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, typing.get_origin(int | None)) and type(None) in arguments:
        (inner,) = [a for a in arguments if a is not type(None)]
        # a payload nested in a split has no split of its own (the loader never builds one)
        return st.none() if depth > 2 else st.none() | strategy(inner, depth)
    if origin is tuple and arguments[1:] == (Ellipsis,):
        return st.lists(strategy(arguments[0], depth), max_size=3).map(tuple)
    if origin is dict and arguments == (str, Any):
        return st.dictionaries(st.text(max_size=10), JSON, max_size=5)
    scalars: dict[Any, st.SearchStrategy[Any]] = {
        bytes: st.binary(max_size=64),
        str: st.text(max_size=30),
        int: st.integers(),
        float: st.floats(allow_nan=False),
        bool: st.booleans(),
    }
    assert hint in scalars, f"no strategy for a field of type {hint!r}: add one to tests/test_cache_codec.py"
    return scalars[hint]


PAYLOADS: st.SearchStrategy[Payload] = strategy(Payload)


@settings(max_examples=300)
@given(PAYLOADS)
def test_every_field_survives_the_encoding(payload: Payload) -> None:
    raw = codec.encode(payload)
    assert raw.startswith(f"{payload.revision}|".encode())  # what the conditional write reads
    assert codec.decode(raw) == payload


@settings(max_examples=50)
@given(PAYLOADS.filter(lambda p: p.split is not None))
def test_payloads_with_an_experiment_are_generated(payload: Payload) -> None:
    assert payload.split is not None and codec.decode(codec.encode(payload)) == payload


def test_tombstones_and_unreadable_values_are_misses() -> None:
    assert codec.decode(codec.tombstone(7).encode()) is None
    for raw in (b"", b"7", b"7|{", b'7|{"body": 1}', b"7|[]", b'3|1|"etag"|{}'):
        assert codec.decode(raw) is None, raw


@settings(max_examples=25)
@given(PAYLOADS)
def test_every_field_survives_a_real_redis(redis_url: str, payload: Payload) -> None:
    key: Key = (1, "p", "production")

    async def round_trip() -> Payload | None:
        link = RedisLink(redis_url, l2_ttl=30, prefix=f"pktest-{uuid.uuid4().hex[:8]}")
        try:
            await link.put(key, payload)
            return await link.get(key)
        finally:
            await link.close()

    assert asyncio.run(round_trip()) == payload
