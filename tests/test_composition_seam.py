"""Composition across the cache seam: a deploy of `base` reaches every prompt that includes it.

Two real `promptkeeper serve` processes on PostgreSQL and the shared Redis. A has no L1 (TTL 0):
every answer after its first load comes from Redis. B keeps entries for ten minutes, and the
periodic check runs every 30 s, so only the invalidation event can explain a fast change. An SDK
client subscribed to B's stream has `outer` cached: the event for `base` must refresh it.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from promptkeeper.client import Client
from tests.helpers import text_content
from tests.processes import ServerProcess, wait_until
from tests.test_runtime_faults import ADMIN_KEY, AUTH, _post, _start, _status, pg_url, servers

pytestmark = pytest.mark.slow
__all__ = ["pg_url", "servers"]  # fixtures used by the tests below

OUTER = "Intro. @@@prompt:name=base|label=production@@@ Outro {{ who }}."


def _resolve(server: ServerProcess, name: str = "outer", **params: str) -> httpx.Response:
    response = httpx.get(f"{server.url}/v1/resolve/{name}", params=params, headers=AUTH, timeout=5)
    assert response.status_code == 200, response.text
    return response


def _template(server: ServerProcess) -> str:
    template: str = _resolve(server).json()["content"]["template"]
    return template


def _created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_deploy_of_base_reaches_its_dependants_on_every_instance_and_the_sdk(
    servers: list[ServerProcess], tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    common = {
        "PROMPTKEEPER_DATABASE_URL": pg_url,
        "PROMPTKEEPER_REDIS_URL": redis_url,
        "PROMPTKEEPER_REDIS_PREFIX": f"pktest-{uuid.uuid4().hex[:8]}",
        "PROMPTKEEPER_CACHE_EPOCH_INTERVAL": 30,
    }
    (a,) = _start(servers, tmp_path, 1, PROMPTKEEPER_CACHE_L1_TTL=0, **common)
    (b,) = _start(servers, tmp_path, 1, PROMPTKEEPER_CACHE_L1_TTL=600, **common)
    _created(_post(a, "/v1/prompts", {"name": "base", "content": text_content("Base one.")}))
    _created(_post(a, "/v1/prompts/base/versions", {"content": text_content("Base two, {{ tone }}.")}))
    _created(_post(a, "/v1/prompts/base/deployments", {"environment": "production", "version": 1}))
    _created(_post(a, "/v1/prompts", {"name": "outer", "content": text_content(OUTER)}))
    _created(_post(a, "/v1/prompts/outer/deployments", {"environment": "production", "version": 1}))

    first = "Intro. Base one. Outro {{ who }}."
    assert _template(a) == first and _template(a) == first  # A: database, then Redis
    assert _template(b) == first  # B: from Redis into its L1
    before = {server.url: _resolve(server).headers["ETag"] for server in (a, b)}
    raw = _resolve(b, resolve="false").json()
    assert raw["content"]["template"] == OUTER and raw["raw"] is True

    with Client(b.url, ADMIN_KEY, cache_ttl=600) as sdk:
        served = sdk.get("outer")
        assert served.template == first
        assert served.render(who="you") == "Intro. Base one. Outro you."
        wait_until(lambda: sdk.stream_connected, timeout=30, message="SDK stream")

        for version, action, expected in (
            (2, "deploy", "Intro. Base two, {{ tone }}. Outro {{ who }}."),
            (1, "rollback", first),
        ):
            hits_a = _status(a)["cache"]["shared_hits"]
            if action == "deploy":
                _created(
                    _post(a, "/v1/prompts/base/deployments", {"environment": "production", "version": 2})
                )
            else:
                _created(_post(a, "/v1/prompts/base/rollback", {"environment": "production"}))
            for server in (a, b):
                wait_until(
                    lambda server=server, expected=expected: _template(server) == expected,
                    timeout=20,
                    message=f"{server.url} serves outer with base v{version}",
                )
            wait_until(
                lambda expected=expected: sdk.get("outer").template == expected,
                timeout=20,
                message="SDK outer",
            )
            after = {server.url: _resolve(server).headers["ETag"] for server in (a, b)}
            assert all(after[url] != before[url] for url in after), (before, after)
            before = after
            includes = _resolve(b).json()["includes"]
            assert [(i["name"], i["label"], i["version"]) for i in includes] == [
                ("base", "production", version)
            ]
            assert _status(a)["cache"]["shared_hits"] > hits_a  # A still answers from Redis
        assert sdk.get("outer").render(who="me") == "Intro. Base one. Outro me."

    status_b = _status(b)
    assert status_b["invalidation"]["check_invalidations"] == 0  # the events did it, not the check
    assert status_b["invalidation"]["pubsub_messages"] >= 2
