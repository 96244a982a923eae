"""Text that no database stores: the NUL character and lone UTF-16 surrogates.

PostgreSQL refuses NUL in `text` and `jsonb`; a lone surrogate (JSON may spell `"\\ud800"`, Python
decodes it to a string UTF-8 cannot encode) is refused by jsonb and by UTF-8 encoders, while
SQLite's JSON columns keep its escape and every later read then fails to serialise. Finding them
up front turns both into a 422 naming the field, the same on both backends.
"""

from __future__ import annotations

from typing import Any

NUL = "\x00"
NUL_MESSAGE = "must not contain the NUL character (\\u0000)"
SURROGATE_MESSAGE = "must not contain a lone UTF-16 surrogate (\\ud800-\\udfff): it is not Unicode text"


def problem(text: str) -> str | None:
    """`"nul"`, `"surrogate"` or None for text that can be stored."""
    if NUL in text:
        return "nul"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "surrogate"
    return None


def printable(text: str) -> str:
    """A key fit to name in an error message (its surrogates escaped, its NULs dropped)."""
    return text.replace(NUL, "").encode("utf-8", "backslashreplace").decode("utf-8")


def find(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], str]]:
    """Where in a JSON value unstorable text occurs (a string or an object's key), and which kind."""
    if isinstance(value, str):
        kind = problem(value)
        return [(path, kind)] if kind else []
    found: list[tuple[tuple[Any, ...], str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            name = printable(key) if isinstance(key, str) else key
            kind = problem(key) if isinstance(key, str) else None
            if kind:
                found.append(((*path, name), kind))
            found.extend(find(item, (*path, name)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(find(item, (*path, index)))
    return found


def errors(found: list[tuple[tuple[Any, ...], str]]) -> list[dict[str, Any]]:
    """As pydantic-style errors, for `errors.field_errors`."""
    return [
        {
            "loc": loc,
            "msg": NUL_MESSAGE if kind == "nul" else SURROGATE_MESSAGE,
            "type": "string_nul" if kind == "nul" else "string_surrogate",
        }
        for loc, kind in found
    ]
