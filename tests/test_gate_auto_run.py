"""A gate with `auto_run`: a deploy with no valid run starts the run and deploys when it passes
(issue 19.4), across the real seam: two `promptkeeper serve` instances on PostgreSQL + Redis, a
model over real HTTP that takes 0.5 s an answer, and the instance that took the deploy killed
while its run is in flight, so that only the stored pending deploy and the job queue can finish it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY
from tests.fake_llm import FakeLLM, Messages
from tests.helpers import text_content
from tests.processes import ServerProcess, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
CITIES = {"France": "Paris", "Italy": "Rome", "Japan": "Tokyo"}
#: Suite version 1 expects the city, version 2 "city, country": every expected answer differs.
CASES_V1 = [{"key": c.lower(), "variables": {"country": c}, "expected": city} for c, city in CITIES.items()]
CASES_V2 = [{**case, "expected": f"{case['expected']}, {case['variables']['country']}"} for case in CASES_V1]
TEMPLATES = {1: "Capital of {{ country }}?", 2: "Capital city of {{ country }}?", 3: "Guess {{ country }}"}


def reply(messages: Messages) -> str:
    """Version 1 answers the city, version 2 "city, country", version 3 nonsense."""
    question = str(messages[-1]["content"])
    country = next((c for c in CITIES if c in question), "")
    if question.startswith("Capital of"):
        return CITIES[country]
    if question.startswith("Capital city of"):
        return f"{CITIES[country]}, {country}"
    return "no idea"


@pytest.fixture
def pg_url(postgres_url: str) -> str:
    from tests.conftest import _truncate_postgres

    _truncate_postgres(postgres_url)
    return postgres_url


@pytest.fixture
def slow_llm() -> Iterator[FakeLLM]:
    with FakeLLM(reply=reply, latency_ms=500) as server:
        yield server


@pytest.fixture
def servers(tmp_path: Path, pg_url: str, redis_url: str, slow_llm: FakeLLM) -> Iterator[list[ServerProcess]]:
    env = {
        "PROMPTKEEPER_ADMIN_KEY": ADMIN_KEY,
        "PROMPTKEEPER_DATABASE_URL": pg_url,
        "PROMPTKEEPER_REDIS_URL": redis_url,
        "PROMPTKEEPER_REDIS_PREFIX": f"pktest-{uuid.uuid4().hex[:8]}",
        "PROMPTKEEPER_CACHE_L1_TTL": "600",
        "PROMPTKEEPER_OPENAI_BASE_URL": slow_llm.openai_base_url,
        "PROMPTKEEPER_OPENAI_API_KEY": "sk-test",
        "PROMPTKEEPER_WORKER_LEASE": "2",
        "PROMPTKEEPER_WORKER_POLL_INTERVAL": "0.2",
    }
    started = [ServerProcess(env, tmp_path), ServerProcess(env, tmp_path)]
    try:
        for server in started:
            server.start(timeout=120)  # two cores shared by many: a cold start can take a while
        yield started
    finally:
        for server in started:
            server.stop()


def _call(server: ServerProcess, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, f"{server.url}{path}", json=body, headers=AUTH, timeout=10)


def _ok(server: ServerProcess, method: str, path: str, body: Any = None, status: int = 201) -> Any:
    response = _call(server, method, path, body)
    assert response.status_code == status, response.text
    return response.json()


def _serves(server: ServerProcess) -> int | None:
    response = _call(server, "GET", "/v1/resolve/geo")
    return int(response.json()["version"]) if response.status_code == 200 else None


def _settled(server: ServerProcess, pending_id: int) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = _ok(
            server, "GET", f"/v1/prompts/geo/pending-deployments/{pending_id}", status=200
        )
        return body if body["status"] != "waiting" else None

    result: dict[str, Any] = wait_until(
        done, timeout=60, interval=0.2, message=f"pending deploy {pending_id}"
    )
    return result


def test_deploy_waits_for_the_gate_run_and_survives_the_instance_that_took_it(
    servers: list[ServerProcess], slow_llm: FakeLLM
) -> None:
    a, b = servers
    _ok(a, "POST", "/v1/prompts", {"name": "geo", "content": text_content(TEMPLATES[1])})
    for number in (2, 3):
        _ok(a, "POST", "/v1/prompts/geo/versions", {"content": text_content(TEMPLATES[number])})
    _ok(
        a, "POST", "/v1/suites", {"name": "capitals", "scorers": [{"name": "exact_match"}], "cases": CASES_V1}
    )
    gate = {
        "suite": "capitals",
        "min_scores": {"exact_match": 0.9},
        "max_drop": {"exact_match": 0.0},
        "auto_run": {"provider": "openai", "model": "gpt-test", "concurrency": 1},
    }
    assert (
        _ok(a, "PUT", "/v1/environments/production/gate", gate, status=200)["auto_run"]["provider"]
        == "openai"
    )

    # Version 1, never evaluated: 202, a run is queued, and the deploy happens when it passes.
    first = _ok(a, "POST", "/v1/prompts/geo/deployments", {"environment": "production", "version": 1}, 202)
    assert first["status"] == "waiting" and first["run"] is not None and first["baseline_run"] is None
    assert _settled(b, first["id"])["status"] == "deployed"
    assert _serves(b) == 1 and _serves(a) == 1  # both caches (and Redis) warm with version 1

    # The suite changes: version 1's passing run is now outdated evidence. Deploying version 2
    # needs runs of version 2 and of the baseline (version 1) on suite version 2.
    _ok(a, "POST", "/v1/suites/capitals/versions", {"cases": CASES_V2})
    calls = slow_llm.requests
    second = _ok(a, "POST", "/v1/prompts/geo/deployments", {"environment": "production", "version": 2}, 202)
    assert second["status"] == "waiting" and second["run"] and second["baseline_run"]
    assert second["run_status"] in ("queued", "running")
    # The instance that took the deploy (and woke its worker for the runs) dies mid-run.
    assert a.process is not None
    a.process.kill()
    a.process.wait()
    settled = _settled(b, second["id"])
    assert settled["status"] == "deployed", settled
    assert settled["run_status"] == "succeeded" and settled["baseline_run_status"] == "succeeded"
    wait_until(lambda: _serves(b) == 2, timeout=10, message="B serves version 2")
    # Version 2's cases went to the model over HTTP; version 1's prompts are unchanged by the new
    # suite version (only the expected answers are), so its run was answered by the response cache.
    assert slow_llm.requests - calls >= 3
    run = _ok(b, "GET", f"/v1/evaluations/{settled['run']}", status=200)
    assert run["suite_version"] == 2 and run["summary"]["scorers"]["exact_match"]["mean"] == 1.0
    history = _ok(b, "GET", "/v1/prompts/geo/deployments", status=200)["items"]
    assert [(h["version"], h["actor"]) for h in history] == [(2, "admin"), (1, "admin")]
    assert history[0]["id"] == settled["deployment"]

    # Version 3 answers nonsense: its run fails the gate, the deploy is refused and recorded.
    third = _ok(b, "POST", "/v1/prompts/geo/deployments", {"environment": "production", "version": 3}, 202)
    refused = _settled(b, third["id"])
    assert refused["status"] == "refused" and refused["deployment"] is None
    assert "exact_match 0.000 < minimum 0.900" in refused["message"], refused
    assert refused["details"]["code"] == "gate_failed"
    assert _serves(b) == 2
    audit = _ok(b, "GET", "/v1/audit?action=deployment.pending*", status=200)["items"]
    assert {e["action"] for e in audit} == {"deployment.pending", "deployment.pending_refused"}
    # Asking again with a valid (failing) run is the plain 409: nothing is started twice.
    again = _call(b, "POST", "/v1/prompts/geo/deployments", {"environment": "production", "version": 3})
    assert again.status_code == 409 and again.json()["error"]["code"] == "gate_failed"
