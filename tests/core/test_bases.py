"""The bodies' bases: a request refuses unknown fields; a response reads a row, never more of it."""

from __future__ import annotations

import pytest
from pydantic import Field, ValidationError

from promptkeeper.core.bases import ReadModel, RequestBody


class _Row:
    """Stands for an ORM row: plain attributes, one of them a secret stored sealed."""

    id = 7
    version_number = 3
    secret = "sealed:ab12"
    version = "a relationship-like attribute the alias must win over"


class _Read(ReadModel):
    id: int
    version: int = Field(validation_alias="version_number")


class _Created(_Read):
    secret: str


class _Create(RequestBody):
    name: str


def test_a_read_model_reads_its_columns_through_aliases() -> None:
    assert _Read.model_validate(_Row()).model_dump() == {"id": 7, "version": 3}


def test_given_fields_take_precedence_over_the_rows_attributes() -> None:
    # a create response shows the plain secret once, never the sealed column of the same name
    created = _Created.of(_Row(), secret="plain-secret")
    assert created.model_dump() == {"id": 7, "version": 3, "secret": "plain-secret"}


def test_a_field_the_row_lacks_must_be_given() -> None:
    with pytest.raises(ValidationError, match="secret"):
        _Created.of(object(), id=1, version_number=1)


def test_code_with_the_values_in_hand_constructs_by_field_name() -> None:
    assert _Read(id=1, version=2).version == 2


@pytest.mark.parametrize("body", [{"name": "a", "nmae": "b"}, {"name": "a", "extra": None}])
def test_a_request_body_refuses_a_field_it_does_not_know(body: dict[str, str | None]) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        _Create.model_validate(body)
