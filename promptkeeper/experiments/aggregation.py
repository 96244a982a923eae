"""Aggregation of an experiment's units in SQL: what the statistics in `analysis.py` start from.

The database does the heavy part in one statement: the per-unit rollup that ingestion keeps
(`rollup.py`: each unit's variant, whether and when it was first exposed, its outcome fields) → one
value per unit and metric → one row per (variant, weight period) with counts, sums and sums of
squares. A million events become a few dozen rows before Python sees them, and the cost grows with
the units, not the events. Medians (latency, cost) need order statistics: only those near each
variant's middle are returned.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Float, case, cast, func, literal, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from promptkeeper.core import experiment_stats as es
from promptkeeper.core.intervals import Interval
from promptkeeper.experiments import rollup
from promptkeeper.experiments.metrics import MetricSpec
from promptkeeper.experiments.models import UNIT_NUMBERS, Event, Experiment

LEVEL = 0.95


@dataclass
class Moments:
    """Per variant and metric: units with a value, sum and sum of squares of the per-unit values."""

    n: int = 0
    total: float = 0.0
    squares: float = 0.0

    def add(self, n: int, total: float, squares: float) -> None:
        self.n += n
        self.total += total
        self.squares += squares

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        if self.n < 2:
            return 0.0
        return max(0.0, (self.squares - self.total * self.total / self.n) / (self.n - 1))

    def summary(self) -> es.SampleSummary:
        return es.SampleSummary(self.n, self.mean, self.variance)


@dataclass
class Aggregate:
    exposures: list[int]
    by_period: dict[int, list[int]]
    moments: dict[str, list[Moments]]
    multiple: int = 0
    medians: dict[str, list[tuple[float, Interval] | None]] = field(default_factory=dict)


def _custom_value(spec: MetricSpec) -> ColumnElement[Any]:
    """A custom metric's per-unit value from the events' JSON (before the missing-value policy)."""
    raw: ColumnElement[Any] = Event.custom[spec.name].as_float()
    if spec.kind == "binary":
        return func.max(case((raw > 0, 1.0), (raw.is_not(None), 0.0)))
    return func.avg(raw)


def received(session: Session, experiment: Experiment, specs: list[MetricSpec]) -> set[str]:
    """The metrics of `specs` that at least one of the experiment's outcomes carried.

    Built-in metrics: one statement over the rollup (a flag set or a number counted for any unit);
    custom metrics: an existence probe on the events' JSON each (a project defines a handful).
    """
    units = rollup.UNITS
    builtin = [spec for spec in specs if spec.column is not None]
    found: set[str] = set()
    if builtin:
        probes = [
            (
                func.count(units.c[f"{spec.column}_max"])
                if spec.kind == "binary"
                else func.coalesce(func.sum(units.c[f"{spec.column}_n"]), 0)
            ).label(spec.name)
            for spec in builtin
        ]
        row = session.execute(select(*probes).where(units.c.experiment_id == experiment.id)).one()
        found.update(spec.name for spec in builtin if row._mapping[spec.name])
    for spec in specs:
        if spec.column is not None:
            continue
        probe = (
            select(Event.id)
            .where(
                Event.experiment_id == experiment.id,
                Event.kind == "outcome",
                Event.custom[spec.name].as_float().is_not(None),
            )
            .limit(1)
        )
        if session.scalar(probe) is not None:
            found.add(spec.name)
    return found


def _periods(experiment: Experiment) -> list[datetime]:
    """Start instants of the weight periods after the first (for the SRM expectation)."""
    return [datetime.fromisoformat(entry["at"]) for entry in experiment.weight_history[1:]]


#: Group of a unit that saw more than one variant, or that has outcomes but no exposure.
_MULTIPLE, _UNEXPOSED = -1, -2


def aggregate(session: Session, experiment: Experiment, specs: list[MetricSpec]) -> Aggregate:
    """The units of the rollup aggregated per (variant, weight period) in one statement; for
    metrics with medians, one more for the order statistics near each variant's middle (the exact
    bootstrap interval needs only those, not all n values)."""
    k = len(experiment.variants)
    units_table = rollup.UNITS
    columns: list[Any] = [
        units_table.c.unit,
        units_table.c.variant_min.label("v"),
        units_table.c.variant_max.label("v2"),
        case((units_table.c.exposures > 0, 1), else_=0).label("exposed"),
        units_table.c.first_exposure_at.label("first_at"),
    ]
    source: Any = units_table
    custom_specs = [spec for spec in specs if spec.column is None]
    if custom_specs:  # aggregated from the events: the rollup keeps built-in fields only
        custom = (
            select(Event.unit, *[_custom_value(spec).label(spec.name) for spec in custom_specs])
            .where(Event.experiment_id == experiment.id, Event.kind == "outcome", Event.custom.is_not(None))
            .group_by(Event.unit)
            .subquery()
        )
        source = units_table.outerjoin(custom, custom.c.unit == units_table.c.unit)
    for index, spec in enumerate(specs):
        if spec.column is not None:
            value = rollup.unit_value(spec)
        else:
            value = custom.c[spec.name]
            if spec.missing == "zero":
                value = func.coalesce(value, 0.0)
        columns.append(value.label(f"m{index}"))
    units = (
        select(*columns).select_from(source).where(units_table.c.experiment_id == experiment.id).subquery()
    )
    boundaries = _periods(experiment)
    period: ColumnElement[Any] = (
        case(*[(units.c.first_at < at, i) for i, at in enumerate(boundaries)], else_=len(boundaries))
        if boundaries
        else literal(0)
    )
    group = case((units.c.v != units.c.v2, _MULTIPLE), (units.c.exposed == 0, _UNEXPOSED), else_=units.c.v)
    floats: list[Any] = []
    for index in range(len(specs)):
        value = units.c[f"m{index}"]
        floats += [
            cast(func.count(value), Float),
            cast(func.coalesce(func.sum(value), 0.0), Float),
            cast(func.coalesce(func.sum(value * value), 0.0), Float),
        ]
    statement = select(group.label("g"), period.label("k"), func.count().label("c"), *floats).group_by(
        group, period
    )
    if session.get_bind().dialect.name == "postgresql":  # hash the units in memory, not on disk
        session.execute(text("SET LOCAL work_mem = '64MB'"))
    result = Aggregate(
        exposures=[0] * k,
        by_period=defaultdict(lambda: [0] * k),
        moments={spec.name: [Moments() for _ in range(k)] for spec in specs},
    )
    for row in session.execute(statement):
        variant, count = int(row[0]), int(row[2])
        if variant == _MULTIPLE:
            result.multiple += count
        if not 0 <= variant < k:
            continue
        result.exposures[variant] += count
        result.by_period[int(row[1])][variant] += count
        for index, spec in enumerate(specs):
            n, total, squares = row[3 + 3 * index : 6 + 3 * index]
            result.moments[spec.name][variant].add(int(n), float(total), float(squares))
    for spec in specs:
        if spec.median:
            counts = [m.n for m in result.moments[spec.name]]
            middles = _middle_order_statistics(session, experiment.id, spec, counts)
            result.medians[spec.name] = [
                _median(*middles[variant]) if variant in middles else None for variant in range(k)
            ]
    return result


# The exact bootstrap interval of a median reads order statistics within ~z sqrt(n) / 2 of the
# middle; the database returns those within 3 sqrt(n) + 2 (a wide margin) instead of all n values.
_MIDDLE_POSTGRES = """
WITH vals AS (
    SELECT variant_min AS v, {column}_sum / {column}_n AS x FROM experiment_units
    WHERE experiment_id = :experiment_id AND variant_min = variant_max AND exposures > 0 AND {column}_n > 0
), counts AS (
    SELECT v, count(*) AS n,
           greatest(1, count(*) / 2 - (ceil(3 * sqrt(count(*)))::int + 2)) AS lo,
           least(count(*), count(*) / 2 + (ceil(3 * sqrt(count(*)))::int + 3)) AS hi
    FROM vals GROUP BY v
)
SELECT counts.v, counts.n, counts.lo,
       percentile_disc(ARRAY(
           SELECT ((r - 0.5) / counts.n)::float8 FROM generate_series(counts.lo, counts.hi) AS r
       )) WITHIN GROUP (ORDER BY vals.x)
FROM vals JOIN counts ON counts.v = vals.v
GROUP BY counts.v, counts.n, counts.lo, counts.hi
"""


def _middle_order_statistics(
    session: Session, experiment_id: int, spec: MetricSpec, counts: list[int]
) -> dict[int, tuple[dict[int, float], int]]:
    """variant -> ({rank: value} near the middle, n) of a built-in continuous metric's unit values.

    PostgreSQL: `percentile_disc` at the fractions that pick exactly those ranks (one sort of bare
    values per variant); elsewhere: `ORDER BY ... LIMIT ... OFFSET` per variant, with the counts
    (`counts[variant]`, from the aggregate) giving the ranks.
    """
    assert spec.column in UNIT_NUMBERS  # a fixed name: safe in the SQL text
    found: dict[int, tuple[dict[int, float], int]] = {}
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(
            text(_MIDDLE_POSTGRES.format(column=spec.column)), {"experiment_id": experiment_id}
        )
        for variant, n, low, values in rows:
            found[int(variant)] = ({int(low) + i: float(x) for i, x in enumerate(values)}, int(n))
        return found
    units = rollup.UNITS
    value = rollup.unit_value(spec)
    for variant, n in enumerate(counts):
        if n == 0:
            continue
        margin = math.ceil(3 * math.sqrt(n)) + 2
        low, high = max(1, n // 2 - margin), min(n, n // 2 + margin + 1)
        values = session.scalars(
            select(value)
            .where(
                units.c.experiment_id == experiment_id,
                units.c.variant_min == variant,
                units.c.variant_max == variant,
                units.c.exposures > 0,
                value.is_not(None),
            )
            .order_by(value)
            .limit(high - low + 1)
            .offset(low - 1)
        )
        found[variant] = ({low + i: float(x) for i, x in enumerate(values)}, n)
    return found


def _median(window: dict[int, float], n: int) -> tuple[float, Interval] | None:
    if n == 0:
        return None
    return es.median_from_ranks(window.__getitem__, es.median_ranks(n, LEVEL), LEVEL)
