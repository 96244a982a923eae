"""Evaluation suites, runs (in-process worker, local provider), results, caching, gates, promotion."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from promptkeeper.app import create_app
from promptkeeper.config import Settings
from tests.conftest import ADMIN_KEY
from tests.helpers import add_version, chat_content, create_prompt, error_of

CASES = [
    {"key": "paris", "variables": {"country": "France"}, "expected": "Paris", "tags": ["europe"]},
    {"key": "rome", "variables": {"country": "Italy"}, "expected": "Rome", "tags": ["europe"]},
    {"key": "tokyo", "variables": {"country": "Japan"}, "expected": "Tokyo", "tags": ["asia", "edge-case"]},
]
ANSWERS = {"Capital of France?": "Paris", "Capital of Italy?": "Rome", "Capital of Japan?": "Kyoto"}


def _suite(client: TestClient, name: str = "capitals", **extra: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "prompt": "geo",
        "scorers": [{"name": "exact_match"}, {"name": "length", "params": {"max_chars": 20}}],
        "cases": CASES,
        **extra,
    }
    response = client.post("/v1/suites", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def _geo(client: TestClient) -> None:
    create_prompt(client, "geo", "Capital of {{ country }}?")


def wait_for_run(client: TestClient, run_id: int, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = client.get(f"/v1/evaluations/{run_id}").json()
        if run["status"] in ("succeeded", "failed"):
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run['status']}: {run}"
        time.sleep(0.05)


def _run(client: TestClient, **body: Any) -> dict[str, Any]:
    payload = {"suite": "capitals", "params": {"local_responses": ANSWERS}, **body}
    response = client.post("/v1/prompts/geo/evaluations", json=payload)
    assert response.status_code == 202, response.text
    run = wait_for_run(client, response.json()["id"])
    assert run["status"] == "succeeded", run["error"]
    return run


def test_suite_versions_import_and_export(client: TestClient) -> None:
    _geo(client)
    suite = _suite(client)
    assert suite["version"] == 1 and suite["case_count"] == 3 and suite["prompt"] == "geo"
    cases = client.get("/v1/suites/capitals/cases", params={"limit": 2}).json()
    assert cases["total"] == 3 and [c["key"] for c in cases["items"]] == ["paris", "rome"]
    assert client.get("/v1/suites/capitals/cases", params={"tag": "asia"}).json()["total"] == 1
    exported = client.get("/v1/suites/capitals/export", params={"format": "jsonl"})
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in exported.text.splitlines()]
    assert lines[0] == {
        "key": "paris",
        "variables": {"country": "France"},
        "expected": "Paris",
        "tags": ["europe"],
    }
    # JSONL round trip: re-import gives the same cases as version 2.
    imported = client.post(
        "/v1/suites/capitals/import",
        params={"format": "jsonl"},
        content=exported.text,
        headers={"Content-Type": "text/plain"},
    )
    assert imported.status_code == 201, imported.text
    assert imported.json()["imported"] == 3 and imported.json()["suite"]["version"] == 2
    again = client.get("/v1/suites/capitals/export", params={"format": "jsonl", "version": 2}).text
    assert again == exported.text
    # CSV: reserved columns and one column per variable; append mode adds to the head's cases.
    csv_text = client.get("/v1/suites/capitals/export", params={"format": "csv"}).text
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert rows[2] == {
        "key": "tokyo",
        "country": "Japan",
        "expected": "Tokyo",
        "tags": "asia|edge-case",
        "scorers": "",
    }
    extra = "key,country,expected,tags\nberlin,Germany,Berlin,europe\n"
    appended = client.post(
        "/v1/suites/capitals/import",
        params={"format": "csv", "mode": "append"},
        content=extra,
        headers={"Content-Type": "text/plain"},
    )
    assert appended.status_code == 201 and appended.json()["suite"]["case_count"] == 4
    # Bad files name the line; nothing is saved.
    bad = client.post(
        "/v1/suites/capitals/import",
        params={"format": "jsonl"},
        content='{"key": "a"}\n{"key": "b", "tags": "x"}\n',
        headers={"Content-Type": "text/plain"},
    )
    assert bad.status_code == 422 and error_of(bad)["message"].startswith("line 2:")
    not_json = client.post(
        "/v1/suites/capitals/import", content="{oops\n", headers={"Content-Type": "text/plain"}
    )
    assert not_json.status_code == 422 and "line 1" in error_of(not_json)["message"]
    assert client.get("/v1/suites/capitals").json()["version"] == 3
    # New version with other scorers keeps the cases.
    rescored = client.post("/v1/suites/capitals/versions", json={"scorers": [{"name": "contains"}]})
    assert (
        rescored.status_code == 201 and rescored.json()["case_count"] == 4 and rescored.json()["version"] == 4
    )


def test_suite_validation(client: TestClient) -> None:
    _geo(client)
    unknown = client.post("/v1/suites", json={"name": "s", "scorers": [{"name": "nope"}], "cases": CASES})
    assert unknown.status_code == 422 and "body.scorers[0]" in error_of(unknown)["message"]
    bad_regex = client.post(
        "/v1/suites", json={"name": "s", "scorers": [{"name": "regex", "params": {"pattern": "(("}}]}
    )
    assert bad_regex.status_code == 422 and "body.scorers[0]" in error_of(bad_regex)["message"]
    duplicate_keys = client.post(
        "/v1/suites",
        json={"name": "s", "scorers": [{"name": "exact_match"}], "cases": [{"key": "a"}, {"key": "a"}]},
    )
    assert duplicate_keys.status_code == 422 and "cases[1].key" in error_of(duplicate_keys)["message"]
    no_prompt = client.post(
        "/v1/suites", json={"name": "s", "prompt": "nope", "scorers": [{"name": "exact_match"}]}
    )
    assert no_prompt.status_code == 404
    _suite(client)
    taken = client.post("/v1/suites", json={"name": "capitals", "scorers": [{"name": "exact_match"}]})
    assert taken.status_code == 409
    assert client.get("/v1/suites").json()[0]["name"] == "capitals"
    assert client.get("/v1/suites/nope").status_code == 404


def test_run_scores_summarises_and_caches(client: TestClient) -> None:
    _geo(client)
    _suite(client)
    run = _run(client, repeats=2)
    assert run["status"] == "succeeded", run
    assert run["total"] == 6 and run["done"] == 6
    summary = run["summary"]
    exact = summary["scorers"]["exact_match"]
    assert exact["n"] == 6 and exact["mean"] == pytest.approx(2 / 3)
    assert exact["pass_rate"] == pytest.approx(2 / 3)
    assert exact["pass_ci"][0] < 2 / 3 < exact["pass_ci"][1]
    assert summary["scorers"]["length"]["mean"] == 1.0
    assert summary["tags"]["asia"]["exact_match"]["mean"] == 0.0
    assert summary["tags"]["europe"]["exact_match"]["mean"] == 1.0
    assert summary["consistency"]["agreement"] == 1.0  # the local provider is deterministic
    failed = client.get(f"/v1/evaluations/{run['id']}/results", params={"failed_only": True}).json()
    assert failed["total"] == 2 and {r["case"] for r in failed["items"]} == {"tokyo"}
    assert failed["items"][0]["output"] == "Kyoto" and failed["items"][0]["passed"] is False
    # Re-running the unchanged suite makes no provider call: every result comes from the cache.
    again = _run(client, repeats=2)
    assert again["summary"]["cached"] == 6 and again["summary"]["scorers"] == summary["scorers"]
    listed = client.get("/v1/prompts/geo/evaluations").json()
    assert [r["id"] for r in listed["items"]] == [again["id"], run["id"]]


def test_render_errors_and_provider_failures_are_results(client: TestClient, settings: Settings) -> None:
    create_prompt(client, "geo", "Capital of {{ country }} in {{ language }}?")
    _suite(client)
    run = _run(client, params={"local_fail": {"status": 400, "times": 1}})
    assert run["status"] == "succeeded"
    results = client.get(f"/v1/evaluations/{run['id']}/results").json()["items"]
    assert all(r["error"] and "language" in r["error"] for r in results)
    assert run["summary"]["errors"] == 3 and run["summary"]["scorers"]["exact_match"]["mean"] == 0.0


def test_retries_on_429_then_success(client: TestClient) -> None:
    _geo(client)
    _suite(client)
    run = _run(client, params={"local_responses": ANSWERS, "local_fail": {"status": 429, "times": 2}})
    assert run["status"] == "succeeded" and run["summary"]["errors"] == 0
    assert run["summary"]["scorers"]["exact_match"]["mean"] == pytest.approx(2 / 3)


def test_unknown_provider_model_and_version(client: TestClient) -> None:
    _geo(client)
    _suite(client)
    bad = client.post("/v1/prompts/geo/evaluations", json={"suite": "capitals", "provider": "nope"})
    assert bad.status_code == 422 and "body.provider" in error_of(bad)["message"]
    no_model = client.post("/v1/prompts/geo/evaluations", json={"suite": "capitals", "provider": "openai"})
    assert no_model.status_code == 422 and "body.model" in error_of(no_model)["message"]
    assert (
        client.post("/v1/prompts/geo/evaluations", json={"suite": "capitals", "version": 9}).status_code
        == 404
    )
    assert client.post("/v1/prompts/geo/evaluations", json={"suite": "nope"}).status_code == 404
    assert client.get("/v1/evaluations/999").status_code == 404


def test_compare_runs(client: TestClient) -> None:
    _geo(client)
    add_version(client, "geo", "Capital city of {{ country }}?")
    _suite(client)
    answers_v2 = {
        "Capital city of France?": "Paris",
        "Capital city of Italy?": "Milan",
        "Capital city of Japan?": "Tokyo",
    }
    baseline = _run(client, version=1)
    candidate = _run(client, version=2, params={"local_responses": answers_v2})
    comparison = client.get(f"/v1/evaluations/{candidate['id']}/compare", params={"baseline": baseline["id"]})
    assert comparison.status_code == 200, comparison.text
    body = comparison.json()
    assert [(r["case"], r["scorer"]) for r in body["regressions"]] == [("rome", "exact_match")]
    assert [(r["case"], r["scorer"]) for r in body["improvements"]] == [("tokyo", "exact_match")]
    assert body["scorers"]["exact_match"]["difference"] == 0.0


def test_gate_blocks_failing_versions_and_auto_promotes(client: TestClient) -> None:
    _geo(client)
    add_version(client, "geo", "Capital city of {{ country }}?")
    _suite(client)
    gate = client.put(
        "/v1/environments/production/gate",
        json={"suite": "capitals", "min_scores": {"exact_match": 0.6}, "max_drop": {"exact_match": 0.0}},
    )
    assert gate.status_code == 200, gate.text
    # No run at all: refused with the reason.
    refused = client.post("/v1/prompts/geo/deployments", json={"environment": "production", "version": 1})
    assert refused.status_code == 409
    error = error_of(refused)
    assert error["code"] == "gate_failed" and "no succeeded run of version 1" in error["message"]
    # A run below the minimum: refused naming the scorer and the numbers.
    weak = _run(client, version=1, params={"local_responses": {"Capital of France?": "Paris"}})
    assert weak["summary"]["gates"]["production"]["passed"] is False
    refused = client.post("/v1/prompts/geo/deployments", json={"environment": "production", "version": 1})
    assert refused.status_code == 409 and "exact_match 0.333 < minimum 0.600" in error_of(refused)["message"]
    # A passing run: deployed.
    _run(client, version=1)
    assert (
        client.post(
            "/v1/prompts/geo/deployments", json={"environment": "production", "version": 1}
        ).status_code
        == 201
    )
    # Version 2 scores lower than what production serves: the drop is refused.
    worse = {
        "Capital city of France?": "Paris",
        "Capital city of Italy?": "Milan",
        "Capital city of Japan?": "Kyoto",
    }
    _run(client, version=2, params={"local_responses": worse})
    refused = client.post("/v1/prompts/geo/deployments", json={"environment": "production", "version": 2})
    assert refused.status_code == 409
    failures = error_of(refused)["details"]["failures"]
    assert {f["kind"] for f in failures} == {"min_score", "max_drop"}
    failure = next(f for f in failures if f["kind"] == "max_drop")
    assert failure["baseline_version"] == 1
    assert failure["actual"] == pytest.approx(1 / 3)
    # Auto-promotion to staging when a run passes its gate.
    staging = client.put(
        "/v1/environments/staging/gate",
        json={"suite": "capitals", "min_scores": {"exact_match": 0.6}, "auto_promote": True},
    )
    assert staging.status_code == 200
    better = {
        "Capital city of France?": "Paris",
        "Capital city of Italy?": "Rome",
        "Capital city of Japan?": "Tokyo",
    }
    run = _run(client, version=2, params={"local_responses": better})
    assert run["summary"]["auto_promoted"] == ["staging"]
    history = client.get("/v1/prompts/geo/deployments", params={"environment": "staging"}).json()["items"]
    assert (
        history[0]["action"] == "promote"
        and history[0]["actor"] == "auto-promote"
        and history[0]["version"] == 2
    )
    # Protected environments cannot auto-promote; gate settings are validated and audited.
    client.patch("/v1/environments/production", json={"protected": True})
    protected = client.put(
        "/v1/environments/production/gate", json={"suite": "capitals", "auto_promote": True}
    )
    assert protected.status_code == 422
    bad = client.put("/v1/environments/production/gate", json={"suite": "capitals", "min_scores": {"x": 2}})
    assert bad.status_code == 422
    assert client.get("/v1/environments/production/gate").json()["min_scores"] == {"exact_match": 0.6}
    assert client.delete("/v1/environments/production/gate").status_code == 204
    assert client.get("/v1/environments/production/gate").status_code == 404
    actions = {e["action"] for e in client.get("/v1/audit", params={"action": "gate.*"}).json()["items"]}
    assert actions == {"gate.set", "gate.removed"}


def test_openai_compatible_provider_in_a_run(backend: Any, tmp_path: Path) -> None:
    from tests.conftest import make_settings
    from tests.fake_llm import FakeLLM

    with FakeLLM(reply=lambda messages: "Paris" if "France" in messages[-1]["content"] else "?") as server:
        settings = make_settings(
            backend, tmp_path, openai_base_url=server.url + "/v1", provider_retry_base=0.01
        )
        with TestClient(create_app(settings), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
            create_prompt(client, "geo", "Capital of {{ country }}?")
            _suite(client)
            response = client.post(
                "/v1/prompts/geo/evaluations",
                json={
                    "suite": "capitals",
                    "provider": "openai",
                    "model": "gpt-test",
                    "prices": {"input": 1.0, "output": 2.0},
                },
            )
            assert response.status_code == 202, response.text
            run = wait_for_run(client, response.json()["id"])
            assert run["status"] == "succeeded", run
            assert run["summary"]["scorers"]["exact_match"]["mean"] == pytest.approx(1 / 3)
            results = client.get(f"/v1/evaluations/{run['id']}/results").json()["items"]
            assert all(r["ttft_ms"] is not None and r["input_tokens"] for r in results)
            expected_cost = sum(r["input_tokens"] * 1.0 + r["output_tokens"] * 2.0 for r in results) / 1e6
            assert expected_cost > 0 and run["summary"]["cost_usd"] == pytest.approx(expected_cost)
            calls = server.requests
            assert calls == 3
            again = wait_for_run(
                client,
                client.post(
                    "/v1/prompts/geo/evaluations",
                    json={"suite": "capitals", "provider": "openai", "model": "gpt-test"},
                ).json()["id"],
            )
            assert again["summary"]["cached"] == 3 and server.requests == calls
            assert again["summary"]["cost_usd"] == 0.0  # answers from the cache cost nothing


def test_chat_prompt_and_llm_judge(client: TestClient) -> None:
    create_prompt(client, "bot", "x")
    client.post(
        "/v1/prompts/bot/versions",
        json={
            "content": chat_content(
                {"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": "{{ question }}"},
            )
        },
    )
    suite = client.post(
        "/v1/suites",
        json={
            "name": "judged",
            "scorers": [{"name": "llm_judge", "params": {"rubric": "Is it polite?"}, "threshold": 0.5}],
            "cases": [{"variables": {"question": "hi"}}],
        },
    )
    assert suite.status_code == 201, suite.text
    response = client.post(
        "/v1/prompts/bot/evaluations",
        json={
            "suite": "judged",
            "params": {"local_responses": {"hi": "Hello! How can I help?"}},
            # the local judge gives this verdict whatever it is asked
            "judge_provider": "local",
            "judge_params": {"local_default": '{"score": 4, "reasoning": "polite and brief"}'},
        },
    )
    assert response.status_code == 202, response.text
    run = wait_for_run(client, response.json()["id"])
    assert run["status"] == "succeeded", run
    result = client.get(f"/v1/evaluations/{run['id']}/results").json()["items"][0]
    assert result["output"] == "Hello! How can I help?"
    score = result["scores"][0]
    assert score["scorer"] == "llm_judge" and score["value"] == pytest.approx(0.75) and score["passed"]
    assert score["detail"]["reasoning"] == "polite and brief"


@pytest.mark.parametrize(
    ("model", "prices", "tokens", "cached", "expected"),
    [
        ("gpt-4o-mini-2024-07-18", None, (1_000_000, 1_000_000), False, 0.75),
        ("gpt-4o", None, (1000, 0), False, 0.0025),
        ("my-model", None, (1000, 1000), False, None),
        ("my-model", {"input": 1.0, "output": 3.0}, (500_000, 100_000), False, 0.8),
        ("gpt-4o", None, (1000, 1000), True, 0.0),
        ("local", None, (10, 10), False, 0.0),
    ],
)
def test_cost(
    model: str, prices: dict[str, float] | None, tokens: tuple[int, int], cached: bool, expected: float | None
) -> None:
    from promptkeeper.evaluations.costs import cost_usd, price_of

    value = cost_usd(price_of(model, prices), *tokens, cached=cached)
    assert value == (pytest.approx(expected) if expected is not None else None)
