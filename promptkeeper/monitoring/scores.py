"""Storing monitor scores: the scoring worker's and the feedback's (`generations.apply_feedback`)."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy.orm import Session

from promptkeeper.db.engine import insert_ignoring_duplicates
from promptkeeper.monitoring.models import MonitorScore

_SCORE_COLUMNS = (
    "monitor_id",
    "generation_id",
    "version",
    "scorer",
    "value",
    "passed",
    "at",
    "scored_at",
    "cost_usd",
    "detail",
)
_INSERT_SCORES = (
    f"INSERT INTO monitor_scores ({', '.join(_SCORE_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(_SCORE_COLUMNS))}) ON CONFLICT (generation_id, scorer) DO NOTHING"
)


def insert_scores(session: Session, rows: list[dict[str, Any]]) -> None:
    """Store scores, skipping any already stored (the unique key is the last guard).

    PostgreSQL: one prepared statement through psycopg's pipelined executemany; SQLAlchemy's
    multi-row VALUES statements change size with every batch and spent most of a batch's time being
    parsed (profiled). Elsewhere: the portable INSERT ... ON CONFLICT DO NOTHING.
    """
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        insert_ignoring_duplicates(session, MonitorScore, rows, ["generation_id", "scorer"])
        return
    raw = connection.connection.dbapi_connection
    assert raw is not None
    with raw.cursor() as cursor:  # type: ignore[attr-defined]
        cursor.executemany(
            _INSERT_SCORES,
            [
                [
                    Jsonb(row[name]) if name == "detail" and row[name] is not None else row[name]
                    for name in _SCORE_COLUMNS
                ]
                for row in rows
            ],
        )
