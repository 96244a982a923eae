"""The two bases of the API's bodies: what a request may send, and how a response reads a row.

Every domain's schemas derive from these, so the rules are the same everywhere: an unknown field
in a request is a 422 naming it, and a response is validated from the ORM row it shows, with
`validation_alias` where the API's name differs from the column's. Neither base changes a JSON
schema, so the OpenAPI document does not depend on them.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict


class RequestBody(BaseModel):
    """A request body: a misspelt optional field would otherwise be dropped without a word."""

    model_config = ConfigDict(extra="forbid")


class ReadModel(BaseModel):
    """A response body, validated from the attributes of a row: `XRead.model_validate(row)`.

    `validate_by_name` lets code that has the values in hand (not a row) construct the model
    with the API's field names, also where a field reads its column through an alias.
    """

    model_config = ConfigDict(from_attributes=True, validate_by_name=True)

    @classmethod
    def of(cls, row: object, /, **fields: Any) -> Self:
        """Validate from `row`, with `fields` for what the row does not hold as an attribute.

        A name joined from another table, a status the caller computed, a value derived from
        two columns: given here, they take precedence over an attribute of the same name.
        """
        return cls.model_validate(_Overlay(row, fields))


class _Overlay:
    """A row seen through a few replaced attributes (what `from_attributes` validation reads)."""

    __slots__ = ("_fields", "_row")

    def __init__(self, row: object, fields: dict[str, Any]) -> None:
        self._row = row
        self._fields = fields

    def __getattr__(self, name: str) -> Any:  # only called for names that are not slots
        if name in self._fields:
            return self._fields[name]
        return getattr(self._row, name)
