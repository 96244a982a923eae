"""How long one project's webhook delivery waits while another project's receivers hang.

Project A has `--slow` webhooks whose receivers sleep `--sleep` seconds before answering; project B
has one receiver that answers at once. A prompt is created in A (one delivery per slow receiver),
then one in B; we report how long B's delivery took from B's request to its arrival, and when A's
receivers got theirs. In-process app on SQLite, receivers on 127.0.0.1.

    PYTHONPATH=. python bench/webhook_isolation.py --slow 16 --sleep 30 --timeout 30
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from promptkeeper.app import create_app
from promptkeeper.config import Settings

ADMIN_KEY = "pk_benchadm_0123456789abcdefghijklmnopqrstuvwxyzABCD"


class Receivers:
    """One HTTP server; `/slow…` paths sleep, others answer at once; arrival times by path."""

    def __init__(self, sleep: float) -> None:
        self.arrivals: dict[str, float] = {}
        self._release = threading.Event()
        receivers = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receivers.arrivals.setdefault(self.path, time.monotonic())
                if self.path.startswith("/slow"):
                    receivers._release.wait(sleep)
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the dispatcher gave up (timeout)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()


def run(slow: int, sleep: float, timeout: float) -> dict[str, Any]:
    receivers = Receivers(sleep)
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            database_url=f"sqlite:///{Path(folder) / 'bench.db'}",
            admin_key=ADMIN_KEY,
            admin_key_file=Path(folder) / "admin-key",
            webhook_timeout=timeout,
            webhook_max_attempts=1,
        )
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        with TestClient(create_app(settings), headers=headers) as api:
            b_headers = {"Authorization": f"Bearer {_project_key(settings, 'b')}"}
            base = f"http://127.0.0.1:{receivers.port}"
            for n in range(slow):
                hook = {"url": f"{base}/slow{n}", "events": ["prompt.created"]}
                assert api.post("/v1/webhooks", json=hook).status_code == 201
            fast = {"url": f"{base}/fast", "events": ["prompt.created"]}
            assert api.post("/v1/webhooks", json=fast, headers=b_headers).status_code == 201
            content = {"type": "text", "template": "x"}
            assert api.post("/v1/prompts", json={"name": "a", "content": content}).status_code == 201
            while not any(path.startswith("/slow") for path in receivers.arrivals):
                time.sleep(0.005)
            started = time.monotonic()
            response = api.post("/v1/prompts", json={"name": "b", "content": content}, headers=b_headers)
            assert response.status_code == 201
            while "/fast" not in receivers.arrivals:
                time.sleep(0.005)
            b_latency = receivers.arrivals["/fast"] - started
            a_in_flight = sum(1 for path in receivers.arrivals if path.startswith("/slow"))
        receivers.close()
    return {
        "slow_receivers": slow,
        "sleep_s": sleep,
        "timeout_s": timeout,
        "b_delivery_s": round(b_latency, 4),
        "a_deliveries_started_before_b_arrived": a_in_flight,
    }


def _project_key(settings: Settings, project: str) -> str:
    from promptkeeper.access.service import Role, create_api_key
    from promptkeeper.bootstrap import create_project
    from promptkeeper.db.engine import Database

    database = Database(settings)
    try:
        with database.write_session() as session:
            owner = create_project(session=session, name=project)
            secret = create_api_key(session=session, project=owner, name="bench", role=Role.admin).secret
            session.commit()
        return secret
    finally:
        database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slow", type=int, default=16)
    parser.add_argument("--sleep", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()
    print(json.dumps(run(args.slow, args.sleep, args.timeout)))


if __name__ == "__main__":
    main()
