"""The L2 (Redis) encoding of a resolved payload, derived from the dataclasses' own fields.

An entry read back from Redis must serve exactly what the loader built. A hand-written encoding
of four fields once dropped the experiment split (issue 19.1): every instance that took a release
from Redis served the control to every unit. So the encoding walks `dataclasses.fields` and the
type hints: a field added to `Payload` or `Split` is stored without anyone remembering to, and a
field of a type this module cannot encode fails at import, not in production.

The value is `b"<revision>|<json>"` (the revision first, for the conditional-write script) or a
tombstone `b"<revision>|"`. Bytes are base64 in the JSON. A value that does not decode into the
current fields (an older format, a missing field) is a miss, never a partial payload.

No pickle: whoever can write to Redis would run code in every server.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import json
import types
import typing
from typing import Any

from promptkeeper.runtime.resolver import Payload

_SCALARS: tuple[type, ...] = (str, int, float, bool)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _optional(hint: Any) -> Any | None:
    """`X` of `X | None`, else None."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        arguments = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(arguments) == 1 and len(typing.get_args(hint)) == 2:
            return arguments[0]
    return None


def _check(hint: Any, seen: set[type]) -> None:
    """Raise TypeError for a type `_plain`/`_typed` would not round-trip."""
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if hint not in seen:
            seen.add(hint)
            for field in dataclasses.fields(hint):
                _check(_hints(hint)[field.name], seen)
        return
    inner = _optional(hint)
    if inner is not None:
        return _check(inner, seen)
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple and len(arguments) == 2 and arguments[1] is Ellipsis:
        return _check(arguments[0], seen)
    if origin is dict and arguments == (str, Any):
        return  # JSON documents (prompt content): stored as they are
    if hint is bytes or hint in _SCALARS:
        return
    raise TypeError(f"the L2 encoding cannot store a field of type {hint!r}: teach runtime/codec.py")


def _plain(value: Any, hint: Any) -> Any:
    if value is None:
        return None
    if dataclasses.is_dataclass(hint):
        hints = _hints(hint)  # type: ignore[arg-type]
        return {f.name: _plain(getattr(value, f.name), hints[f.name]) for f in dataclasses.fields(hint)}
    inner = _optional(hint)
    if inner is not None:
        return _plain(value, inner)
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        return [_plain(v, item) for v in value]
    if hint is bytes:
        return base64.b64encode(value).decode("ascii")
    return value


def _typed(data: Any, hint: Any) -> Any:
    inner = _optional(hint)
    if inner is not None:
        return None if data is None else _typed(data, inner)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        hints = _hints(hint)
        return hint(**{f.name: _typed(data[f.name], hints[f.name]) for f in dataclasses.fields(hint)})
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        return tuple(_typed(v, item) for v in data)
    if hint is bytes:
        return base64.b64decode(data, validate=True)
    if hint is float:
        return float(data)
    if hint in _SCALARS and not isinstance(data, hint):
        raise TypeError(f"expected {hint.__name__}, got {type(data).__name__}")
    if typing.get_origin(hint) is dict and not isinstance(data, dict):
        raise TypeError(f"expected an object, got {type(data).__name__}")
    return data


_check(Payload, set())


def encode(payload: Payload) -> bytes:
    document = json.dumps(_plain(payload, Payload), separators=(",", ":"))
    return f"{payload.revision}|".encode() + document.encode()


def tombstone(revision: int) -> str:
    return f"{revision}|"


def decode(raw: bytes) -> Payload | None:
    """The payload, or None for a tombstone or a value this version cannot read."""
    _, separator, document = raw.partition(b"|")
    if not separator or not document:
        return None
    try:
        payload: Payload = _typed(json.loads(document), Payload)
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    return payload
