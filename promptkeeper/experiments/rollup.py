"""The per-unit rollup (`experiment_units`): what analysis reads instead of raw events.

Ingestion turns each batch's tagged events into one delta per (experiment, unit) and merges it in
with an upsert: counts and sums add up, the variant range and the flags keep their extremes, the
first exposure keeps the earliest instant. Merging is associative and commutative, so batches may
arrive in any order and from many servers at once (the upsert is atomic per row) and the rollup
always equals an aggregation of the events stored so far.

Custom metrics live in the events' JSON (`custom`) and are aggregated from the events at analysis
time; the built-in ones, which carry the volume, come from here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Float, case, cast, column, select, table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from promptkeeper.db.engine import stage_rows
from promptkeeper.experiments.metrics import MetricSpec
from promptkeeper.experiments.models import UNIT_FLAGS, UNIT_NUMBERS, experiment_units

UNITS = experiment_units


def _flag(column: str, value: Any) -> int:
    if column == "thumbs":
        return 1 if value == 1 else 0
    return 1 if value else 0


def deltas(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One rollup delta per (experiment, unit) of the tagged rows (event dicts with every column)."""
    merged: dict[tuple[int, str], dict[str, Any]] = {}
    for row in rows:
        experiment_id = row["experiment_id"]
        if experiment_id is None:
            continue
        key = (experiment_id, row["unit"])
        delta = merged.get(key)
        variant = row["variant"]
        if delta is None:
            delta = merged[key] = {
                "experiment_id": experiment_id,
                "unit": row["unit"],
                "variant_min": variant,
                "variant_max": variant,
                "exposures": 0,
                "first_exposure_at": None,
                **{f"{name}_max": None for name in UNIT_FLAGS},
                **{f"{name}_sum": 0.0 for name in UNIT_NUMBERS},
                **{f"{name}_n": 0 for name in UNIT_NUMBERS},
            }
        else:
            delta["variant_min"] = min(delta["variant_min"], variant)
            delta["variant_max"] = max(delta["variant_max"], variant)
        if row["kind"] == "exposure":
            delta["exposures"] += 1
            at: datetime = row["at"]
            first = delta["first_exposure_at"]
            delta["first_exposure_at"] = at if first is None or at < first else first
            continue
        for name in UNIT_FLAGS:
            value = row[name]
            if value is not None:
                flag = _flag(name, value)
                current = delta[f"{name}_max"]
                delta[f"{name}_max"] = flag if current is None else max(current, flag)
        for name in UNIT_NUMBERS:
            value = row[name]
            if value is not None:
                delta[f"{name}_sum"] += float(value)
                delta[f"{name}_n"] += 1
    return list(merged.values())


def _greatest(a: Any, b: Any) -> ColumnElement[Any]:
    """max(a, b) ignoring NULL, on both backends (SQLite's max(a, b) is NULL if either is)."""
    return case((a.is_(None), b), (b.is_(None), a), (a >= b, a), else_=b)


def _least(a: Any, b: Any) -> ColumnElement[Any]:
    return case((a.is_(None), b), (b.is_(None), a), (a <= b, a), else_=b)


_COLUMNS = [column.name for column in UNITS.columns]


def merge(session: Session, rows: list[dict[str, Any]]) -> None:
    """Upsert the deltas (`deltas()`) into the rollup, in the caller's transaction.

    PostgreSQL: COPY into a staging table (`stage_rows`), then one INSERT ... SELECT ... ON
    CONFLICT (a statement per row, even pipelined, took most of the ingestion time); SQLite:
    executemany of the same upsert.
    """
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(UNITS)
    staging = None
    if dialect == "postgresql":
        connection = session.connection()
        staging = stage_rows(
            connection, UNITS.name, _COLUMNS, ([row[name] for name in _COLUMNS] for row in rows)
        )
        statement = statement.from_select(_COLUMNS, select(table(staging, *(column(c) for c in _COLUMNS))))
    new = statement.excluded
    updates: dict[str, Any] = {
        "variant_min": _least(UNITS.c.variant_min, new.variant_min),
        "variant_max": _greatest(UNITS.c.variant_max, new.variant_max),
        "exposures": UNITS.c.exposures + new.exposures,
        "first_exposure_at": _least(UNITS.c.first_exposure_at, new.first_exposure_at),
    }
    for name in UNIT_FLAGS:
        updates[f"{name}_max"] = _greatest(UNITS.c[f"{name}_max"], new[f"{name}_max"])
    for name in UNIT_NUMBERS:
        updates[f"{name}_sum"] = UNITS.c[f"{name}_sum"] + new[f"{name}_sum"]
        updates[f"{name}_n"] = UNITS.c[f"{name}_n"] + new[f"{name}_n"]
    upsert = statement.on_conflict_do_update(index_elements=["experiment_id", "unit"], set_=updates)
    if staging is not None:
        session.connection().execute(upsert)
        session.connection().exec_driver_sql(f"DELETE FROM {staging}")  # the next batch starts empty
    else:
        session.connection().execute(upsert, rows)


def _aggregate(name: str) -> str:
    """SQL computing `deltas()`'s value of one rollup column from a set of event rows."""
    if name == "variant_min":
        return "min(variant)"
    if name == "variant_max":
        return "max(variant)"
    if name == "exposures":
        return "count(*) FILTER (WHERE kind = 'exposure')"
    if name == "first_exposure_at":
        return "min(at) FILTER (WHERE kind = 'exposure')"
    if name.endswith("_max"):
        flag = name.removesuffix("_max")
        value = "(thumbs = 1)" if flag == "thumbs" else flag  # thumbs down is a 0, as in `_flag`
        return f"max(({value})::int) FILTER (WHERE kind <> 'exposure')"
    if name.endswith("_sum"):
        return f"coalesce(sum({name.removesuffix('_sum')}) FILTER (WHERE kind <> 'exposure'), 0)"
    assert name.endswith("_n"), name
    return f"count({name.removesuffix('_n')}) FILTER (WHERE kind <> 'exposure')"


def _update(name: str) -> str:
    if name in ("variant_min", "first_exposure_at"):
        return f"{name} = LEAST(experiment_units.{name}, EXCLUDED.{name})"  # LEAST ignores NULL
    if name == "variant_max" or name.endswith("_max"):
        return f"{name} = GREATEST(experiment_units.{name}, EXCLUDED.{name})"
    return f"{name} = experiment_units.{name} + EXCLUDED.{name}"


def merge_sql(source: str) -> str:
    """PostgreSQL: the upsert of `source`'s tagged event rows into the rollup, aggregated by the
    database (`deltas()` + `merge()` in one statement, for a CTE of the rows just inserted)."""
    values = [name for name in _COLUMNS if name not in ("experiment_id", "unit")]
    return (
        f"INSERT INTO experiment_units ({', '.join(_COLUMNS)}) "
        f"SELECT experiment_id, unit, {', '.join(_aggregate(name) for name in values)} "
        f"FROM {source} WHERE experiment_id IS NOT NULL GROUP BY experiment_id, unit "
        f"ON CONFLICT (experiment_id, unit) DO UPDATE SET {', '.join(_update(name) for name in values)}"
    )


def unit_value(spec: MetricSpec) -> ColumnElement[Any]:
    """A built-in metric's per-unit value from the rollup (see `metrics.py` for the definitions)."""
    assert spec.column is not None
    if spec.kind == "binary":
        flag = cast(UNITS.c[f"{spec.column}_max"], Float)
        return case((flag.is_(None), 0.0), else_=flag) if spec.missing == "zero" else flag
    count = UNITS.c[f"{spec.column}_n"]
    return case((count > 0, UNITS.c[f"{spec.column}_sum"] / cast(count, Float)))
