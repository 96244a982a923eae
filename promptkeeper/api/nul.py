"""Refuse the NUL character in request text before it reaches the database.

PostgreSQL stores no NUL in `text` or `jsonb` ("text fields cannot contain NUL (0x00) bytes"), so a
name, filter or template containing one used to end in a 500 on PostgreSQL while SQLite stored it.
One app-wide dependency turns it into a 422 naming the field, the same on both backends, for path
and query parameters and JSON bodies (form posts of the UI are not covered).

Cheap on the hot path: a substring test on the raw query string and the path; a body is parsed
again only when its raw bytes contain the JSON escape of NUL.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from promptkeeper.errors import ValidationFailed, field_errors

NUL = "\x00"
_JSON_NUL = b"\\u0000"
_MESSAGE = "must not contain the NUL character (\\u0000)"


def _nul_paths(value: Any, path: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Where in a JSON value a NUL occurs (in a string or in an object's key)."""
    if isinstance(value, str):
        return [path] if NUL in value else []
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if NUL in key:
                found.append((*path, key))
            found.extend(_nul_paths(item, (*path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_nul_paths(item, (*path, index)))
    return found


async def reject_nul(request: Request) -> None:
    locations: list[tuple[Any, ...]] = []
    if NUL in request.scope["path"]:
        locations += [("path", name) for name, value in request.path_params.items() if NUL in str(value)]
        locations = locations or [("path",)]
    query: bytes = request.scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        locations += [("query", name) for name, value in request.query_params.multi_items() if NUL in value]
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        body = await request.body()
        if _JSON_NUL in body and "json" in request.headers.get("content-type", ""):
            try:
                document = json.loads(body)
            except ValueError:
                document = None  # the route's own validation reports malformed JSON
            locations += _nul_paths(document, ("body",))
    if locations:
        message, errors = field_errors(
            [{"loc": loc, "msg": _MESSAGE, "type": "string_nul"} for loc in locations]
        )
        raise ValidationFailed(message, details={"errors": errors})
