"""Ingestion of exposure and outcome events, in batches of up to 10,000.

A batch is validated whole before anything is written, and written in one transaction: a bad
event (unknown experiment or variant, an exposure without a unit) rejects the batch with the index
of the event, and nothing of it is stored.

Outcomes are tagged with the experiment, variant and unit of the exposure that has their
`request_id`: from the same batch, else from the database (one indexed lookup per 1,000 ids). An
outcome whose exposure has not arrived yet is stored untagged; when the exposure arrives, the
outcome is tagged then (a partial index keeps that lookup cheap while few outcomes wait).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from promptkeeper.core import outcomes
from promptkeeper.db.base import utcnow
from promptkeeper.db.engine import stage_rows, staging_table
from promptkeeper.errors import NotFound, ValidationFailed
from promptkeeper.experiments import rollup
from promptkeeper.experiments.models import Event, Experiment, Metric
from promptkeeper.experiments.schemas import EventBatchRead, EventIn

CHUNK = 1_000
#: Stores a batch's generation records and applies its feedback to them, in the same transaction:
#: `(session, project_id, events) -> generations stored`. Monitoring registers here (it builds on
#: this module, which must not import it).
SINKS: list[Callable[[Session, int, Sequence[EventIn]], int]] = []
_OUTCOME_FIELDS = tuple(name for name in outcomes.FIELDS if name != "thumbs")  # thumbs: stored as 1/-1


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _variant_indexes(session: Session, project_id: int, ids: set[int]) -> dict[int, dict[str, int]]:
    if not ids:
        return {}
    rows = session.execute(
        select(Experiment.id, Experiment.variants).where(
            Experiment.project_id == project_id, Experiment.id.in_(ids)
        )
    )
    return {row[0]: {v["key"]: index for index, v in enumerate(row[1])} for row in rows}


def _invalid(index: int, field: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        f"body.events[{index}].{field}: {message}", details={"field": f"body.events[{index}].{field}"}
    )


def ingest(*, session: Session, project_id: int, events: Sequence[EventIn]) -> EventBatchRead:
    """Validate and store one batch (the caller commits)."""
    experiments = _variant_indexes(
        session, project_id, {e.experiment_id for e in events if e.experiment_id is not None}
    )
    custom_kinds = _custom_metrics(session, project_id) if any(e.metrics for e in events) else {}
    now = utcnow()
    empty: dict[str, Any] = dict.fromkeys(COLUMNS)
    rows: list[dict[str, Any]] = []
    exposures: dict[str, tuple[int, int, str]] = {}
    for index, event in enumerate(events):
        if event.type == "generation":
            continue  # stored by the sinks below
        row = empty.copy()  # every column present: executemany and COPY need the same keys
        row["project_id"] = project_id
        row["kind"] = event.type
        row["request_id"] = event.request_id
        row["at"] = event.at or now
        row["prompt"] = event.prompt
        row["version"] = event.version
        tagged = event.experiment_id is not None
        if event.type == "exposure" or tagged:
            if event.experiment_id is None:
                raise _invalid(index, "experiment_id", "an exposure names its experiment")
            variants = experiments.get(event.experiment_id)
            if variants is None:
                raise NotFound(
                    f"body.events[{index}].experiment_id: experiment {event.experiment_id} not found",
                    details={"field": f"body.events[{index}].experiment_id"},
                )
            if event.variant is None or event.variant not in variants:
                raise _invalid(
                    index,
                    "variant",
                    f"'{event.variant}' is not a variant of experiment {event.experiment_id} "
                    f"({', '.join(variants)})",
                )
            if event.unit is None:
                raise _invalid(index, "unit", "an exposure (or a tagged outcome) names its unit")
            row["experiment_id"] = event.experiment_id
            row["variant"] = variants[event.variant]
            row["unit"] = event.unit
            if event.type == "exposure":
                exposures.setdefault(
                    event.request_id, (event.experiment_id, variants[event.variant], event.unit)
                )
        if event.type == "outcome":
            for field in _OUTCOME_FIELDS:
                row[field] = getattr(event, field)
            row["thumbs"] = None if event.thumbs is None else (1 if event.thumbs == "up" else -1)
            row["custom"] = _custom_values(index, event.metrics, custom_kinds) if event.metrics else None
        rows.append(row)
    untagged = [row for row in rows if row["kind"] == "outcome" and row["experiment_id"] is None]
    _tag_from(untagged, exposures)
    missing = [row["request_id"] for row in untagged if row["experiment_id"] is None]
    if missing:
        _tag_from(untagged, _stored_exposures(session, project_id, missing))
    if rows:
        store_rows(session, rows)
    if exposures:
        _tag_waiting(session, project_id, exposures)
    generations = sum(sink(session, project_id, events) for sink in SINKS)
    outcome_count = sum(1 for row in rows if row["kind"] == "outcome")
    return EventBatchRead(
        accepted=len(events),
        exposures=len(rows) - outcome_count,
        outcomes=outcome_count,
        untagged=sum(1 for row in untagged if row["experiment_id"] is None),
        generations=generations,
    )


COLUMNS = (
    "project_id",
    "kind",
    "request_id",
    "at",
    "experiment_id",
    "variant",
    "unit",
    "prompt",
    "version",
    *_OUTCOME_FIELDS,
    "thumbs",
    "custom",
    "span_key",
)
_NAMES = ", ".join(COLUMNS)
_STAGE = staging_table("events", COLUMNS)
#: the staged rows into `events` (a span's outcome that is stored already is skipped) and the
#: rows inserted into the rollup, in one statement: one round trip, and the rollup can only count
#: what was stored
_STORE = (
    f"WITH staged AS (DELETE FROM {_STAGE} RETURNING {_NAMES}), "
    f"inserted AS (INSERT INTO events ({_NAMES}) SELECT {_NAMES} FROM staged "
    "ON CONFLICT (project_id, span_key) WHERE span_key IS NOT NULL DO NOTHING "
    f"RETURNING {_NAMES}), "
    f"units AS ({rollup.merge_sql('inserted')}) "
    "SELECT count(*) FROM inserted"
)


def store_rows(session: Session, rows: list[dict[str, Any]]) -> int:
    """Store event rows (every key of `COLUMNS`) and merge them into the rollup; returns the rows
    stored (fewer than given when a span's outcome was stored before: an exporter's resend).

    PostgreSQL: binary COPY into a staging table (`stage_rows`: several times faster than a
    multi-row INSERT), then one statement inserts and aggregates. Elsewhere: INSERT ... RETURNING and the
    rollup's deltas in Python. Both run in the session's transaction: the batch is stored whole or
    not at all.
    """
    if not rows:
        return 0
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        statement = (
            sqlite.insert(Event)
            .on_conflict_do_nothing(
                index_elements=["project_id", "span_key"], index_where=Event.span_key.is_not(None)
            )
            .returning(*(Event.__table__.c[name] for name in COLUMNS))
        )
        stored = [dict(row._mapping) for row in connection.execute(statement, rows)]
        rollup.merge(session, rollup.deltas(stored))
        return len(stored)
    stage_rows(connection, "events", COLUMNS, ([row[name] for name in COLUMNS] for row in rows))
    return int(connection.exec_driver_sql(_STORE).scalar_one())


def _custom_metrics(session: Session, project_id: int) -> dict[str, str]:
    rows = session.execute(select(Metric.name, Metric.kind).where(Metric.project_id == project_id))
    return {str(row[0]): str(row[1]) for row in rows}


def _custom_values(index: int, values: dict[str, float | bool], kinds: dict[str, str]) -> dict[str, float]:
    """Custom metric values as numbers (binary: 1.0 / 0.0), so SQL reads every one as a float."""
    stored: dict[str, float] = {}
    for name, value in values.items():
        kind = kinds.get(name)
        if kind is None:
            raise _invalid(index, f"metrics.{name}", "unknown metric (define it: POST /v1/metrics)")
        if kind == "binary":
            if value not in (0, 1):  # True/False compare equal to 1/0
                raise _invalid(
                    index, f"metrics.{name}", f"a binary metric is true/false or 1/0, not {value!r}"
                )
            stored[name] = 1.0 if value else 0.0
        else:
            if isinstance(value, bool) or not math.isfinite(value):
                raise _invalid(
                    index, f"metrics.{name}", f"a continuous metric is a finite number, not {value!r}"
                )
            stored[name] = float(value)
    return stored


def _tag_from(rows: list[dict[str, Any]], exposures: dict[str, tuple[int, int, str]]) -> None:
    for row in rows:
        if row["experiment_id"] is None:
            found = exposures.get(row["request_id"])
            if found is not None:
                row["experiment_id"], row["variant"], row["unit"] = found


def _stored_exposures(
    session: Session, project_id: int, request_ids: Sequence[str]
) -> dict[str, tuple[int, int, str]]:
    found: dict[str, tuple[int, int, str]] = {}
    for chunk in _chunks(request_ids):
        rows = session.execute(
            select(Event.request_id, Event.experiment_id, Event.variant, Event.unit).where(
                Event.project_id == project_id, Event.request_id.in_(chunk), Event.kind == "exposure"
            )
        )
        for request_id, experiment_id, variant, unit in rows:
            if experiment_id is not None and variant is not None and unit is not None:
                found.setdefault(request_id, (experiment_id, variant, unit))
    return found


def _tag_waiting(session: Session, project_id: int, exposures: dict[str, tuple[int, int, str]]) -> None:
    """Tag stored outcomes that arrived before these exposures.

    Usually there are none (the SDK tags its outcomes itself): one probe of the small partial index
    says so, and the per-request-id lookups are skipped.
    """
    untagged = (Event.project_id == project_id, Event.experiment_id.is_(None), Event.kind == "outcome")
    if session.scalar(select(Event.id).where(*untagged).limit(1)) is None:
        return
    waiting: list[Event] = []
    for chunk in _chunks(list(exposures)):
        waiting.extend(session.scalars(select(Event).where(*untagged, Event.request_id.in_(chunk))))
    tagged: list[dict[str, Any]] = []
    for event in waiting:
        experiment_id, variant, unit = exposures[event.request_id]
        session.execute(
            update(Event)
            .where(Event.id == event.id)
            .values(experiment_id=experiment_id, variant=variant, unit=unit)
        )
        row = {name: getattr(event, name) for name in COLUMNS}
        row.update(experiment_id=experiment_id, variant=variant, unit=unit)
        tagged.append(row)
    rollup.merge(session, rollup.deltas(tagged))
