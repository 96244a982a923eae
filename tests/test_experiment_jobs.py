"""Scheduled experiment work: bandit weight updates with sticky units, automatic guardrail stops."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from promptkeeper.client import Client
from promptkeeper.config import Settings
from promptkeeper.db.engine import Database
from promptkeeper.experiments import jobs
from tests.conftest import ADMIN_KEY, LiveServer
from tests.helpers import add_version, create_prompt, deploy, quote_name

ENV = "staging"


@pytest.fixture
def database(client: TestClient) -> Database:
    """The app's own database: its commits reach the app's cache like the in-process scheduler's."""
    db: Database = client.app.state.context.db  # type: ignore[attr-defined]
    return db


def _start(client: Any, name: str, **overrides: Any) -> dict[str, Any]:
    create_prompt(client, name, "A {{ q }}")
    add_version(client, name, "B {{ q }}")
    deploy(client, name, ENV, 1)
    body = {
        "prompt": name,
        "environment": ENV,
        "name": "bandit",
        "candidates": [{"version": 2, "weight": 1, "key": "b"}],
        "primary_metric": "completion",
        "baseline": 0.3,
        "mde": 0.1,
        **overrides,
    }
    created = client.post("/v1/experiments", json=body)
    assert created.status_code == 201, created.text
    started = client.post(f"/v1/experiments/{created.json()['id']}/start", json={})
    assert started.status_code == 200, started.text
    experiment: dict[str, Any] = started.json()
    return experiment


def _traffic(client: Any, experiment: dict[str, Any], per_arm: int, outcome: Any, seed: int = 1) -> None:
    rng = random.Random(seed)
    events = []
    for key in ("control", "b"):
        for i in range(per_arm):
            request_id = f"{key}-{seed}-{i}"
            unit = f"traffic-{key}-{seed}-{i}"
            events.append(
                {
                    "type": "exposure",
                    "request_id": request_id,
                    "experiment_id": experiment["id"],
                    "variant": key,
                    "unit": unit,
                }
            )
            events.append({"type": "outcome", "request_id": request_id, **outcome(key, rng)})
    response = client.post("/v1/events", json={"events": events})
    assert response.status_code == 200, response.text


def _resolve(client: Any, name: str, unit: str) -> dict[str, Any]:
    response = client.get(f"/v1/resolve/{quote_name(name)}", params={"environment": ENV, "unit": unit})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("mode", ["thompson", "ucb"])
def test_bandit_moves_traffic_and_units_keep_their_variant(
    client: TestClient, database: Database, mode: str
) -> None:
    experiment = _start(client, "bandit/answer", mode=mode, burn_in=100, min_share=0.05)
    units = [f"sticky-{i}" for i in range(40)]
    before = {unit: _resolve(client, "bandit/answer", unit)["assignment"]["variant"] for unit in units}
    assert set(before.values()) == {"control", "b"}

    _traffic(client, experiment, 60, lambda key, rng: {"completed": rng.random() < 0.5})
    assert jobs.update_bandit(database, experiment["id"], interval=300) is False  # started just now
    assert jobs.update_bandit(database, experiment["id"], interval=0) is False  # burn-in: 60 < 100

    rates = {"control": 0.2, "b": 0.6}
    _traffic(client, experiment, 200, lambda key, rng: {"completed": rng.random() < rates[key]}, seed=2)
    assert jobs.update_bandit(database, experiment["id"], interval=0) is True
    assert jobs.update_bandit(database, experiment["id"], interval=300) is False  # not due again yet
    weights = {
        v["key"]: v["weight"] for v in client.get(f"/v1/experiments/{experiment['id']}").json()["variants"]
    }
    assert weights["b"] >= 0.9 and weights["control"] >= 0.05 - 1e-6, weights

    served = _resolve(client, "bandit/answer", "someone-new")
    assert [
        v["weight"]
        for v in client.get(f"/v1/resolve/{quote_name('bandit/answer')}", params={"environment": ENV}).json()[
            "experiment"
        ]["variants"]
    ] == [
        weights["control"],
        weights["b"],
    ]
    assert served["assignment"]["variant"] in ("control", "b")
    after = {unit: _resolve(client, "bandit/answer", unit)["assignment"]["variant"] for unit in units}
    assert after == before  # sticky: the new weights apply to new units only

    history = client.get(
        f"/v1/prompts/{quote_name('bandit/answer')}/deployments", params={"environment": ENV}
    ).json()["items"]
    assert history[0]["action"] == "experiment_update" and history[0]["actor"] == "experiments"


def test_sdk_asks_the_server_for_bandit_units(live_server: LiveServer) -> None:
    with live_server.client() as http:
        experiment = _start(http, "bandit/sdk", mode="thompson")
        with Client(live_server.url, ADMIN_KEY, environment=ENV, stream=False) as sdk:
            for i in range(30):
                unit = f"sdk-unit-{i}"
                local = sdk.get("bandit/sdk", unit=unit)
                assert local.variant == _resolve(http, "bandit/sdk", unit)["assignment"]["variant"]
                assert sdk.get("bandit/sdk", unit=unit).variant == local.variant  # remembered
            assert sdk.stats["fetches"] == 1  # the assignments were separate, light requests
            assert sdk.flush()
        results = http.get(f"/v1/experiments/{experiment['id']}/results").json()
        assert sum(v["exposures"] for v in results["variants"]) == 30


def test_guardrail_violation_stops_the_experiment(client: TestClient, database: Database) -> None:
    experiment = _start(
        client,
        "guarded/answer",
        guardrails=["latency_ms", "safety_flag"],
        stop_on_guardrail=True,
        baseline=0.5,
        mde=0.1,
    )
    assert jobs.check_guardrails(database, experiment["id"]) is False  # no data: nothing to judge
    latency = {"control": 500.0, "b": 900.0}
    _traffic(
        client,
        experiment,
        300,
        lambda key, rng: {"completed": rng.random() < 0.5, "latency_ms": rng.gauss(latency[key], 50)},
    )
    results = client.get(f"/v1/experiments/{experiment['id']}/results").json()
    assert results["guardrail_violations"] == [
        {
            "variant": "b",
            "metric": "latency_ms",
            "lift": pytest.approx(400, abs=30),
            "adjusted_p_value": pytest.approx(0, abs=1e-6),
        }
    ]
    assert "guardrail violated: b on latency_ms" in results["message"]
    assert jobs.check_guardrails(database, experiment["id"]) is True
    stopped = client.get(f"/v1/experiments/{experiment['id']}").json()
    assert stopped["status"] == "stopped" and stopped["decision"] == "keep_control"
    assert "guardrail violated (b worse on latency_ms)" in stopped["decision_reason"]
    assert _resolve(client, "guarded/answer", "anyone")["version"] == 1


def test_scheduler_runs_in_the_server(settings: Settings) -> None:
    fast = settings.model_copy(update={"experiment_update_interval": 0.2})
    server = LiveServer(fast).start()
    try:
        with server.client() as http:
            experiment = _start(http, "bandit/scheduled", mode="thompson", burn_in=20)
            _traffic(http, experiment, 50, lambda key, rng: {"completed": key == "b" or rng.random() < 0.1})
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                body = http.get(f"/v1/experiments/{experiment['id']}").json()
                if body["variants"][1]["weight"] > 0.9:
                    break
                time.sleep(0.1)
            assert body["variants"][1]["weight"] > 0.9, body["variants"]
    finally:
        server.stop()
