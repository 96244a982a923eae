"""Experiments through the API: lifecycle, history and propagation, assignment, events, errors."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from promptkeeper.core.assignment import assign
from tests.helpers import add_version, create_prompt, deploy, error_of, quote_name

ENV = "staging"


def _setup(client: TestClient, name: str = "support/answer", versions: int = 3) -> str:
    create_prompt(client, name, "Answer v1: {{ q }}")
    for number in range(2, versions + 1):
        add_version(client, name, f"Answer v{number}: {{{{ q }}}}")
    deploy(client, name, ENV, 1)
    return name


def _create(client: TestClient, name: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt": name,
        "environment": ENV,
        "name": "shorter answers",
        "hypothesis": "v2 completes more tasks",
        "control_weight": 1,
        "candidates": [{"version": 2, "weight": 1}],
        "primary_metric": "completion",
        "guardrails": ["latency_ms"],
        "baseline": 0.5,
        "mde": 0.07,
    }
    body.update(overrides)
    response = client.post("/v1/experiments", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _resolve(client: TestClient, name: str, **params: Any) -> Any:
    return client.get(f"/v1/resolve/{quote_name(name)}", params={"environment": ENV, **params})


def test_lifecycle_history_and_assignment(client: TestClient) -> None:
    name = _setup(client)
    experiment = _create(client, name)
    assert experiment["status"] == "draft"
    assert [v["key"] for v in experiment["variants"]] == ["control", "v2"]
    assert [v["version"] for v in experiment["variants"]] == [1, 2]
    assert [v["weight"] for v in experiment["variants"]] == [0.5, 0.5]
    # pre-registered: alpha 0.05, power 0.8, 0.50 -> 0.57: Fleiss without continuity correction, 795.8 -> 796
    assert experiment["planned_sample_size"] == 796

    # a draft changes nothing that is served
    assert "experiment" not in _resolve(client, name).json()
    started = client.post(f"/v1/experiments/{experiment['id']}/start", json={"reason": "go"})
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "running"

    # without a unit: the control, with the plan for SDKs
    body = _resolve(client, name).json()
    assert body["version"] == 1
    assert body["experiment"]["id"] == experiment["id"]
    assert [v["version"] for v in body["experiment"]["variants"]] == [1, 2]
    assert "Answer v2" in body["experiment"]["variants"][1]["content"]["template"]

    # with a unit: the variant GrowthBook's hashing gives, every time
    seed = experiment["seed"]
    for unit in (f"user-{i}" for i in range(60)):
        expected = assign(seed=seed, unit=unit, weights=[0.5, 0.5])
        response = _resolve(client, name, unit=unit)
        assert response.json()["version"] == expected + 1, unit
        assert response.json()["assignment"] == {
            "experiment_id": experiment["id"],
            "variant": ["control", "v2"][expected],
            "index": expected,
        }
        assert response.headers["X-PromptKeeper-Variant"] == ["control", "v2"][expected]
        assert "experiment" not in response.json()

    # weights move: a history row, a new revision, the new split served at once
    revision = body["revision"]
    moved = client.put(
        f"/v1/experiments/{experiment['id']}/weights", json={"weights": {"control": 9, "v2": 1}}
    )
    assert moved.status_code == 200, moved.text
    assert [v["weight"] for v in moved.json()["variants"]] == [0.9, 0.1]
    after = _resolve(client, name).json()
    assert after["revision"] == revision + 1
    assert [v["weight"] for v in after["experiment"]["variants"]] == [0.9, 0.1]

    stopped = client.post(
        f"/v1/experiments/{experiment['id']}/stop",
        json={"decision": "ship", "variant": "v2", "reason": "won"},
    )
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["decision"] == "ship" and stopped.json()["decision_variant"] == "v2"
    final = _resolve(client, name, unit="user-1").json()
    assert final["version"] == 2 and "assignment" not in final and "experiment" not in final

    history = client.get(f"/v1/prompts/{quote_name(name)}/deployments", params={"environment": ENV}).json()
    actions = [(row["action"], row["version"]) for row in history["items"]]
    assert actions == [
        ("experiment_stop", 2),
        ("experiment_update", 1),
        ("experiment_start", 1),
        ("deploy", 1),
    ]
    audit = client.get("/v1/audit", params={"limit": 100}).json()["items"]
    assert {"experiment.created", "experiment.started", "experiment.updated", "experiment.stopped"} <= {
        entry["action"] for entry in audit
    }


def test_deploy_or_rollback_ends_a_running_experiment(client: TestClient) -> None:
    name = _setup(client)
    experiment = _create(client, name)
    client.post(f"/v1/experiments/{experiment['id']}/start", json={})
    deploy(client, name, ENV, 3)
    ended = client.get(f"/v1/experiments/{experiment['id']}").json()
    assert ended["status"] == "stopped" and ended["decision"] == "inconclusive"
    assert "deploy of version 3" in ended["decision_reason"]
    body = _resolve(client, name, unit="someone").json()
    assert body["version"] == 3 and "assignment" not in body


def test_one_running_experiment_per_environment(client: TestClient) -> None:
    name = _setup(client)
    first = _create(client, name)
    second = _create(client, name, candidates=[{"version": 3, "weight": 1}])
    assert client.post(f"/v1/experiments/{first['id']}/start", json={}).status_code == 200
    response = client.post(f"/v1/experiments/{second['id']}/start", json={})
    assert response.status_code == 409
    assert f"experiment {first['id']}" in error_of(response)["message"]
    again = client.post(f"/v1/experiments/{first['id']}/start", json={})
    assert again.status_code == 409 and "is running" in error_of(again)["message"]


def test_bad_experiments_are_refused_with_the_field(client: TestClient) -> None:
    name = _setup(client)
    create_prompt(client, "undeployed")
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"primary_metric": "nonsense"}, 422, "body.primary_metric"),
        ({"guardrails": ["latency_ms", "nope"]}, 422, "body.guardrails[1]"),
        ({"baseline": None}, 422, "body.baseline"),
        ({"primary_metric": "rating", "baseline": None}, 422, "body.std_dev"),
        ({"candidates": [{"version": 1, "weight": 1}]}, 422, "body.candidates[0].version"),
        ({"candidates": [{"version": 9, "weight": 1}]}, 404, "version 9"),
        ({"prompt": "undeployed"}, 409, "deploy the control first"),
        ({"primary_metric": "rating", "std_dev": 1.0, "mode": "ucb"}, 422, "body.mode"),
        ({"mde": 0}, 422, "mde"),
    ]
    for overrides, status, needle in cases:
        body = {
            "prompt": name,
            "environment": ENV,
            "name": "x",
            "candidates": [{"version": 2, "weight": 1}],
            "primary_metric": "completion",
            "baseline": 0.5,
            "mde": 0.05,
            **overrides,
        }
        response = client.post("/v1/experiments", json=body)
        assert response.status_code == status, (overrides, response.text)
        assert needle in response.text, (overrides, response.text)
    assert client.get("/v1/experiments").json()["total"] == 0  # nothing half-created

    experiment = _create(client, name)
    stop_draft = client.post(f"/v1/experiments/{experiment['id']}/stop", json={"decision": "keep_control"})
    assert stop_draft.status_code == 409
    client.post(f"/v1/experiments/{experiment['id']}/start", json={})
    for body, needle in (
        ({"decision": "ship"}, "body.variant"),
        ({"decision": "ship", "variant": "control"}, "body.variant"),
        ({"decision": "keep_control", "variant": "v2"}, "body.variant"),
    ):
        response = client.post(f"/v1/experiments/{experiment['id']}/stop", json=body)
        assert response.status_code == 422 and needle in response.text, response.text
    weights = client.put(f"/v1/experiments/{experiment['id']}/weights", json={"weights": {"control": 1}})
    assert weights.status_code == 422 and "missing: v2" in error_of(weights)["message"]
    assert client.get(f"/v1/experiments/{experiment['id']}").json()["status"] == "running"
    bad_unit = _resolve(client, name, unit="u", version=1)
    assert bad_unit.status_code == 422 and "query.unit" in bad_unit.text


def test_events_are_validated_whole_and_outcomes_tagged(client: TestClient) -> None:
    name = _setup(client)
    experiment = _create(client, name)
    eid = experiment["id"]
    client.post(f"/v1/experiments/{eid}/start", json={})

    too_many = [{"type": "outcome", "request_id": f"r{i}", "completed": True} for i in range(10_001)]
    response = client.post("/v1/events", json={"events": too_many})
    assert response.status_code == 422 and "body.events" in response.text

    bad = [
        {"type": "exposure", "request_id": "r1", "experiment_id": eid, "variant": "control", "unit": "u1"},
        {"type": "exposure", "request_id": "r2", "experiment_id": eid, "variant": "v9", "unit": "u2"},
    ]
    response = client.post("/v1/events", json={"events": bad})
    assert response.status_code == 422 and "body.events[1].variant" in error_of(response)["message"]
    foreign = [
        {"type": "exposure", "request_id": "r1", "experiment_id": 999, "variant": "control", "unit": "u"}
    ]
    assert client.post("/v1/events", json={"events": foreign}).status_code == 404
    metric = [{"type": "outcome", "request_id": "r1", "metrics": {"undefined_metric": 1}}]
    response = client.post("/v1/events", json={"events": metric})
    assert response.status_code == 422 and "metrics.undefined_metric" in response.text

    # the outcome may come first: it is tagged when its exposure arrives
    early = client.post(
        "/v1/events", json={"events": [{"type": "outcome", "request_id": "late", "completed": True}]}
    )
    assert early.json() == {"accepted": 1, "exposures": 0, "outcomes": 1, "untagged": 1, "generations": 0}
    exposure = {"type": "exposure", "request_id": "late", "experiment_id": eid, "variant": "v2", "unit": "u7"}
    same_batch = [
        {"type": "exposure", "request_id": "r5", "experiment_id": eid, "variant": "control", "unit": "u5"},
        {"type": "outcome", "request_id": "r5", "completed": False, "latency_ms": 120},
    ]
    response = client.post("/v1/events", json={"events": [exposure, *same_batch]})
    assert response.json() == {"accepted": 3, "exposures": 2, "outcomes": 1, "untagged": 0, "generations": 0}
    results = client.get(f"/v1/experiments/{eid}/results").json()
    control, candidate = results["variants"]
    assert (control["exposures"], candidate["exposures"]) == (1, 1)
    assert candidate["metrics"]["completion"]["mean"] == 1.0  # the early outcome counted
    assert control["metrics"]["completion"]["mean"] == 0.0
    assert control["metrics"]["latency_ms"]["n"] == 1 and candidate["metrics"]["latency_ms"]["n"] == 0
    assert results["state"] == "collecting" and results["winner"] is None
    assert results["message"].startswith("collecting (1 of 796")


def test_custom_metrics(client: TestClient) -> None:
    created = client.post("/v1/metrics", json={"name": "resolved_ticket", "kind": "binary"})
    assert created.status_code == 201, created.text
    assert client.post("/v1/metrics", json={"name": "resolved_ticket", "kind": "binary"}).status_code == 409
    assert client.post("/v1/metrics", json={"name": "completion", "kind": "binary"}).status_code == 409
    names = {m["name"]: m["builtin"] for m in client.get("/v1/metrics").json()}
    assert names["resolved_ticket"] is False and names["completion"] is True
    name = _setup(client)
    experiment = _create(client, name, primary_metric="resolved_ticket")
    eid = experiment["id"]
    client.post(f"/v1/experiments/{eid}/start", json={})
    events = []
    for i in range(40):
        variant = "control" if i % 2 else "v2"
        events.append(
            {
                "type": "exposure",
                "request_id": f"q{i}",
                "experiment_id": eid,
                "variant": variant,
                "unit": f"u{i}",
            }
        )
        events.append({"type": "outcome", "request_id": f"q{i}", "metrics": {"resolved_ticket": i % 4 == 0}})
    assert client.post("/v1/events", json={"events": events}).status_code == 200
    results = client.get(f"/v1/experiments/{eid}/results").json()
    control, candidate = results["variants"]
    assert control["metrics"]["resolved_ticket"]["mean"] == 0.0  # odd i: never divisible by 4
    assert candidate["metrics"]["resolved_ticket"]["mean"] == 0.5
    bad = [{"type": "outcome", "request_id": "q1", "metrics": {"resolved_ticket": 0.5}}]
    assert client.post("/v1/events", json={"events": bad}).status_code == 422


def test_results_match_a_direct_computation(client: TestClient) -> None:
    """Per-unit means, moments and the median's exact bootstrap interval, against plain Python."""
    import random
    import statistics

    from promptkeeper.core.experiment_stats import median_bootstrap_interval

    name = _setup(client)
    experiment = _create(client, name)
    eid = experiment["id"]
    client.post(f"/v1/experiments/{eid}/start", json={})
    rng = random.Random(5)
    per_unit: dict[str, list[float]] = {"control": [], "v2": []}
    completions: dict[str, list[int]] = {"control": [], "v2": []}
    events: list[dict[str, Any]] = []
    for i in range(501):
        variant = "control" if i < 301 else "v2"
        visits = [rng.lognormvariate(6.5, 0.4) for _ in range(rng.randint(1, 3))]
        per_unit[variant].append(sum(visits) / len(visits))
        completed = [rng.random() < 0.6 for _ in visits]
        completions[variant].append(int(any(completed)))
        for j, (latency, done) in enumerate(zip(visits, completed, strict=True)):
            request_id = f"x{i}-{j}"
            events.append(
                {
                    "type": "exposure",
                    "request_id": request_id,
                    "experiment_id": eid,
                    "variant": variant,
                    "unit": f"u{i}",
                }
            )
            events.append(
                {"type": "outcome", "request_id": request_id, "latency_ms": latency, "completed": done}
            )
    rng.shuffle(events)  # outcomes before their exposures, in other batches: tagged when those arrive
    for start in range(0, len(events), 400):
        assert client.post("/v1/events", json={"events": events[start : start + 400]}).status_code == 200
    results = client.get(f"/v1/experiments/{eid}/results").json()
    for variant_result in results["variants"]:
        key = variant_result["key"]
        latency = variant_result["metrics"]["latency_ms"]
        values = sorted(per_unit[key])
        assert latency["n"] == len(values) and variant_result["exposures"] == len(values)
        assert abs(latency["mean"] - statistics.fmean(values)) < 1e-6
        median, interval = median_bootstrap_interval(values)
        assert abs(latency["median"]["median"] - median) < 1e-9
        assert abs(latency["median"]["ci"]["low"] - interval.low) < 1e-9
        assert abs(latency["median"]["ci"]["high"] - interval.high) < 1e-9
        assert variant_result["metrics"]["completion"]["mean"] == statistics.fmean(completions[key])


def test_protected_environment_needs_an_approver_to_start(client: TestClient, settings: Any) -> None:
    from promptkeeper.access.service import Role
    from tests.helpers import bearer
    from tests.route_catalog import new_key

    name = _setup(client)
    assert client.patch(f"/v1/environments/{ENV}", json={"protected": True}).status_code == 200
    experiment = _create(client, name)
    editor = new_key(settings, "default", Role.editor)
    response = client.post(f"/v1/experiments/{experiment['id']}/start", json={}, headers=bearer(editor))
    assert response.status_code == 403 and "approver" in error_of(response)["message"]
    assert client.get(f"/v1/experiments/{experiment['id']}").json()["status"] == "draft"
    started = client.post(f"/v1/experiments/{experiment['id']}/start", json={})  # the admin may
    assert started.status_code == 200, started.text
    # shipping the winner is a deploy to a protected environment: it needs an approved review
    ship = client.post(f"/v1/experiments/{experiment['id']}/stop", json={"decision": "ship", "variant": "v2"})
    assert ship.status_code == 409 and "review" in error_of(ship)["message"]
    assert client.get(f"/v1/experiments/{experiment['id']}").json()["status"] == "running"


def test_out_of_range_numbers_and_nul_are_422_and_store_nothing(client: TestClient) -> None:
    """Found by tests/test_schemathesis.py: token counts past 2**31 reached an INTEGER column and a
    NUL in a filter reached PostgreSQL (500s); ids past 2**63 overflowed SQLite (500)."""
    name = _setup(client)
    eid = _create(client, name)["id"]
    client.post(f"/v1/experiments/{eid}/start", json={})
    exposure = {
        "type": "exposure",
        "request_id": "r1",
        "experiment_id": eid,
        "variant": "control",
        "unit": "u",
    }
    outcome = {"type": "outcome", "request_id": "r1", "completed": True, "input_tokens": 2**31}
    response = client.post("/v1/events", json={"events": [exposure, outcome]})
    assert response.status_code == 422, response.text
    assert error_of(response)["details"]["errors"][0]["field"] == "body.events[1].input_tokens"
    variants = client.get(f"/v1/experiments/{eid}/results").json()["variants"]
    assert [v["exposures"] for v in variants] == [0, 0]  # the batch is refused whole
    response = client.post(f"/v1/experiments/{2**63}/stop", json={"decision": "ship"})
    assert response.status_code == 422 and "path.experiment_id" in error_of(response)["message"]
    response = client.get("/v1/experiments", params={"prompt": "a\x00"})
    assert response.status_code == 422 and error_of(response)["message"].startswith("query.prompt: ")
