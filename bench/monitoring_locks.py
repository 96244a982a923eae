"""Monitoring writes that lock generation rows: a feedback batch, a lease renewal, a score store.

In one process against a fresh database: `--records` generations with a monitor (a heuristic and a
feedback scorer), then, each `--repeat` times, median and best in milliseconds:
- feedback: `apply_feedback` of `--feedback` outcome events (thumbs and a rating on half of them)
  in its own transaction, commit included;
- renew: `MonitorScorer.renew` of a claimed batch of `--batch` rows;
- store: `MonitorScorer.store` of a freshly claimed and scored batch of `--batch` rows.

Usage: .venv/bin/python bench/monitoring_locks.py [--backend postgresql|sqlite] [--feedback 1000]
       [--batch 500] [--repeat 15]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bench._harness import ADMIN_KEY, database  # noqa: E402
from promptkeeper.app import create_app  # noqa: E402
from promptkeeper.config import Settings  # noqa: E402
from promptkeeper.db.engine import Database  # noqa: E402
from promptkeeper.experiments.schemas import EventIn  # noqa: E402
from promptkeeper.monitoring.generations import apply_feedback  # noqa: E402
from promptkeeper.monitoring.scoring import MonitorScorer  # noqa: E402

NAME, ENV = "bench/locks", "production"


def _timed(fn: Callable[[], object], repeat: int, prepare: Callable[[], None] = lambda: None) -> list[float]:
    times = []
    for _ in range(repeat):
        prepare()
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return times


def _report(label: str, times: list[float]) -> None:
    print(f"{label:<28} median {statistics.median(times):8.1f} ms   best {min(times):8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--feedback", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    stores = args.repeat + 1
    records = max(args.feedback, args.batch * (stores + 1))
    with database(args.backend, schema="pk_bench_locks") as url, tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=url,
            admin_key=ADMIN_KEY,
            admin_key_file=Path(tmp) / "admin-key",
            worker_in_process=False,
            worker_lease=600.0,
            monitor_batch=args.batch,
        )
        with TestClient(create_app(settings), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:
            http.post(
                "/v1/prompts", json={"name": NAME, "content": {"type": "text", "template": "A {{ q }}"}}
            )
            http.post(
                f"/v1/prompts/{NAME.replace('/', '%2F')}/deployments", json={"environment": ENV, "version": 1}
            )
            scorers = [{"scorer": "length", "params": {"max_chars": 100}}, {"scorer": "feedback_thumbs"}]
            monitor = {"prompt": NAME, "environment": ENV, "sample_rate": 1.0, "scorers": scorers}
            assert http.post("/v1/monitors", json=monitor).status_code == 201
            for start in range(0, records, 1000):
                events = [
                    {"type": "generation", "request_id": f"r{n}", "prompt": NAME, "version": 1}
                    | {"environment": ENV, "output": "a short answer"}
                    for n in range(start, min(records, start + 1000))
                ]
                assert http.post("/v1/events", json={"events": events}).status_code == 200
            db: Database = http.app.state.context.db  # type: ignore[attr-defined]
            with db.session() as session:
                project_id = int(session.scalar(text("SELECT id FROM projects WHERE name = 'default'")))
            flips = iter(range(10**9))

            def feedback() -> None:
                thumbs = "up" if next(flips) % 2 else "down"
                events = [
                    EventIn(type="outcome", request_id=f"r{n}", thumbs=thumbs, rating=4 if n % 2 else None)
                    for n in range(args.feedback)
                ]
                with db.write_session() as session:
                    apply_feedback(session, project_id, events)
                    session.commit()

            scorer = MonitorScorer(db, settings, "bench")
            leased = scorer.claim()
            assert len(leased) == args.batch
            claimed: list[tuple[list[int], list[dict[str, object]]]] = []

            def claim() -> None:
                ids = scorer.claim()
                assert len(ids) == args.batch
                claimed.append((ids, scorer.score(ids)))

            def store() -> None:
                ids, rows = claimed.pop()
                assert len(scorer.store(ids, rows)) == 1

            feedback()  # warm: prepared statements, caches
            scorer.renew(leased)
            claim()
            store()
            print(f"{args.backend}, {records} generations")
            _report(f"feedback of {args.feedback} events", _timed(feedback, args.repeat))
            _report(f"renew of {args.batch} rows", _timed(lambda: scorer.renew(leased), args.repeat))
            _report(f"store of {args.batch} rows", _timed(store, args.repeat, prepare=claim))


if __name__ == "__main__":
    main()
