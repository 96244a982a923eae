"""Refuse text no database stores (NUL, lone surrogates) in requests before it reaches the database.

PostgreSQL stores no NUL in `text` or `jsonb` ("text fields cannot contain NUL (0x00) bytes"), so a
name, filter or template containing one used to end in a 500 on PostgreSQL while SQLite stored it;
a lone surrogate in a JSON body (`"\\ud800"`) was a 500 on PostgreSQL and, on SQLite, an object
that failed every later read (`promptkeeper.core.storable`). One app-wide dependency turns both
into a 422 naming the field, the same on both backends, for path and query parameters and JSON
bodies (form posts of the UI are not covered).

Cheap on the hot path: a substring test on the raw query string and the path; a body is parsed
again only when its raw bytes contain the JSON escape of NUL or of a surrogate.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import Request

from promptkeeper.core import storable
from promptkeeper.errors import ValidationFailed, field_errors

NUL = storable.NUL
_JSON_NUL = b"\\u0000"
#: the JSON escape of a surrogate (pairs too, which decode to one character and pass)
_JSON_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


async def reject_nul(request: Request) -> None:
    found: list[tuple[tuple[Any, ...], str]] = []
    if NUL in request.scope["path"]:
        locations: list[tuple[Any, ...]] = [
            ("path", name) for name, value in request.path_params.items() if NUL in str(value)
        ]
        found += [(loc, "nul") for loc in locations or [("path",)]]
    query: bytes = request.scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        found += [
            (("query", name), "nul") for name, value in request.query_params.multi_items() if NUL in value
        ]
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        body = await request.body()
        suspect = _JSON_NUL in body or _JSON_SURROGATE.search(body) is not None
        if suspect and "json" in request.headers.get("content-type", ""):
            try:
                document = json.loads(body)
            except ValueError:
                document = None  # the route's own validation reports malformed JSON
            found += storable.find(document, ("body",))
    if found:
        message, errors = field_errors(storable.errors(found))
        raise ValidationFailed(message, details={"errors": errors})
