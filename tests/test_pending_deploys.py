"""Pending deploys on both backends: states, the other policies, bad input, the CLI and the UI.

The servers here run no worker (`worker_in_process=False`), so a pending deploy stays waiting
until the test runs one, the way a `promptkeeper worker` process would pick the job up.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from promptkeeper.app import create_app
from promptkeeper.config import Settings
from promptkeeper.db.engine import Database
from promptkeeper.worker import Worker
from tests.conftest import ADMIN_KEY, Backend, LiveServer, make_settings
from tests.helpers import add_version, bearer, create_prompt, error_of, run_cli
from tests.route_catalog import PASSWORD
from tests.test_evaluations import CASES

RIGHT = {"Capital of France?": "Paris", "Capital of Italy?": "Rome", "Capital of Japan?": "Tokyo"}
GATE = {
    "suite": "capitals",
    "min_scores": {"exact_match": 0.9},
    "auto_run": {"provider": "local", "params": {"local_responses": RIGHT}},
}


@pytest.fixture
def no_worker(backend: Backend, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    extra: dict[str, Any] = {"worker_in_process": False}
    if backend.is_postgres:
        extra["redis_url"] = request.getfixturevalue("redis_url")
        extra["redis_prefix"] = f"pktest-{uuid.uuid4().hex[:12]}"  # no entry cached by another test
    return make_settings(backend, tmp_path, **extra)


@pytest.fixture
def api(no_worker: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(no_worker), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        create_prompt(client, "geo", "Capital of {{ country }}?")
        add_version(client, "geo", "Capital city of {{ country }}?")  # answers nothing right
        suite = client.post(
            "/v1/suites", json={"name": "capitals", "scorers": [{"name": "exact_match"}], "cases": CASES}
        )
        assert suite.status_code == 201, suite.text
        yield client


def _work(settings: Settings) -> None:
    """What a `promptkeeper worker` does: execute every queued run."""
    database = Database(settings)
    try:
        asyncio.run(Worker(database, settings, name="test-worker").run(until_idle=True))
    finally:
        database.dispose()


def _deploy(client: TestClient, version: int, **extra: Any) -> httpx.Response:
    return client.post(
        "/v1/prompts/geo/deployments", json={"environment": "production", "version": version, **extra}
    )


def test_pending_deploy_waits_deploys_refuses_and_cancels(api: TestClient, no_worker: Settings) -> None:
    bad = api.put("/v1/environments/production/gate", json={**GATE, "auto_run": {"provider": "nope"}})
    assert bad.status_code == 422 and "body.auto_run.provider" in error_of(bad)["message"]
    assert api.get("/v1/environments/production/gate").status_code == 404  # nothing half-written
    assert api.put("/v1/environments/production/gate", json=GATE).status_code == 200

    first = _deploy(api, 1)
    assert first.status_code == 202, first.text
    waiting = first.json()
    assert (
        waiting["status"] == "waiting" and waiting["run_status"] == "queued" and waiting["deployment"] is None
    )
    # The same deploy asked again is the same pending deploy (no second run); another version waits.
    assert _deploy(api, 1).json()["id"] == waiting["id"]
    assert api.get("/v1/prompts/geo/evaluations").json()["total"] == 1
    other = _deploy(api, 2)
    assert other.status_code == 409 and f"pending deploy #{waiting['id']}" in error_of(other)["message"]
    assert api.get("/v1/resolve/geo").status_code == 404  # nothing deployed yet

    _work(no_worker)
    done = api.get(f"/v1/prompts/geo/pending-deployments/{waiting['id']}").json()
    assert done["status"] == "deployed" and done["run_status"] == "succeeded"
    assert api.get("/v1/resolve/geo").json()["version"] == 1
    history = api.get("/v1/prompts/geo/deployments").json()["items"]
    assert [(h["id"], h["version"], h["actor"]) for h in history] == [(done["deployment"], 1, "admin")]

    # Cancelled while its run is queued: the run still finishes, nothing is deployed.
    second = _deploy(api, 2).json()
    cancelled = api.post(f"/v1/prompts/geo/pending-deployments/{second['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = api.post(f"/v1/prompts/geo/pending-deployments/{second['id']}/cancel")
    assert again.status_code == 409 and "already cancelled" in error_of(again)["message"]
    _work(no_worker)
    assert api.get(f"/v1/prompts/geo/pending-deployments/{second['id']}").json()["status"] == "cancelled"
    assert api.get("/v1/resolve/geo").json()["version"] == 1
    # Now version 2 has a valid (failing) run: a plain 409, and no run is started.
    refused = _deploy(api, 2)
    assert refused.status_code == 409 and error_of(refused)["code"] == "gate_failed"
    assert api.get("/v1/prompts/geo/evaluations").json()["total"] == 2
    listed = api.get("/v1/prompts/geo/pending-deployments", params={"status": "cancelled"}).json()
    assert [p["id"] for p in listed] == [second["id"]]
    assert api.get("/v1/prompts/geo/pending-deployments/999").status_code == 404
    actions = [e["action"] for e in api.get("/v1/audit", params={"action": "deployment.*"}).json()["items"]]
    assert actions.count("deployment.pending") == 2 and "deployment.pending_cancelled" in actions


def test_pending_deploy_meets_every_other_policy_now_and_when_it_ships(
    api: TestClient, no_worker: Settings
) -> None:
    assert api.put("/v1/environments/production/gate", json=GATE).status_code == 200
    api.patch("/v1/environments/production", json={"protected": True, "required_approvals": 1})
    # Told at once: no review, so no run is started and nothing waits.
    missing = _deploy(api, 1)
    assert missing.status_code == 409 and "needs a review" in error_of(missing)["message"]
    assert api.get("/v1/prompts/geo/evaluations").json()["total"] == 0
    assert api.get("/v1/prompts/geo/pending-deployments").json() == []
    api.patch("/v1/environments/production", json={"protected": False, "required_approvals": 0})
    waiting = _deploy(api, 1).json()
    assert waiting["status"] == "waiting"
    # A policy added while it waits is met when it ships: refused, recorded, nothing deployed.
    api.patch("/v1/environments/production", json={"requires_environment": "staging"})
    _work(no_worker)
    refused = api.get(f"/v1/prompts/geo/pending-deployments/{waiting['id']}").json()
    assert refused["status"] == "refused" and refused["run_status"] == "succeeded"
    assert "never been deployed to 'staging'" in refused["message"]
    assert api.get("/v1/resolve/geo").status_code == 404
    audit = api.get("/v1/audit", params={"action": "deployment.pending_refused"}).json()["items"]
    assert audit[0]["severity"] == "warning" and audit[0]["summary"]["after"]["status"] == "refused"


def test_cli_deploy_prints_the_pending_deploy_and_waits(live_server: LiveServer) -> None:
    with live_server.client() as http:
        create_prompt(http, "geo", "Capital of {{ country }}?")
        add_version(http, "geo", "Capital city of {{ country }}?")
        assert (
            http.post(
                "/v1/suites", json={"name": "capitals", "scorers": [{"name": "exact_match"}], "cases": CASES}
            ).status_code
            == 201
        )
        assert http.put("/v1/environments/production/gate", json=GATE).status_code == 200
    code, out, err = run_cli(
        live_server.url, "prompts", "deploy", "geo", "1", "--env", "production", "--wait"
    )
    assert code == 0, err
    assert "pending deploy #1 of geo v1 to production: deployed" in out
    code, out, err = run_cli(
        live_server.url, "prompts", "deploy", "geo", "2", "--env", "production", "--wait"
    )
    assert code == 1 and "refused" in out and "exact_match 0.000 < minimum 0.900" in out
    code, out, _ = run_cli(live_server.url, "prompts", "pending", "geo")
    assert code == 0 and out.splitlines()[0].startswith("pending deploy #2 of geo v2 to production: refused")
    with live_server.client() as http:
        http.post(
            "/v1/users", json={"email": "ed@example.com", "role": "editor", "password": "a long passphrase"}
        )
    with httpx.Client(base_url=live_server.url) as browser:
        login = browser.post(
            "/ui/login",
            data={"email": "ed@example.com", "password": "a long passphrase", "next": "/ui/prompts"},
        )
        assert login.status_code == 303
        page = browser.get("/ui/prompts/geo")
        assert page.status_code == 200 and 'data-testid="pending-deployments"' in page.text
        assert "#2 v2 → production: <strong>refused</strong>" in page.text
        # Before a deploy, the confirmation page says it will wait for the evaluation.
        with live_server.client() as http:
            add_version(http, "geo", "Capital of {{ country }}, please?")
        confirm = browser.get("/ui/prompts/geo/confirm", params={"environment": "production", "version": 3})
        assert confirm.status_code == 200 and 'data-testid="waits"' in confirm.text
        assert 'data-testid="blocked"' not in confirm.text


def test_review_deploy_waits_for_the_evaluation_and_closes_the_review(
    api: TestClient, no_worker: Settings
) -> None:
    people = {}
    for who, role in (("eve", "editor"), ("ada", "approver")):
        email = f"{who}@example.com"
        created = api.post("/v1/users", json={"email": email, "role": role, "password": PASSWORD})
        assert created.status_code == 201, created.text
        login = api.post("/v1/auth/login", json={"email": email, "password": PASSWORD}, headers={})
        people[who] = bearer(login.json()["token"])
    assert api.put("/v1/environments/production/gate", json=GATE).status_code == 200
    api.patch("/v1/environments/production", json={"protected": True, "required_approvals": 1})
    review = api.post(
        "/v1/prompts/geo/reviews", json={"environment": "production", "version": 1}, headers=people["eve"]
    ).json()["id"]
    approved = api.post(f"/v1/prompts/geo/reviews/{review}/approve", json={}, headers=people["ada"])
    assert approved.status_code == 200, approved.text
    waiting = api.post(f"/v1/prompts/geo/reviews/{review}/deploy", json={}, headers=people["ada"])
    assert waiting.status_code == 202, waiting.text
    assert waiting.json()["actor"] == "ada@example.com"
    assert api.get(f"/v1/prompts/geo/reviews/{review}").json()["status"] == "approved"  # not yet
    _work(no_worker)
    done = api.get(f"/v1/prompts/geo/pending-deployments/{waiting.json()['id']}").json()
    assert done["status"] == "deployed", done
    assert api.get(f"/v1/prompts/geo/reviews/{review}").json()["status"] == "deployed"
    history = api.get("/v1/prompts/geo/deployments").json()["items"]
    assert [(h["version"], h["actor"]) for h in history] == [(1, "ada@example.com")]
