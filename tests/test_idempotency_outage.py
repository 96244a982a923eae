"""A write with `Idempotency-Key` while PostgreSQL is down: the same clean 503 as without the key.

A real `promptkeeper serve` on a private PostgreSQL cluster that the test stops (never the shared
one). Looking the key up is the first database work such a request does; its failure must not
become a 500 with a traceback, nor be counted under `route="unmatched"`.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY
from tests.helpers import text_content
from tests.processes import PostgresCluster, ServerProcess, wait_until

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
V2 = text_content("v2")


def _count(metrics: str, route: str, method: str, status: str) -> int:
    pattern = (
        rf'promptkeeper_http_requests_total\{{route="{re.escape(route)}",method="{method}",'
        rf'status="{status}"\}} (\d+)'
    )
    found = re.search(pattern, metrics)
    return int(found.group(1)) if found else 0


def test_write_with_a_key_during_an_outage_is_a_clean_503_counted_under_its_route(
    stoppable_postgres: PostgresCluster, tmp_path: Path
) -> None:
    server = ServerProcess(
        {
            "PROMPTKEEPER_ADMIN_KEY": ADMIN_KEY,
            "PROMPTKEEPER_DATABASE_URL": stoppable_postgres.url,
            "PROMPTKEEPER_DB_TIMEOUT": "2",
        },
        tmp_path,
    ).start()
    try:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=15) as http:
            created = http.post("/v1/prompts", json={"name": "p", "content": text_content("v1")})
            assert created.status_code == 201
            stoppable_postgres.stop()
            writes = [
                ("POST", "/v1/prompts/p/versions", "/v1/prompts/{name}/versions", {"content": V2}),
                ("PATCH", "/v1/prompts/p", "/v1/prompts/{name}", {"description": "changed"}),
                ("POST", "/v1/keys", "/v1/keys", {"name": "ci", "role": "viewer"}),
            ]
            for index, (method, path, route, body) in enumerate(writes):
                headers = {"Idempotency-Key": f"outage-{index}"}
                with_key = http.request(method, path, json=body, headers=headers)
                assert with_key.status_code == 503, (path, with_key.status_code, with_key.text)
                assert with_key.json()["error"]["code"] == "unavailable"
                assert "Traceback" not in with_key.text
                without = http.request(method, path, json=body)
                assert without.status_code == 503 and without.json() == with_key.json()
                metrics = http.get("/metrics").text
                assert _count(metrics, route, method, "5xx") == 2, metrics
            assert _count(http.get("/metrics").text, "unmatched", "POST", "5xx") == 0
            stoppable_postgres.start()
            wait_until(lambda: http.get("/readyz").status_code == 200, timeout=30, message="ready")
            # nothing was half-written: the same keys now do the writes, once
            for index, (method, path, _, body) in enumerate(writes):
                headers = {"Idempotency-Key": f"outage-{index}"}
                done = http.request(method, path, json=body, headers=headers)
                assert done.status_code in (200, 201) and "idempotent-replayed" not in done.headers
                again = http.request(method, path, json=body, headers=headers)
                assert again.headers.get("idempotent-replayed") == "true" and again.json() == done.json()
            assert http.get("/v1/prompts/p/versions").json()["total"] == 2
    finally:
        server.stop()
