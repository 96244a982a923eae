"""The version filters of Langfuse's `GET /api/public/v2/prompts` (`filter`, `fromUpdatedAt`, ...).

Langfuse applies them to prompt versions before aggregating each prompt's versions, labels and
last config, so a prompt is listed with only its matching versions, and not at all without one.
`filter` is a JSON array of `{type, column, operator, value[, key]}` conditions, combined with AND,
and takes precedence over the single-purpose parameters. String equality is case-sensitive; the
search operators match case-insensitively with SQL's `%` and `_` wildcards (a backslash escapes).
Versions are immutable here, so a version's `updatedAt` is its `createdAt`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from promptkeeper.errors import ValidationFailed

Row = dict[str, Any]
Condition = Callable[[Row], bool]

_STRING_COLUMNS = ("id", "name", "type")
_COLUMNS = {
    "string": _STRING_COLUMNS,
    "stringOptions": _STRING_COLUMNS,
    "number": ("version",),
    "datetime": ("createdAt", "updatedAt"),
    "arrayOptions": ("labels", "tags"),
    "stringObject": ("config",),
}
_SEARCH = {"contains": "%{}%", "does not contain": "%{}%", "starts with": "{}%", "ends with": "%{}"}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
}


def _bad(index: int, part: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"filter[{index}].{part}: {message}", details={"field": f"query.filter[{index}]"})


def _like(pattern: str) -> re.Pattern[str]:
    out, escaped = "", False
    for char in pattern:
        if escaped:
            out += re.escape(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            out += ".*"
        elif char == "_":
            out += "."
        else:
            out += re.escape(char)
    return re.compile(out, re.IGNORECASE | re.DOTALL)


def _string_test(index: int, operator: str, value: Any) -> Callable[[str | None], bool]:
    if operator == "is not empty":
        return lambda text: bool(text)
    if not isinstance(value, str):
        raise _bad(index, "value", f"'{operator}' takes a string")
    if operator == "=":
        return lambda text: text == value
    if operator in _SEARCH:
        pattern = _like(_SEARCH[operator].format(value))
        negate = operator == "does not contain"
        return lambda text: (pattern.fullmatch(text or "") is not None) != negate
    raise _bad(index, "operator", f"'{operator}' is not an operator of string filters")


def _instant(index: int, value: Any) -> datetime:
    try:
        at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise _bad(index, "value", f"{str(value)[:40]!r} is not an ISO 8601 timestamp") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _condition(index: int, raw: Any) -> Condition:
    if not isinstance(raw, dict):
        raise _bad(index, "type", "each condition is an object {type, column, operator, value}")
    kind, column, operator, value = (raw.get(k) for k in ("type", "column", "operator", "value"))
    if kind not in _COLUMNS:
        raise _bad(index, "type", f"{str(kind)[:40]!r} is not one of {', '.join(_COLUMNS)}")
    if column not in _COLUMNS[kind]:
        raise _bad(
            index, "column", f"{str(column)[:40]!r} is not a {kind} column ({', '.join(_COLUMNS[kind])})"
        )
    operator = str(operator)
    if kind == "string":
        test = _string_test(index, operator, value)
        return lambda row: test(row[column])
    if kind == "stringOptions" or kind == "arrayOptions":
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise _bad(index, "value", "takes a non-empty array of strings")
        wanted = set(value)
        if kind == "stringOptions" and operator in ("any of", "none of"):
            negate = operator == "none of"
            return lambda row: (row[column] in wanted) != negate
        tests: dict[str, Callable[[set[str]], bool]] = {
            "any of": lambda have: bool(have & wanted),
            "all of": lambda have: wanted <= have,
            "none of": lambda have: not have & wanted,
        }
        if kind == "arrayOptions" and operator in tests:
            array_test = tests[operator]
            return lambda row: array_test(set(row[column]))
        raise _bad(index, "operator", f"'{operator}' is not an operator of {kind} filters")
    if kind in ("number", "datetime"):
        if operator not in _COMPARE:
            raise _bad(index, "operator", f"'{operator}' is not one of {', '.join(_COMPARE)}")
        compare = _COMPARE[operator]
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _bad(index, "value", "takes a number")
            return lambda row: compare(row[column], value)
        instant = _instant(index, value)
        return lambda row: compare(row[column], instant)
    key = raw.get("key")  # stringObject: config
    if not isinstance(key, str) or not key:
        raise _bad(index, "key", "a config filter names the config key")
    if operator in ("is set", "is not set") or (operator in _SEARCH and value == ""):
        present = operator != "is not set"
        return lambda row: (key in row["config"]) == present
    test = _string_test(index, operator, value)
    return lambda row: key in row["config"] and test(str(row["config"][key]))


def parse_filter(raw: str) -> list[Condition]:
    try:
        conditions = json.loads(raw)
    except ValueError:
        raise ValidationFailed("query.filter: not JSON", details={"field": "query.filter"}) from None
    if not isinstance(conditions, list):
        raise ValidationFailed("query.filter: a JSON array of conditions", details={"field": "query.filter"})
    return [_condition(index, item) for index, item in enumerate(conditions)]


def simple_filter(
    *,
    name: str | None,
    label: str | None,
    tag: str | None,
    from_updated_at: datetime | None,
    to_updated_at: datetime | None,
) -> list[Condition]:
    """The single-purpose parameters as conditions (`toUpdatedAt` is exclusive, as Langfuse's)."""
    conditions: list[Condition] = []
    if name is not None:
        conditions.append(lambda row: row["name"] == name)
    if label is not None:
        conditions.append(lambda row: label in row["labels"])
    if tag is not None:
        conditions.append(lambda row: tag in row["tags"])
    if from_updated_at is not None:
        start = from_updated_at if from_updated_at.tzinfo else from_updated_at.replace(tzinfo=UTC)
        conditions.append(lambda row: row["updatedAt"] >= start)
    if to_updated_at is not None:
        end = to_updated_at if to_updated_at.tzinfo else to_updated_at.replace(tzinfo=UTC)
        conditions.append(lambda row: row["updatedAt"] < end)
    return conditions
