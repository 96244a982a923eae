"""Row locks on generations: feedback against a scoring worker's lease renewal or score store.

PostgreSQL only: SQLite has no row locks (a write session takes the database's write lock up front,
`BEGIN IMMEDIATE`), so two writers wait for each other's commit and cannot deadlock.

The interleaving is forced, not hoped for: the feedback transaction stops right after its first
statement that locks a generation row, the worker's statement starts and the test waits until
PostgreSQL shows it waiting on the feedback (`pg_blocking_pids`); only then does the feedback go
on. Locked in opposite orders (the code before the fix: feedback in request-id order, the worker in
its plan's order), the feedback's next row waits on the worker and PostgreSQL aborts one of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.engine import Engine

from promptkeeper.app import create_app
from promptkeeper.config import Settings
from promptkeeper.db.engine import Database
from promptkeeper.experiments.ingestion import ingest
from promptkeeper.experiments.schemas import EventIn
from promptkeeper.monitoring.models import Generation, MonitorScore
from promptkeeper.monitoring.scoring import MonitorScorer
from tests.conftest import ADMIN_KEY, Backend, make_settings
from tests.helpers import create_prompt, deploy
from tests.processes import wait_until

NAME, ENV = "mon/locks", "production"
# Ids follow the order sent; the request ids run the other way, so locking in request-id order
# (the unique index's order) is the reverse of id order.
REQUESTS = ("lock-d", "lock-c", "lock-b", "lock-a")
WAIT = 60.0  # seconds; generous for a loaded machine: the test waits on states, never on time


@pytest.fixture
def settings(backend: Backend, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    return make_settings(
        backend,
        tmp_path,
        worker_in_process=False,
        worker_lease=60.0,
        redis_url=request.getfixturevalue("redis_url"),
        redis_prefix=f"pklocks-{time.time_ns()}",
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as test_client:
        yield test_client


@pytest.fixture
def observer(backend: Backend) -> Iterator[Engine]:
    engine = create_engine(backend.url)
    yield engine
    engine.dispose()


def _holds_generations(observer: Engine, pid: int) -> bool:
    """Whether the transaction of backend `pid` has locked or updated a generation row (the row's
    xmax is its transaction id): whatever statement did it, in whatever order."""
    query = text(
        "SELECT count(*) FROM generations g JOIN pg_stat_activity a ON a.pid = :pid"
        " WHERE a.backend_xid IS NOT NULL AND g.xmax = a.backend_xid"
    )
    with observer.connect() as connection:
        return bool(connection.scalar(query, {"pid": pid}))


def _blocked_by(observer: Engine, pid: int) -> bool:
    query = text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
    with observer.connect() as connection:
        return bool(connection.scalar(query, {"pid": pid}))


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize("work", ["store", "renew"])
def test_feedback_and_a_worker_on_the_same_rows_wait_instead_of_deadlocking(
    client: TestClient, settings: Settings, observer: Engine, work: str
) -> None:
    database: Database = client.app.state.context.db  # type: ignore[attr-defined]
    create_prompt(client, NAME, "Answer {{ q }}")
    deploy(client, NAME, ENV, 1)
    monitor = {
        "prompt": NAME,
        "environment": ENV,
        "sample_rate": 1.0,
        "scorers": [{"scorer": "length", "params": {"max_chars": 100}}, {"scorer": "feedback_thumbs"}],
    }
    created = client.post("/v1/monitors", json=monitor)
    assert created.status_code == 201, created.text
    generated = [
        {
            "type": "generation",
            "request_id": r,
            "prompt": NAME,
            "version": 1,
            "environment": ENV,
            "output": "ok",
        }
        for r in REQUESTS
    ]
    assert client.post("/v1/events", json={"events": generated}).status_code == 200
    scorer = MonitorScorer(database, settings, "w1")
    ids = scorer.claim()
    assert len(ids) == len(REQUESTS)
    rows = scorer.score(ids)
    calls: dict[str, Callable[[], Any]] = {
        "store": lambda: scorer.store(ids, rows),
        "renew": lambda: scorer.renew(ids),
    }
    outcome: dict[str, Any] = {}

    def worker() -> None:
        try:
            outcome[work] = calls[work]()
        except Exception as exc:  # noqa: BLE001 - the deadlock victim's error is the finding
            outcome[work] = exc

    thread = threading.Thread(target=worker, name=f"test-{work}")
    feedback = [EventIn(type="outcome", request_id=r, thumbs="down") for r in REQUESTS]
    with database.session() as session:
        project_id = session.scalar(text("SELECT id FROM projects WHERE name = 'default'"))
    with database.write_session() as session:
        connection = session.connection()
        pid = int(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())

        def after_statement(*_: Any) -> None:
            if thread.ident is not None or not _holds_generations(observer, pid):
                return
            thread.start()  # the feedback holds its first rows: the worker starts now ...
            wait_until(
                lambda: _blocked_by(observer, pid) or not thread.is_alive(),
                timeout=WAIT,
                message=f"the {work} to wait on the feedback's row locks",
            )
            assert thread.is_alive(), f"the {work} never waited on the feedback: {outcome}"
            # ... and the feedback goes on only once it waits

        event.listen(connection, "after_cursor_execute", after_statement)
        try:
            ingest(session=session, project_id=project_id, events=feedback)
            session.commit()
            outcome["feedback"] = "committed"
        except Exception as exc:  # noqa: BLE001
            outcome["feedback"] = exc
    assert thread.ident is not None, "the feedback locked no generation row"
    thread.join(timeout=WAIT)
    assert not thread.is_alive()
    expected = {"store": {created.json()["id"]}, "renew": set(ids)}[work]  # monitors scored, rows held
    assert outcome == {"feedback": "committed", work: expected}, outcome
    with database.session() as session:
        states = dict(session.execute(select(Generation.request_id, Generation.score_state)).all())
        thumbs = set(session.scalars(select(Generation.thumbs)))
        scores = set(session.scalars(select(MonitorScore.scorer)))
    assert thumbs == {-1}
    assert set(states.values()) == {"done" if work == "store" else "leased"}
    assert scores == ({"length", "feedback_thumbs"} if work == "store" else {"feedback_thumbs"})
