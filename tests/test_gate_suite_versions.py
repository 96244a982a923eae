"""A gate is satisfied only by a run on the suite's current version, or on the version it pins
(issue 19.4): a passing run on an outdated suite is not evidence for today's cases."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.helpers import create_prompt, error_of
from tests.test_evaluations import ANSWERS, CASES, _run

#: The suite's version 2: every expected answer differs, so a run on it scores 0.
CHANGED = [{**case, "expected": case["expected"] + " (changed)"} for case in CASES]


def _setup(client: TestClient) -> None:
    create_prompt(client, "geo", "Capital of {{ country }}?")
    suite = client.post(
        "/v1/suites",
        json={"name": "capitals", "prompt": "geo", "scorers": [{"name": "exact_match"}], "cases": CASES},
    )
    assert suite.status_code == 201, suite.text
    answers = {**ANSWERS, "Capital of Japan?": "Tokyo"}
    passed = _run(client, version=1, params={"local_responses": answers})
    assert passed["suite_version"] == 1 and passed["summary"]["scorers"]["exact_match"]["mean"] == 1.0
    changed = client.post("/v1/suites/capitals/versions", json={"cases": CHANGED, "message": "new answers"})
    assert changed.status_code == 201 and changed.json()["version"] == 2


def test_a_run_on_an_outdated_suite_version_does_not_satisfy_the_gate(client: TestClient) -> None:
    _setup(client)
    gate = client.put(
        "/v1/environments/production/gate", json={"suite": "capitals", "min_scores": {"exact_match": 0.9}}
    )
    assert gate.status_code == 200, gate.text
    assert gate.json()["suite_version"] is None  # follows the suite's head
    refused = client.post("/v1/prompts/geo/deployments", json={"environment": "production", "version": 1})
    assert refused.status_code == 409, refused.text
    error = error_of(refused)
    assert error["code"] == "gate_failed"
    assert "suite 'capitals' version 2" in error["message"], error["message"]
    assert error["details"]["suite_version"] == 2
    assert error["details"]["failures"][0]["kind"] == "no_run"
    assert error["details"]["failures"][0]["outdated_run"]["suite_version"] == 1
    # A run on the current suite version is the evidence, and it fails.
    fresh = _run(client, version=1, params={"local_responses": {**ANSWERS, "Capital of Japan?": "Tokyo"}})
    assert fresh["suite_version"] == 2 and fresh["summary"]["gates"]["production"]["passed"] is False
    refused = client.post("/v1/prompts/geo/deployments", json={"environment": "production", "version": 1})
    assert refused.status_code == 409 and "exact_match 0.000 < minimum 0.900" in error_of(refused)["message"]
    assert client.get("/v1/prompts/geo/deployments").json()["total"] == 0


def test_a_gate_can_pin_a_suite_version(client: TestClient) -> None:
    _setup(client)
    bad = client.put("/v1/environments/production/gate", json={"suite": "capitals", "suite_version": 9})
    assert bad.status_code == 422 and "body.suite_version" in error_of(bad)["message"]
    assert client.get("/v1/environments/production/gate").status_code == 404  # nothing half-written
    pinned = client.put(
        "/v1/environments/production/gate",
        json={"suite": "capitals", "suite_version": 1, "min_scores": {"exact_match": 0.9}},
    )
    assert pinned.status_code == 200 and pinned.json()["suite_version"] == 1
    deployed = client.post("/v1/prompts/geo/deployments", json={"environment": "production", "version": 1})
    assert deployed.status_code == 201, deployed.text
