"""The SDK after failing over: a change announced on its stream is served, not an older answer
(issue 20.4).

`Client([B, A])` follows B's stream; B is killed, the stream moves to A, B comes back (and serves
from its cache); a deploy made on A is announced on A's stream. The refresh it triggers must not
settle for B's older answer: with Redis down B hears of the change only at its next periodic
check (every 10 s here), and the SDK would otherwise keep B's answer for its whole TTL (10 min).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from promptkeeper import AsyncClient, Client
from tests.conftest import ADMIN_KEY
from tests.processes import RedisProcess, ServerProcess, wait_until
from tests.test_runtime_faults import _post, _prepare, _status, _version, pg_url, servers

pytestmark = pytest.mark.slow
__all__ = ["pg_url", "servers"]  # fixtures used by the tests below
DEPLOYS_WITH_REDIS = 5
DEPLOYS_WITHOUT_REDIS = 3
START_TIMEOUT = 120


class _Sdk:
    """One SDK client, sync or async, seen through a blocking `version()`."""

    def __init__(self, kind: str, urls: list[str]) -> None:
        self.kind = kind
        self._loop: asyncio.AbstractEventLoop | None = None
        options: dict[str, Any] = {"cache_ttl": 600, "timeout": 2.0}
        if kind == "sync":
            self.client: Client | AsyncClient = Client(urls, ADMIN_KEY, **options)
            return
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

        async def build() -> AsyncClient:
            return AsyncClient(urls, ADMIN_KEY, **options)

        self.client = self._run(build)

    def _run(self, make: Callable[[], Any]) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(make(), self._loop).result(timeout=30)

    def version(self) -> int:
        if isinstance(self.client, Client):
            return self.client.get("p").version
        client = self.client
        number: int = self._run(lambda: client.get("p")).version
        return number

    def close(self) -> None:
        if isinstance(self.client, Client):
            self.client.close()
            return
        client = self.client
        self._run(client.aclose)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture(params=["sync", "async"])
def sdk_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def private_redis() -> Iterator[RedisProcess]:
    redis_server = RedisProcess().start()
    yield redis_server
    redis_server.kill()


def _start(
    started: list[ServerProcess], tmp_path: Path, count: int, env: dict[str, Any]
) -> list[ServerProcess]:
    """Like test_runtime_faults' `_start`, with the patience of a loaded 2-core machine."""
    base = {"PROMPTKEEPER_ADMIN_KEY": ADMIN_KEY, **{k: str(v) for k, v in env.items()}}
    new = [ServerProcess(base, tmp_path) for _ in range(count)]
    for server in new:
        started.append(server)
        server.start(timeout=START_TIMEOUT)
    return new


def _deploy(server: ServerProcess, version: int) -> None:
    response = _post(server, "/v1/prompts/p/deployments", {"environment": "production", "version": version})
    assert response.status_code == 201, response.text


def test_after_failover_a_refresh_never_settles_for_an_older_revision(
    servers: list[ServerProcess],
    tmp_path: Path,
    pg_url: str,
    private_redis: RedisProcess,
    sdk_kind: str,
) -> None:
    env = {
        "PROMPTKEEPER_DATABASE_URL": pg_url,
        "PROMPTKEEPER_REDIS_URL": private_redis.url,
        "PROMPTKEEPER_REDIS_PREFIX": f"pktest-{uuid.uuid4().hex[:8]}",
        "PROMPTKEEPER_CACHE_L1_TTL": 600,
        "PROMPTKEEPER_CACHE_EPOCH_INTERVAL": 10,
    }
    b, a = _start(servers, tmp_path, 2, env)
    _prepare(a, versions=1 + DEPLOYS_WITH_REDIS + DEPLOYS_WITHOUT_REDIS)
    sdk = _Sdk(sdk_kind, [b.url, a.url])
    try:
        assert sdk.version() == 1
        wait_until(lambda: _status(b)["stream_subscribers"] == 1, message="the SDK follows B's stream")
        assert b.process is not None
        b.process.kill()
        b.process.wait()
        b.stop()
        wait_until(lambda: _status(a)["stream_subscribers"] == 1, message="the stream moved to A")
        b.start(timeout=START_TIMEOUT)
        assert _version(b) == 1  # B is back and has the release in its cache
        unseen: list[str] = []
        version = 1
        for redis_up, count in ((True, DEPLOYS_WITH_REDIS), (False, DEPLOYS_WITHOUT_REDIS)):
            if not redis_up:
                private_redis.kill()
                wait_until(lambda: not _status(a)["redis"]["up"], message="A notices Redis is down")
            for _ in range(count):
                version += 1
                _deploy(a, version)
                try:
                    wait_until(
                        lambda v=version: sdk.version() == v, timeout=8, message=f"the SDK serves v{version}"
                    )
                except AssertionError:
                    unseen.append(f"v{version} (Redis {'up' if redis_up else 'down'})")
                    wait_until(lambda v=version: _version(b) == v, timeout=15, message=f"B serves v{version}")
        assert _status(a)["stream_subscribers"] == 1  # every change came through A's stream
        assert not unseen, (
            f"{len(unseen)} of {DEPLOYS_WITH_REDIS + DEPLOYS_WITHOUT_REDIS} deploys unseen: {unseen}"
        )
    finally:
        sdk.close()
