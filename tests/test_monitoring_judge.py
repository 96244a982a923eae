"""Monitors with an LLM judge over real HTTP: what a paid judge costs, and how fast its rules act.

The judge is `tests.fake_llm` on 127.0.0.1, answering 1 or 5. Leases are shortened by settings (a
3 s lease stands for the default 60 s one; the batch takes longer than either) instead of waiting.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from promptkeeper.monitoring.service import sampled
from tests.conftest import ADMIN_KEY, Backend, LiveServer, make_settings
from tests.fake_llm import FakeLLM, Messages
from tests.helpers import add_version, create_prompt, deploy, quote_name
from tests.processes import ServerProcess, wait_until

ENV = "production"
JUDGE = {"scorer": "llm_judge", "name": "judge", "params": {"rubric": "Is the answer right?"}}


def judge_1_or_5(messages: Messages) -> str:
    """5 for a good answer, 1 for one marked BAD: a judge with two answers only."""
    text = " ".join(str(m.get("content")) for m in messages)
    return '{"score": 1, "reasoning": "wrong"}' if "BAD" in text else '{"score": 5, "reasoning": "right"}'


def send(http: httpx.Client, name: str, version: int, ids: range, bad: Any = lambda i: False) -> None:
    events = [
        {
            "type": "generation",
            "request_id": f"{name}-{i}",
            "prompt": name,
            "version": version,
            "environment": ENV,
            "output": f"BAD answer {i}" if bad(i) else f"answer {i}",
        }
        for i in ids
    ]
    http.post("/v1/events", json={"events": events}).raise_for_status()


def status(http: httpx.Client, monitor_id: int) -> dict[str, Any]:
    response = http.get(f"/v1/monitors/{monitor_id}/status")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def judged(http: httpx.Client, monitor_id: int, version: int) -> int:
    rows = http.get(
        f"/v1/monitors/{monitor_id}/examples", params={"scorer": "judge", "version": version, "limit": 500}
    ).json()
    return len(rows)


@pytest.fixture
def slow_judge() -> Iterator[FakeLLM]:
    with FakeLLM(reply=judge_1_or_5, latency_ms=500) as server:
        yield server


@pytest.mark.timeout(400)
def test_a_slow_judge_is_called_once_per_sampled_record_and_not_after_the_monitor_is_disabled(
    backend: Backend, tmp_path: Path, slow_judge: FakeLLM, request: pytest.FixtureRequest
) -> None:
    """Two server instances with in-process workers, a judge answering after 0.5 s, a 3 s lease
    (the default batch of 200 takes far longer to judge): each sampled record is judged once,
    claimed once; disabling the monitor stops the judging at the next poll and drops its queue."""
    env = {
        "PROMPTKEEPER_DATABASE_URL": backend.url,
        "PROMPTKEEPER_ADMIN_KEY": ADMIN_KEY,
        "PROMPTKEEPER_WORKER_LEASE": "3",
        "PROMPTKEEPER_WORKER_POLL_INTERVAL": "0.2",
        "PROMPTKEEPER_OPENAI_BASE_URL": slow_judge.openai_base_url,
        "PROMPTKEEPER_OPENAI_API_KEY": "sk-test",
    }
    if backend.is_postgres:
        env["PROMPTKEEPER_REDIS_URL"] = request.getfixturevalue("redis_url")
        env["PROMPTKEEPER_REDIS_PREFIX"] = f"pkjudge-{time.time_ns()}"
    servers = [ServerProcess(env, tmp_path) for _ in range(2)]
    try:
        for server in servers:
            server.start(timeout=120)
        with httpx.Client(
            base_url=servers[0].url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
        ) as http:
            name = "judge/cost"
            create_prompt(http, name, "Answer {{ q }}")
            deploy(http, name, ENV, 1)
            created = http.post(
                "/v1/monitors",
                json={
                    "prompt": name,
                    "sample_rate": 1.0,
                    "judge_provider": "openai",
                    "judge_model": "gpt-4o-mini",
                    "scorers": [JUDGE],
                },
            )
            assert created.status_code == 201, created.text
            monitor_id = created.json()["id"]

            send(http, name, 1, range(30))
            try:
                wait_until(
                    lambda: status(http, monitor_id)["pending"] == 0 and judged(http, monitor_id, 1) == 30,
                    timeout=90,
                    interval=0.2,
                    message="30 records judged",
                )
            except AssertionError as exc:
                raise AssertionError(f"{exc}; the judge was called {slow_judge.requests} times") from None
            assert slow_judge.requests == 30  # one call per sampled record and scorer
            for server in servers:
                assert "lost the lease" not in server.log()

            send(http, name, 1, range(100, 140))  # 40 more: ~10 s of judging for two workers
            wait_until(lambda: slow_judge.requests >= 33, timeout=30, message="judging under way")
            patched = http.patch(f"/v1/monitors/{monitor_id}", json={"enabled": False})
            assert patched.status_code == 200, patched.text
            wait_until(
                lambda: status(http, monitor_id)["pending"] == 0,
                timeout=30,
                interval=0.2,
                message="the disabled monitor's queue to be dropped",
            )
            calls = slow_judge.requests
            time.sleep(2.0)  # several polls and leases: nothing else may reach the judge
            assert slow_judge.requests == calls
            stored = judged(http, monitor_id, 1)
            assert stored == calls  # every call paid for a stored score, none was repeated
            assert stored - 30 < 40  # the disabled monitor did not judge its whole queue
    finally:
        for server in servers:
            server.stop()
            print(server.log()[-4000:])  # shown when the test fails


@pytest.fixture
def live(
    backend: Backend, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[LiveServer, FakeLLM]]:
    """A server whose in-process worker scores, with an instant 1-or-5 judge and a 0.5 s look timer."""
    extra: dict[str, Any] = {}
    if backend.is_postgres:
        extra.update(redis_url=request.getfixturevalue("redis_url"), redis_prefix=f"pkjudge-{time.time_ns()}")
    with FakeLLM(reply=judge_1_or_5) as llm:
        settings = make_settings(
            backend,
            tmp_path,
            openai_base_url=llm.openai_base_url,
            openai_api_key="sk-test",
            worker_poll_interval=0.05,
            monitor_judge_rate=1000.0,
            monitor_look_interval=0.5,
            **extra,
        )
        server = LiveServer(settings).start()
        try:
            yield server, llm
        finally:
            server.stop()


def _served(http: httpx.Client, name: str) -> int:
    version: int = http.get(f"/v1/resolve/{quote_name(name)}", params={"environment": ENV}).json()["version"]
    return version


SMALL = {"window_size": 100, "min_sample": 40, "check_every": 20, "consecutive": 2, "auto_rollback": True}


@pytest.mark.timeout(300)
def test_a_judge_score_rule_measures_the_drop_of_the_mean_and_rolls_back(
    live: tuple[LiveServer, FakeLLM],
) -> None:
    """`kind: score` with a judge that answers only 1 or 5: v2's mean falls from 1.0 to 0.58. The
    effect is that difference of means (a median shift of 0/1 scores reads 0), the drop is
    beyond the critical margin, so it is critical and rolls back."""
    server, _ = live
    name = "judge/score"
    with server.client(timeout=30) as http:
        create_prompt(http, name, "Answer {{ q }}")
        add_version(http, name, "Answer better {{ q }}")
        deploy(http, name, ENV, 1)
        rule = {**JUDGE, "kind": "score", "warning_margin": 0.0, "critical_margin": 0.1}
        body = {"prompt": name, "sample_rate": 1.0, "judge_provider": "openai", "judge_model": "m"}
        created = http.post("/v1/monitors", json={**body, "scorers": [rule], **SMALL})
        assert created.status_code == 201, created.text
        monitor_id = created.json()["id"]
        send(http, name, 1, range(100))
        wait_until(lambda: status(http, monitor_id)["state"] == "ok", timeout=60, message="v1 judged ok")

        deploy(http, name, ENV, 2)
        start = 1000
        while _served(http, name) == 2:
            assert start < 1400, f"no rollback after {start - 1000} records of v2: {status(http, monitor_id)}"
            send(http, name, 2, range(start, start + 20), bad=lambda i: i % 50 < 21)  # 42% answered 1
            start += 20
            wait_until(lambda: status(http, monitor_id)["pending"] == 0, timeout=30, message="scored")
        alerts = http.get(f"/v1/monitors/{monitor_id}/alerts").json()["items"]
        critical = [a for a in alerts if a["level"] == "critical"]
        assert len(critical) == 1 and critical[0]["rollback_to"] == 1, alerts
        evidence = critical[0]["evidence"]
        assert evidence["baseline"] == pytest.approx(1.0)
        assert evidence["effect"] == pytest.approx(evidence["current"] - 1.0)
        assert evidence["effect"] == pytest.approx(-0.42, abs=0.1)
        assert evidence["confidence_bound"] < -0.1  # the whole one-sided interval lies past the margin


@pytest.mark.timeout(300)
def test_feedback_after_traffic_paused_is_looked_at_and_a_critical_rule_acts(
    live: tuple[LiveServer, FakeLLM],
) -> None:
    """v2's generations are scored, then traffic stops and the thumbs arrive (no scoring at all):
    the feedback rule is looked at on its own evidence and on the timer until the breach is
    confirmed (`consecutive` looks), alerts and rolls back; every critical rule has its alert."""
    server, _ = live
    name = "judge/feedback"
    with server.client(timeout=30) as http:
        create_prompt(http, name, "Answer {{ q }}")
        add_version(http, name, "Answer better {{ q }}")
        deploy(http, name, ENV, 1)
        scorers = [
            {"scorer": "length", "params": {"max_chars": 1000}},
            {"scorer": "feedback_thumbs", "critical_margin": 0.1},
        ]
        created = http.post(
            "/v1/monitors", json={"prompt": name, "sample_rate": 1.0, "scorers": scorers, **SMALL}
        )
        assert created.status_code == 201, created.text
        monitor_id = created.json()["id"]

        def thumbs(ids: range, down: Any) -> None:
            events = [
                {"type": "outcome", "request_id": f"{name}-{i}", "thumbs": "down" if down(i) else "up"}
                for i in ids
            ]
            http.post("/v1/events", json={"events": events}).raise_for_status()

        send(http, name, 1, range(100))
        thumbs(range(100), lambda i: False)
        wait_until(lambda: status(http, monitor_id)["state"] == "ok", timeout=60, message="v1 ok")

        deploy(http, name, ENV, 2)
        send(http, name, 2, range(1000, 1060))
        wait_until(
            lambda: status(http, monitor_id)["scorers"][0]["current"]["n"] == 60, timeout=30, message="scored"
        )
        thumbs(range(1000, 1060), lambda i: i % 3 != 0)  # two thirds thumbs down, nothing to score
        wait_until(lambda: _served(http, name) == 1, timeout=60, message="the rollback")
        alerts = http.get(f"/v1/monitors/{monitor_id}/alerts").json()["items"]
        assert [(a["scorer"], a["level"], a["rollback_to"]) for a in alerts] == [
            ("feedback_thumbs", "critical", 1)
        ]
        assert alerts[0]["evidence"]["windows"]["current"]["n"] == 60  # every generation's feedback
        checks = status(http, monitor_id)["checks"]
        for check in checks:
            for finding in check["findings"]:
                if finding["acting"] == "critical":
                    assert any(a["scorer"] == finding["scorer"] for a in alerts)


@pytest.mark.timeout(300)
def test_sampling_thins_only_the_judge(live: tuple[LiveServer, FakeLLM]) -> None:
    """With 20% sampled, the judge scores (and is called for) the sample; the heuristic and the
    feedback count on every generation."""
    server, llm = live
    name = "judge/sampling"
    with server.client(timeout=30) as http:
        create_prompt(http, name, "Answer {{ q }}")
        deploy(http, name, ENV, 1)
        scorers = [JUDGE, {"scorer": "length", "params": {"max_chars": 1000}}, {"scorer": "feedback_thumbs"}]
        body = {"prompt": name, "sample_rate": 0.2, "judge_provider": "openai", "judge_model": "m"}
        created = http.post("/v1/monitors", json={**body, "scorers": scorers})
        assert created.status_code == 201, created.text
        monitor_id = created.json()["id"]
        send(http, name, 1, range(300))
        events = [{"type": "outcome", "request_id": f"{name}-{i}", "thumbs": "up"} for i in range(300)]
        http.post("/v1/events", json={"events": events}).raise_for_status()
        expected = sum(1 for i in range(300) if sampled(f"{name}-{i}", 0.2))
        assert 30 < expected < 90
        counts = wait_until(
            lambda: (
                (s := status(http, monitor_id))["pending"] == 0
                and s["scorers"][1]["current"]["n"] > 0
                and [r["current"]["n"] for r in s["scorers"]]
            ),
            timeout=60,
            message="everything scored",
        )
        assert counts == [expected, 300, 300]
        assert llm.requests == expected
