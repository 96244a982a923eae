"""The per-unit rollup equals an aggregation of the stored events, whichever way they arrived.

PostgreSQL aggregates a batch in SQL, in the statement that inserts it (`rollup.merge_sql`); SQLite
and the late tagging of waiting outcomes merge `rollup.deltas()` computed in Python. Both must give
what `deltas()` gives for every event stored, merged once: random batches of exposures and
outcomes (every flag, thumbs up and down, numbers, missing values, outcomes that arrive before
their exposure) through `POST /v1/events`, then the table is compared with that aggregation.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from promptkeeper.experiments import ingestion, rollup
from promptkeeper.experiments.models import Event, experiment_units
from tests.helpers import add_version, create_prompt, deploy, start_experiment

NAME = "rollup/p"


def _start(client: TestClient) -> int:
    create_prompt(client, NAME, "A {{ q }}")
    add_version(client, NAME, "B {{ q }}")
    deploy(client, NAME, "production", 1)
    return start_experiment(client, NAME, "rollup")


def _maybe(rng: random.Random, value: Any) -> Any:
    return value if rng.random() < 0.6 else None


def _outcome(rng: random.Random, request_id: str) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "outcome", "request_id": request_id}
    values = {
        "completed": _maybe(rng, rng.random() < 0.5),
        "thumbs": _maybe(rng, rng.choice(["up", "down"])),
        "edited": _maybe(rng, rng.random() < 0.5),
        "regenerated": _maybe(rng, rng.random() < 0.5),
        "safety_flag": _maybe(rng, rng.random() < 0.2),
        "rating": _maybe(rng, rng.randint(1, 5)),
        "latency_ms": _maybe(rng, round(rng.uniform(50, 900), 3)),
        "ttft_ms": _maybe(rng, round(rng.uniform(5, 90), 3)),
        "input_tokens": _maybe(rng, rng.randint(1, 500)),
        "output_tokens": _maybe(rng, rng.randint(1, 500)),
        "cost_usd": _maybe(rng, round(rng.uniform(0, 0.01), 6)),
    }
    event.update({key: value for key, value in values.items() if value is not None})
    return event


def test_rollup_equals_the_aggregation_of_the_stored_events(client: TestClient) -> None:
    experiment_id = _start(client)
    rng = random.Random(20261203)
    units = [f"u{index}" for index in range(40)]
    variant_of = {unit: rng.choice(["control", "treatment"]) for unit in units}
    variant_of["u0"] = "control"  # one unit exposed to both: its variant range spans both
    late: list[dict[str, Any]] = []
    for batch_number in range(6):
        events: list[dict[str, Any]] = []
        for _ in range(60):
            unit = rng.choice(units)
            variant = variant_of[unit] if unit != "u0" else rng.choice(["control", "treatment"])
            request_id = f"r{batch_number}-{len(events)}"
            exposure = {
                "type": "exposure",
                "request_id": request_id,
                "experiment_id": experiment_id,
                "variant": variant,
                "unit": unit,
            }
            kind = rng.random()
            if kind < 0.15:  # its outcome comes first, untagged, and is tagged when the exposure arrives
                events.append(_outcome(rng, request_id))
                late.append(exposure)
                continue
            events.append(exposure)
            for _ in range(rng.randint(0, 3)):
                if rng.random() < 0.5:  # tagged by the application, as the SDK does
                    tagged = {"experiment_id": experiment_id, "variant": variant, "unit": unit}
                    events.append({**_outcome(rng, request_id), **tagged})
                else:  # tagged from its exposure by the server
                    events.append(_outcome(rng, request_id))
        response = client.post("/v1/events", json={"events": events})
        assert response.status_code in (200, 202), response.text
        if batch_number % 2 == 1 and late:
            response = client.post("/v1/events", json={"events": late})
            assert response.status_code in (200, 202), response.text
            late = []

    db = client.app.state.context.db  # type: ignore[attr-defined]
    with db.session() as session:
        stored = [
            {name: getattr(event, name) for name in ingestion.COLUMNS}
            for event in session.scalars(select(Event).where(Event.experiment_id == experiment_id))
        ]
        table = {
            (row["experiment_id"], row["unit"]): dict(row)
            for row in session.execute(select(experiment_units)).mappings()
        }
    expected = {(d["experiment_id"], d["unit"]): d for d in rollup.deltas(stored)}
    assert len(stored) > 600 and len(expected) == len(units)
    assert set(table) == set(expected)
    for key, want in expected.items():
        got = table[key]
        for column, value in want.items():
            if isinstance(value, float):
                assert got[column] == pytest.approx(value), (key, column)
            elif column == "first_exposure_at" and value is not None:
                assert got[column].replace(tzinfo=None) == value.replace(tzinfo=None), (key, column)
            else:
                assert got[column] == value, (key, column, got[column], value)
