"""Online monitoring: generations in, sampled scoring, regression looks, alerts, automatic rollback.

Scoring is driven by hand (`MonitorScorer.step`) with the in-process worker off, so every test is
deterministic: fixed seeds decide which outputs fail, and sampling hashes request ids.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from promptkeeper.app import create_app
from promptkeeper.config import Settings
from promptkeeper.db.engine import Database
from promptkeeper.monitoring.models import Generation, MonitorCheck, MonitorScore
from promptkeeper.monitoring.scoring import MonitorScorer, RateLimiter
from promptkeeper.monitoring.service import sampled
from tests.conftest import ADMIN_KEY, Backend, make_settings
from tests.helpers import add_version, create_prompt, deploy, error_of, quote_name
from tests.processes import wait_until

ENV = "production"
SAFETY = {"scorer": "not_contains", "name": "safety", "params": {"values": ["UNSAFE"]}}


@pytest.fixture
def settings(backend: Backend, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """No in-process worker: the tests step the scorer themselves."""
    extra: dict[str, Any] = {"worker_in_process": False, "worker_lease": 60.0}
    if backend.is_postgres:
        extra.update(redis_url=request.getfixturevalue("redis_url"), redis_prefix=f"pkmon-{time.time_ns()}")
    return make_settings(backend, tmp_path, **extra)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as test_client:
        yield test_client


@pytest.fixture
def database(client: TestClient) -> Database:
    db: Database = client.app.state.context.db  # type: ignore[attr-defined]
    return db


def _prompt(client: TestClient, name: str, versions: int = 2) -> None:
    create_prompt(client, name, "Answer {{ q }}")
    for number in range(2, versions + 1):
        add_version(client, name, f"Answer v{number} {{{{ q }}}}")
    deploy(client, name, ENV, 1)


def _monitor(client: TestClient, name: str, **overrides: Any) -> dict[str, Any]:
    body = {"prompt": name, "environment": ENV, "scorers": [SAFETY], **overrides}
    response = client.post("/v1/monitors", json=body)
    assert response.status_code == 201, response.text
    monitor: dict[str, Any] = response.json()
    return monitor


class Traffic:
    """Production traffic of one prompt: each output fails the safety scorer with a given rate."""

    def __init__(self, client: TestClient, name: str, seed: int) -> None:
        self.client = client
        self.name = name
        self.rng = random.Random(seed)
        self.sent = 0

    def send(self, version: int, count: int, fail_rate: float) -> None:
        events = []
        for _ in range(count):
            self.sent += 1
            unsafe = self.rng.random() < fail_rate
            events.append(
                {
                    "type": "generation",
                    "request_id": f"{self.name}-{self.sent}",
                    "prompt": self.name,
                    "version": version,
                    "environment": ENV,
                    "output": "UNSAFE advice" if unsafe else "a helpful answer",
                    "input": {"q": f"question {self.sent}"},
                    "latency_ms": 120.0,
                }
            )
        response = self.client.post("/v1/events", json={"events": events})
        assert response.status_code == 200, response.text


def _drain(scorer: MonitorScorer) -> int:
    total = 0
    while claimed := scorer.step():
        total += claimed
    return total


def _live_version(client: TestClient, name: str) -> int:
    response = client.get(f"/v1/resolve/{quote_name(name)}", params={"environment": ENV})
    assert response.status_code == 200, response.text
    version: int = response.json()["version"]
    return version


# --- monitors ---------------------------------------------------------------------------------------


def test_monitor_lifecycle_and_validation(client: TestClient) -> None:
    _prompt(client, "mon/crud")
    monitor = _monitor(client, "mon/crud", sample_rate=0.05)
    assert monitor["scorers"][0] == {
        "name": "safety",
        "scorer": "not_contains",
        "params": {"values": ["UNSAFE"]},
        "threshold": 1.0,
        "kind": "pass_rate",
        "warning_margin": 0.0,
        "critical_margin": 0.05,
        "floor": None,
    }
    assert (monitor["window_size"], monitor["min_sample"], monitor["auto_rollback"]) == (1000, 200, False)

    again = client.post("/v1/monitors", json={"prompt": "mon/crud", "scorers": [SAFETY]})
    assert again.status_code == 409 and "already has monitor" in error_of(again)["message"]

    cases = [
        ({"scorers": [{"scorer": "exact_match"}]}, "body.scorers[0].scorer", "expected output"),
        ({"scorers": [{"scorer": "no_such"}]}, "body.scorers[0].scorer", "unknown scorer"),
        (
            {"scorers": [{"scorer": "llm_judge", "params": {"rubric": "kind?"}}]},
            "body.scorers[0].scorer",
            "judge",
        ),
        ({"scorers": [{"scorer": "length", "params": {"mxa": 3}}]}, "body.scorers[0].params", "mxa"),
        ({"scorers": [SAFETY, SAFETY]}, "body.scorers[1].name", "used twice"),
        (
            {"scorers": [{"scorer": "feedback_thumbs", "params": {"x": 1}}]},
            "body.scorers[0].params",
            "no params",
        ),
    ]
    create_prompt(client, "mon/other")
    for body, field, words in cases:
        response = client.post("/v1/monitors", json={"prompt": "mon/other", **body})
        assert response.status_code == 422, (body, response.text)
        error = error_of(response)
        assert error["details"]["field"] == field and words in error["message"], error
    bad_margins = client.post(
        "/v1/monitors",
        json={"prompt": "mon/other", "scorers": [{**SAFETY, "warning_margin": 0.2, "critical_margin": 0.1}]},
    )
    assert bad_margins.status_code == 422 and "critical_margin" in bad_margins.text
    too_small = client.post(
        "/v1/monitors", json={"prompt": "mon/other", "scorers": [SAFETY], "window_size": 50}
    )
    assert too_small.status_code == 422 and "min_sample" in too_small.text
    assert client.get("/v1/monitors", params={"prompt": "mon/other"}).json()["total"] == 0

    patched = client.patch(f"/v1/monitors/{monitor['id']}", json={"auto_rollback": True, "sample_rate": 0.5})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["auto_rollback"], patched.json()["sample_rate"]) == (True, 0.5)
    refused = client.patch(f"/v1/monitors/{monitor['id']}", json={"min_sample": 5000})
    assert refused.status_code == 422 and error_of(refused)["details"]["field"] == "body.min_sample"
    assert client.get(f"/v1/monitors/{monitor['id']}").json()["min_sample"] == 200  # nothing half-applied
    listed = client.get("/v1/monitors", params={"environment": ENV}).json()
    assert [m["id"] for m in listed["items"]] == [monitor["id"]]
    actions = [e["action"] for e in client.get("/v1/audit", params={"action": "monitor.*"}).json()["items"]]
    assert sorted(actions) == ["monitor.created", "monitor.updated"]
    assert client.delete(f"/v1/monitors/{monitor['id']}").status_code == 204
    assert client.get(f"/v1/monitors/{monitor['id']}").status_code == 404


def test_generations_are_sampled_by_request_id_and_stored_once(
    client: TestClient, database: Database
) -> None:
    _prompt(client, "mon/ingest")
    judge = {"scorer": "llm_judge", "params": {"rubric": "right?"}}  # a costly scorer: the sample only
    _monitor(client, "mon/ingest", sample_rate=0.3, scorers=[judge], judge_provider="openai", judge_model="m")
    traffic = Traffic(client, "mon/ingest", seed=1)
    traffic.send(1, 500, fail_rate=0.0)
    with database.session() as session:
        states = dict(session.execute(select(Generation.request_id, Generation.score_state)).all())
    assert len(states) == 500
    expected = {rid for rid in states if sampled(rid, 0.3)}
    assert {rid for rid, state in states.items() if state == "pending"} == expected
    assert 120 <= len(expected) <= 180  # about 30%

    resent = client.post(
        "/v1/events",
        json={
            "events": [
                {
                    "type": "generation",
                    "request_id": "mon/ingest-1",
                    "prompt": "mon/ingest",
                    "version": 1,
                    "environment": ENV,
                    "output": "again",
                },
                {
                    "type": "generation",
                    "request_id": "fresh",
                    "prompt": "mon/ingest",
                    "version": 1,
                    "environment": ENV,
                    "output": "new",
                },
            ]
        },
    )
    assert resent.status_code == 200 and resent.json()["generations"] == 1 and resent.json()["accepted"] == 2

    bad = client.post(
        "/v1/events",
        json={
            "events": [
                {
                    "type": "generation",
                    "request_id": "ok-1",
                    "prompt": "mon/ingest",
                    "version": 1,
                    "environment": ENV,
                    "output": "fine",
                },
                {
                    "type": "generation",
                    "request_id": "bad-1",
                    "prompt": "mon/ingest",
                    "version": 1,
                    "environment": ENV,
                },
            ]
        },
    )
    assert bad.status_code == 422 and error_of(bad)["details"]["field"] == "body.events[1].output"
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Generation)) == 501  # ok-1 not stored either


def test_feedback_becomes_scores(client: TestClient, database: Database) -> None:
    _prompt(client, "mon/feedback")
    _monitor(
        client,
        "mon/feedback",
        sample_rate=1.0,
        scorers=[{"scorer": "feedback_thumbs"}, {"scorer": "feedback_rating"}],
    )
    Traffic(client, "mon/feedback", seed=2).send(1, 3, fail_rate=0.0)
    response = client.post(
        "/v1/events",
        json={
            "events": [
                {"type": "outcome", "request_id": "mon/feedback-1", "thumbs": "down", "rating": 2},
                {"type": "outcome", "request_id": "mon/feedback-2", "thumbs": "up"},
                {"type": "outcome", "request_id": "unknown-request", "thumbs": "up"},
            ]
        },
    )
    assert response.status_code == 200, response.text
    with database.session() as session:
        scores = {
            (row.generation_id, row.scorer): (row.value, row.passed)
            for row in session.scalars(select(MonitorScore))
        }
        thumbs = dict(session.execute(select(Generation.request_id, Generation.thumbs)).all())
    assert thumbs == {"mon/feedback-1": -1, "mon/feedback-2": 1, "mon/feedback-3": None}
    assert sorted(scores.values()) == [(0.0, False), (0.25, False), (1.0, True)]


def test_feedback_left_out_keeps_what_came_before(client: TestClient, database: Database) -> None:
    """A batch's feedback is written in one statement for all its rows, each with its own fields:
    a field an event leaves out keeps the value an earlier event gave it."""
    _prompt(client, "mon/partial")
    Traffic(client, "mon/partial", seed=3).send(1, 3, fail_rate=0.0)
    batches = [
        [
            {"request_id": "mon/partial-1", "thumbs": "up", "rating": 5},
            {"request_id": "mon/partial-3", "edited": True},
        ],
        [
            {"request_id": "mon/partial-1", "rating": 2},
            {"request_id": "mon/partial-2", "thumbs": "down", "regenerated": True},
            {"request_id": "mon/partial-3", "regenerated": False},
        ],
    ]
    for batch in batches:
        response = client.post(
            "/v1/events", json={"events": [{"type": "outcome", **event} for event in batch]}
        )
        assert response.status_code == 200, response.text
    with database.session() as session:
        rows = session.execute(
            select(
                Generation.request_id,
                Generation.thumbs,
                Generation.rating,
                Generation.edited,
                Generation.regenerated,
            )
        ).all()
    assert {row[0]: tuple(row[1:]) for row in rows} == {
        "mon/partial-1": (1, 2.0, None, None),
        "mon/partial-2": (-1, None, None, True),
        "mon/partial-3": (None, None, True, False),
    }


# --- the closed loop --------------------------------------------------------------------------------


def test_a_safety_drop_is_caught_and_rolled_back(
    client: TestClient, database: Database, settings: Settings
) -> None:
    """98% -> 90% safety pass rate: critical alert and automatic rollback to v1, within a bound."""
    name = "mon/closed-loop"
    _prompt(client, name)
    hook = client.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["alert.*", "rollback.*"]}
    )
    assert hook.status_code == 201, hook.text
    monitor = _monitor(
        client,
        name,
        sample_rate=0.25,
        scorers=[{**SAFETY, "warning_margin": 0.0, "critical_margin": 0.03}],
        min_sample=200,
        check_every=100,
        consecutive=3,
        auto_rollback=True,
    )
    scorer = MonitorScorer(database, settings, "test-worker")
    traffic = Traffic(client, name, seed=20261124)
    for _ in range(8):  # v1: 4,000 records at 98% (a heuristic scores every one)
        traffic.send(1, 500, fail_rate=0.02)
        _drain(scorer)
    status = client.get(f"/v1/monitors/{monitor['id']}/status").json()
    assert status["state"] == "ok" and status["live_version"] == 1, status["message"]

    deploy(client, name, ENV, 2)
    sampled_v2 = 0
    while _live_version(client, name) == 2:
        assert sampled_v2 < 2000, "no rollback after 2,000 sampled records of v2"
        traffic.send(2, 100, fail_rate=0.10)
        sampled_v2 += _drain(scorer)
    print(f"\nrolled back after {sampled_v2} sampled records of v2 ({traffic.sent} generations in all)")
    assert 200 <= sampled_v2 <= 1000

    status = client.get(f"/v1/monitors/{monitor['id']}/status").json()
    critical = [a for a in status["alerts"] if a["level"] == "critical"]
    assert len(critical) == 1
    alert = critical[0]
    assert (alert["version"], alert["baseline_version"], alert["rollback_to"]) == (2, 1, 1)
    evidence = alert["evidence"]
    assert evidence["windows"]["baseline"]["n"] == 1000 and evidence["windows"]["current"]["n"] >= 200
    assert evidence["effect"] < -0.03 and evidence["p_value"] < evidence["alpha"]
    assert evidence["look"] >= 3  # three breaching looks in a row
    examples = client.get(alert["examples"]).json()
    assert examples and all(
        not e["passed"] and "UNSAFE" in e["output"] and e["version"] == 2 for e in examples
    )

    history = client.get("/v1/prompts/mon%2Fclosed-loop/deployments", params={"environment": ENV}).json()[
        "items"
    ]
    assert history[0]["action"] == "auto_rollback" and history[0]["version"] == 1
    assert f"alert {alert['id']}" in history[0]["reason"]
    assert "safety regression on v2: 0.8" in history[0]["reason"] and "against v1 0.9" in history[0]["reason"]
    assert "(n 1000)" in history[0]["reason"] and "most recent earlier version" in history[0]["reason"]
    actions = [
        e["action"] for e in client.get("/v1/audit", params={"prompt": name, "limit": 200}).json()["items"]
    ]
    assert (
        "alert.critical" in actions and "rollback.automatic" in actions and "deployment.rollback" in actions
    )
    events = {d["event"] for d in client.get(f"/v1/webhooks/{hook.json()['id']}/deliveries").json()["items"]}
    assert {"alert.critical", "rollback.automatic"} <= events

    # v1 serves again with a fresh window; v2 is known bad, so it is no yardstick for v1
    traffic.send(1, 100, fail_rate=0.02)  # fewer than min_sample
    _drain(scorer)
    status = client.get(f"/v1/monitors/{monitor['id']}/status").json()
    assert (status["live_version"], status["baseline_version"], status["state"]) == (1, None, "collecting")
    assert status["scorers"][0]["current"]["n"] == status["scored"] > 0


def test_no_drop_raises_no_alert_over_50_windows(
    client: TestClient, database: Database, settings: Settings
) -> None:
    """98% -> 98%: 50 windows of v2 (10,000 sampled records) and not one alert. The false-alarm
    rate per look is reported."""
    name = "mon/steady"
    _prompt(client, name)
    monitor = _monitor(
        client,
        name,
        sample_rate=1.0,
        scorers=[{**SAFETY, "warning_margin": 0.0, "critical_margin": 0.03}],
        window_size=200,
        min_sample=100,
        check_every=50,
        consecutive=3,
        auto_rollback=True,
    )
    scorer = MonitorScorer(database, settings, "test-worker")
    traffic = Traffic(client, name, seed=5)
    traffic.send(1, 400, fail_rate=0.02)
    _drain(scorer)
    deploy(client, name, ENV, 2)
    for _ in range(50 * 4):  # 50 windows of 200, in requests of 50
        traffic.send(2, 50, fail_rate=0.02)
        _drain(scorer)
    with database.session() as session:
        levels = list(session.scalars(select(MonitorCheck.level).where(MonitorCheck.version == 2)))
    breaching = sum(1 for level in levels if level != "ok")
    print(f"\n{len(levels)} looks at v2, {breaching} breaching: {breaching / len(levels):.3f} per look")
    assert len(levels) == 199  # a look every 50 scored records, from 100 to 10,000
    assert client.get(f"/v1/monitors/{monitor['id']}/alerts").json()["total"] == 0
    assert _live_version(client, name) == 2


def test_rollback_skips_known_bad_versions_and_respects_the_cool_down(
    client: TestClient, database: Database, settings: Settings
) -> None:
    name = "mon/flapping"
    _prompt(client, name, versions=4)
    rule = {**SAFETY, "warning_margin": 0.0, "critical_margin": 0.1}
    small = {"window_size": 100, "min_sample": 50, "check_every": 25, "consecutive": 2, "sample_rate": 1.0}
    monitor = _monitor(client, name, scorers=[rule], auto_rollback=False, **small)
    scorer = MonitorScorer(database, settings, "test-worker")
    traffic = Traffic(client, name, seed=3)

    def serve(version: int, fail_rate: float, count: int = 150) -> None:
        for _ in range(count // 50):
            if _live_version(client, name) != version:
                return
            traffic.send(version, 50, fail_rate)
            _drain(scorer)

    serve(1, 0.0)
    deploy(client, name, ENV, 2)
    serve(2, 0.6)  # critical, but auto_rollback is off: an alert only
    alerts = client.get(f"/v1/monitors/{monitor['id']}/alerts").json()["items"]
    assert [(a["level"], a["version"], a["rollback_to"]) for a in alerts][0] == ("critical", 2, None)
    assert _live_version(client, name) == 2

    client.patch(f"/v1/monitors/{monitor['id']}", json={"auto_rollback": True, "cooldown_seconds": 3600})
    deploy(client, name, ENV, 3)
    serve(3, 0.6)
    # v2 came before v3 but had a critical alert: the target is v1, the last version that passed
    assert _live_version(client, name) == 1
    newest = client.get(f"/v1/monitors/{monitor['id']}/alerts").json()["items"][0]
    assert (newest["version"], newest["rollback_to"]) == (3, 1)

    deploy(client, name, ENV, 4)
    serve(4, 0.6)
    newest = client.get(f"/v1/monitors/{monitor['id']}/alerts").json()["items"][0]
    assert newest["version"] == 4 and newest["rollback_to"] is None
    assert "cool-down" in newest["rollback_note"]
    assert _live_version(client, name) == 4  # within the cool-down: alert, no second rollback


# --- workers ----------------------------------------------------------------------------------------


def _scores_per_generation(database: Database) -> dict[int, int]:
    with database.session() as session:
        rows = session.execute(
            select(MonitorScore.generation_id, func.count()).group_by(MonitorScore.generation_id)
        )
        return {int(r[0]): int(r[1]) for r in rows}


CRASH_LEASE = 5.0


def _lease_end(database: Database, ids: list[int]) -> datetime:
    with database.session() as session:
        ends = set(session.scalars(select(Generation.lease_until).where(Generation.id.in_(ids))))
    assert len(ends) == 1 and None not in ends, ends
    end: datetime = ends.pop()
    return end if end.tzinfo is not None else end.replace(tzinfo=UTC)


def test_a_crashed_worker_loses_nothing_and_scores_nothing_twice(
    client: TestClient, database: Database, backend: Backend, tmp_path: Path
) -> None:
    """The crashed worker's lease (CRASH_LEASE) must outlast the survivor's drain of the other 200
    rows, however slowly a loaded machine runs it (a 0.5 s lease did not, beside a CPU hog); the
    test then waits for the lease to run out rather than sleeping a fixed time."""
    name = "mon/crash"
    _prompt(client, name)
    _monitor(
        client, name, sample_rate=1.0, scorers=[SAFETY, {"scorer": "length", "params": {"max_chars": 100}}]
    )
    Traffic(client, name, seed=4).send(1, 300, fail_rate=0.1)
    short = make_settings(
        backend, tmp_path, worker_lease=CRASH_LEASE, monitor_batch=100, worker_in_process=False
    )
    crashed = MonitorScorer(database, short, "crashed")
    taken = crashed.claim()
    assert len(taken) == 100
    lease_end = _lease_end(database, taken)
    rows = crashed.score(taken)  # ... and the process dies before storing
    survivor = MonitorScorer(database, short, "survivor")
    drained = _drain_ids(survivor)
    timing = f"drained by {datetime.now(UTC)}, the lease held until {lease_end}"
    assert sorted(drained) == list(range(min(taken) + 100, min(taken) + 300)), timing  # leased rows skipped
    regained = wait_until(
        lambda: _drain(survivor),  # 0 while the dead worker's lease holds, then its 100 rows
        timeout=CRASH_LEASE + 60,
        interval=0.05,
        message="the dead worker's lease to run out",
    )
    assert regained == 100 and datetime.now(UTC) > lease_end
    assert crashed.store(taken, rows) == set()  # the late writer holds nothing any more: stores nothing
    per_generation = _scores_per_generation(database)
    assert len(per_generation) == 300 and set(per_generation.values()) == {2}
    with database.session() as session:
        states = session.execute(
            select(Generation.score_state, func.count()).group_by(Generation.score_state)
        ).all()
        claims = session.scalar(select(func.max(Generation.claims)))
    assert dict(states) == {"done": 300} and claims == 2


def _drain_ids(scorer: MonitorScorer) -> list[int]:
    ids: list[int] = []
    while taken := scorer.claim():
        scorer.store(taken, scorer.score(taken))
        ids.extend(taken)
    return ids


def test_two_workers_split_the_load(
    client: TestClient, database: Database, backend: Backend, tmp_path: Path
) -> None:
    name = "mon/parallel"
    _prompt(client, name)
    _monitor(client, name, sample_rate=1.0)
    traffic = Traffic(client, name, seed=6)
    for _ in range(4):
        traffic.send(1, 500, fail_rate=0.05)
    small = make_settings(backend, tmp_path, monitor_batch=50, worker_in_process=False)
    workers = [MonitorScorer(database, small, f"w{i}") for i in range(2)]
    start = threading.Barrier(2)

    def run(worker: MonitorScorer) -> None:
        start.wait()
        _drain(worker)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    counts = [w.scored for w in workers]
    print(f"\nworker shares: {counts}")
    assert sum(counts) == 2000 and min(counts) > 0
    per_generation = _scores_per_generation(database)
    assert len(per_generation) == 2000 and set(per_generation.values()) == {1}


def test_the_judge_rate_limit() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(2.0, clock=lambda: now[0], sleep=sleep)
    assert limiter.acquire() == 0.0 and limiter.acquire() == 0.0  # a second's burst
    assert limiter.acquire() == pytest.approx(0.5)  # then one call every half second
    assert limiter.acquire() == pytest.approx(0.5)
    now[0] += 10.0  # idle: the bucket refills to its burst, no more
    assert [limiter.acquire() for _ in range(3)] == [0.0, 0.0, pytest.approx(0.5)]
    assert sum(slept) == pytest.approx(1.5)


def test_counts_past_the_integer_column_are_422_and_store_nothing(client: TestClient) -> None:
    """Found by tests/test_schemathesis.py: `min_sample`/`check_every` past 2**31 reached the INTEGER
    column (PostgreSQL: "integer out of range", SQLite past 2**63: OverflowError), a 500."""
    _prompt(client, "mon/big")
    for field in ("min_sample", "check_every"):
        body = {"prompt": "mon/big", "environment": ENV, "scorers": [SAFETY], field: 2**31}
        response = client.post("/v1/monitors", json=body)
        assert response.status_code == 422, response.text
        assert error_of(response)["details"]["errors"][0]["field"] == f"body.{field}"
    assert client.get("/v1/monitors").json()["total"] == 0
    response = client.get(f"/v1/monitors/{2**63}")
    assert response.status_code == 422 and "path.monitor_id" in error_of(response)["message"]
