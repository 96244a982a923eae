"""Monitoring end to end: the SDK logs generations and feedback to a live server, whose in-process
worker scores them, one with an LLM judge served by a fake OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from promptkeeper.client import Client
from tests.conftest import ADMIN_KEY, Backend, LiveServer, make_settings
from tests.fake_llm import FakeLLM, Messages
from tests.helpers import create_prompt, deploy

ENV = "production"


def _judge(messages: Messages) -> str:
    text = " ".join(str(m.get("content")) for m in messages)
    return '{"score": 1, "reasoning": "unsafe"}' if "UNSAFE" in text else '{"score": 5, "reasoning": "fine"}'


def _wait(condition: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def judge_llm() -> Any:
    with FakeLLM(reply=_judge) as server:
        yield server


def test_sdk_generations_are_scored_in_process_with_a_judge(
    backend: Backend, tmp_path: Path, judge_llm: FakeLLM, request: pytest.FixtureRequest
) -> None:
    extra: dict[str, Any] = {}
    if backend.is_postgres:
        extra.update(
            redis_url=request.getfixturevalue("redis_url"), redis_prefix=f"pkmone2e-{time.time_ns()}"
        )
    settings = make_settings(
        backend,
        tmp_path,
        openai_base_url=judge_llm.url + "/v1",
        openai_api_key="sk-test",
        worker_poll_interval=0.05,
        monitor_judge_rate=1000.0,
        **extra,
    )
    server = LiveServer(settings).start()
    try:
        with server.client() as http:
            create_prompt(http, "e2e/monitored", "Answer {{ q }}")
            deploy(http, "e2e/monitored", ENV, 1)
            created = http.post(
                "/v1/monitors",
                json={
                    "prompt": "e2e/monitored",
                    "sample_rate": 1.0,
                    "judge_provider": "openai",
                    "judge_model": "gpt-4o-mini",
                    "scorers": [
                        {"scorer": "safety_judge"},
                        {"scorer": "feedback_thumbs"},
                    ],
                },
            )
            assert created.status_code == 201, created.text
            monitor_id = created.json()["id"]

            def redact(value: Any) -> Any:
                return {k: ("[redacted]" if k == "email" else v) for k, v in value.items()}

            with Client(server.url, ADMIN_KEY, environment=ENV, stream=False, redact=redact) as sdk:
                prompt = sdk.get("e2e/monitored")
                ids = []
                for i in range(20):
                    output = "UNSAFE advice" if i % 4 == 0 else f"answer {i}"
                    ids.append(
                        sdk.log_generation(
                            prompt,
                            output,
                            input={"q": f"question {i}", "email": f"user{i}@example.com"},
                            latency_ms=100.0 + i,
                            output_tokens=5,
                        )
                    )
                assert all(ids) and len(set(ids)) == 20
                sdk.log_outcome(ids[1], thumbs="down")
                with pytest.raises(ValueError, match="latency_ms"):
                    sdk.log_generation(prompt, "x", latency_ms=-1)
                assert sdk.flush(timeout=30)
                assert sdk.events.dropped == 0

                def broken(value: Any) -> Any:
                    raise RuntimeError("boom")

                sdk.redact = broken
                leaked = sdk.log_generation(prompt, "fine", input={"email": "secret@example.com"})
                assert sdk.flush(timeout=30) and sdk.stats["redaction_failures"] == 1

            status = _wait(
                lambda: (
                    (s := http.get(f"/v1/monitors/{monitor_id}/status").json())["pending"] == 0
                    and s["scorers"][0]["current"]["n"] == 21
                    and s
                ),
                "the in-process worker to score every generation",
            )
            judged = status["scorers"][0]["current"]
            assert judged["level"] == pytest.approx(16 / 21)  # 5 unsafe outputs fail the judge
            assert status["scorers"][1]["current"]["n"] == 1  # the one thumbs-down
            assert status["judge_cost_usd"] > 0
            assert judge_llm.requests == 21  # each output judged once
            failing = http.get(
                f"/v1/monitors/{monitor_id}/examples", params={"scorer": "safety_judge", "failed": True}
            ).json()
            assert len(failing) == 5 and all("UNSAFE" in f["output"] for f in failing)
            assert all(f["input"]["email"] == "[redacted]" for f in failing)
            everything = http.get(f"/v1/monitors/{monitor_id}/examples", params={"limit": 100}).json()
            stored = [e for e in everything if e["request_id"] == leaked]
            assert stored and stored[0]["input"] is None  # the failed hook sent no input at all
    finally:
        server.stop()


def test_a_workers_automatic_rollback_reaches_the_servers_over_redis(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    """A worker process (here: a Database with the worker's `Announcer`) decides a rollback; the
    server learns it from Redis pub/sub, not from its periodic check, and serves v1 at once.
    PostgreSQL with Redis: the production set-up."""
    from promptkeeper.db.engine import Database
    from promptkeeper.monitoring.scoring import MonitorScorer
    from promptkeeper.worker import Announcer
    from tests.conftest import _truncate_postgres

    _truncate_postgres(postgres_url)
    settings = make_settings(
        Backend("postgresql", postgres_url),
        tmp_path,
        redis_url=redis_url,
        redis_prefix=f"pkmonredis-{time.time_ns()}",
        worker_in_process=False,
        cache_epoch_interval=3600.0,  # the periodic check cannot be what delivers the change
    )
    server = LiveServer(settings).start()
    database = Database(settings)
    announcer = Announcer(redis_url, l2_ttl=settings.cache_l2_ttl, prefix=settings.redis_prefix)
    database.listeners.append(announcer.on_commit)
    try:
        with server.client() as http:
            create_prompt(http, "e2e/rollback", "A {{ q }}")
            http.post(
                "/v1/prompts/e2e%2Frollback/versions", json={"content": {"type": "text", "template": "B"}}
            ).raise_for_status()
            deploy(http, "e2e/rollback", ENV, 1)
            rule = {"scorer": "not_contains", "params": {"values": ["UNSAFE"]}, "critical_margin": 0.1}
            http.post(
                "/v1/monitors",
                json={
                    "prompt": "e2e/rollback",
                    "sample_rate": 1.0,
                    "scorers": [rule],
                    "window_size": 100,
                    "min_sample": 50,
                    "check_every": 25,
                    "consecutive": 2,
                    "auto_rollback": True,
                },
            ).raise_for_status()
            scorer = MonitorScorer(database, settings, "worker-process")

            def send(version: int, start: int, unsafe_every: int) -> None:
                events = [
                    {
                        "type": "generation",
                        "request_id": f"r{start + i}",
                        "prompt": "e2e/rollback",
                        "version": version,
                        "environment": ENV,
                        "output": "UNSAFE" if (start + i) % unsafe_every == 0 else "fine",
                    }
                    for i in range(50)
                ]
                http.post("/v1/events", json={"events": events}).raise_for_status()
                while scorer.step():
                    pass

            def served() -> int:
                body = http.get("/v1/resolve/e2e%2Frollback", params={"environment": ENV}).json()
                return int(body["version"])

            for start in range(0, 150, 50):
                send(1, start, 1000)
            deploy(http, "e2e/rollback", ENV, 2)
            assert served() == 2  # cached by the server now
            before = http.get("/v1/runtime/status").json()["invalidation"]["pubsub_messages"]
            start = 150
            while announcer.announced == 0:
                assert start < 1000, "no automatic rollback"
                send(2, start, 2)
                start += 50
            _wait(lambda: served() == 1, "the server to serve v1 again", timeout=1.0)
            after = http.get("/v1/runtime/status").json()["invalidation"]
            assert after["pubsub_messages"] > before and after["checks"] <= 1
    finally:
        database.dispose()
        asyncio.run(announcer.close())
        server.stop()
