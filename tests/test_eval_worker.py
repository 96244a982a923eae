"""`promptkeeper worker` processes: a worker killed mid-run is replaced; nothing is lost or doubled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from promptkeeper.app import create_app
from promptkeeper.db.engine import Database
from promptkeeper.evaluations.models import EvalResult, EvalRun
from tests.conftest import ADMIN_KEY, Backend, make_settings
from tests.helpers import create_prompt

pytestmark = pytest.mark.slow

CASES = 24


def _start_worker(database_url: str, tmp_path: Path, name: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTKEEPER_")}
    env.update(
        {
            "PROMPTKEEPER_DATABASE_URL": database_url,
            "PROMPTKEEPER_WORKER_LEASE": "1.5",
            "PROMPTKEEPER_WORKER_POLL_INTERVAL": "0.1",
            "PROMPTKEEPER_LOG_LEVEL": "warning",
        }
    )
    with open(tmp_path / f"{name}.log", "w") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "promptkeeper.cli", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )


def _counts(database: Database, run_id: int) -> tuple[str, int, int, int]:
    with database.session() as session:
        run = session.get(EvalRun, run_id)
        assert run is not None
        results = session.scalar(
            select(func.count()).select_from(EvalResult).where(EvalResult.run_id == run_id)
        )
        return run.status, run.done, int(results or 0), run.claims


def test_killed_worker_is_replaced_without_loss_or_doubles(backend: Backend, tmp_path: Path) -> None:
    settings = make_settings(backend, tmp_path, worker_in_process=False)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        create_prompt(client, "slow", "Echo {{ n }}")
        cases = [{"key": f"c{i}", "variables": {"n": i}, "expected": f"Echo {i}"} for i in range(CASES)]
        suite = client.post(
            "/v1/suites", json={"name": "s", "scorers": [{"name": "exact_match"}], "cases": cases}
        )
        assert suite.status_code == 201, suite.text
        queued = client.post(
            "/v1/prompts/slow/evaluations",
            json={"suite": "s", "concurrency": 2, "params": {"local_latency_ms": 150}},
        )
        assert queued.status_code == 202
        run_id = queued.json()["id"]
    database = Database(settings)
    first = _start_worker(settings.database_url, tmp_path, "first")
    second: subprocess.Popen[str] | None = None
    try:
        deadline = time.monotonic() + 60
        while _counts(database, run_id)[2] < 6:
            assert time.monotonic() < deadline and first.poll() is None, (tmp_path / "first.log").read_text()
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)  # mid-run: no chance to release anything
        first.wait(timeout=10)
        status, _, stored, _ = _counts(database, run_id)
        assert status == "running" and 6 <= stored < CASES
        second = _start_worker(settings.database_url, tmp_path, "second")
        while _counts(database, run_id)[0] != "succeeded":
            assert time.monotonic() < deadline and second.poll() is None, (
                tmp_path / "second.log"
            ).read_text()
            time.sleep(0.1)
        status, done, stored, claims = _counts(database, run_id)
        assert (status, done, stored, claims) == ("succeeded", CASES, CASES, 2)
        with database.session() as session:
            keys = [
                row[0]
                for row in session.execute(select(EvalResult.case_key).where(EvalResult.run_id == run_id))
            ]
            run = session.get(EvalRun, run_id)
            assert run is not None and run.summary["scorers"]["exact_match"]["mean"] == 1.0
        assert sorted(keys) == sorted(f"c{i}" for i in range(CASES))  # each case once
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=15)
        database.dispose()
