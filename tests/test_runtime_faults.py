"""Several server processes behind one PostgreSQL and Redis: propagation, and what survives faults.

Each test runs real `promptkeeper serve` processes. Redis and PostgreSQL that a test kills are its
own (a private redis-server, a private initdb cluster), never the machine's shared services.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine

from promptkeeper import Client
from promptkeeper.db import migrate
from tests.conftest import ADMIN_KEY
from tests.helpers import text_content
from tests.processes import PostgresCluster, RedisProcess, ServerProcess, wait_until

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def pg_url(postgres_url: str) -> str:
    from tests.conftest import _truncate_postgres

    _truncate_postgres(postgres_url)
    return postgres_url


@pytest.fixture
def shared_redis(redis_url: str) -> str:
    return redis_url


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()


def _start(started: list[ServerProcess], tmp_path: Path, count: int, **env: Any) -> list[ServerProcess]:
    base = {"PROMPTKEEPER_ADMIN_KEY": ADMIN_KEY, **{k: str(v) for k, v in env.items()}}
    new = [ServerProcess(base, tmp_path) for _ in range(count)]
    for server in new:
        started.append(server)
        server.start(timeout=90)
    return new


def _resolve(server: ServerProcess, name: str = "p") -> httpx.Response:
    return httpx.get(f"{server.url}/v1/resolve/{name}", headers=AUTH, timeout=5)


def _version(server: ServerProcess, name: str = "p") -> int:
    response = _resolve(server, name)
    assert response.status_code == 200, response.text
    version: int = response.json()["version"]
    return version


def _post(server: ServerProcess, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, headers=AUTH, timeout=10)


def _prepare(server: ServerProcess, versions: int = 3) -> None:
    assert _post(server, "/v1/prompts", {"name": "p", "content": text_content("v1")}).status_code == 201
    for number in range(2, versions + 1):
        assert (
            _post(server, "/v1/prompts/p/versions", {"content": text_content(f"v{number}")}).status_code
            == 201
        )
    assert (
        _post(server, "/v1/prompts/p/deployments", {"environment": "production", "version": 1}).status_code
        == 201
    )


class _Hammer:
    """Resolves of prompt `p` in a loop against the servers, counting answers and failures."""

    def __init__(self, targets: list[ServerProcess], headers: dict[str, str] | None = None) -> None:
        self.targets = targets
        self.headers = AUTH if headers is None else headers
        self.answered = 0
        self.stale: dict[str, int] = {server.url: 0 for server in targets}
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> _Hammer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _run(self) -> None:
        with httpx.Client(headers=self.headers, timeout=10) as http:
            while not self._stop.is_set():
                for server in self.targets:
                    try:
                        response = http.get(f"{server.url}/v1/resolve/p")
                    except httpx.HTTPError as exc:
                        self.failures.append(repr(exc))
                        continue
                    if response.status_code != 200:
                        self.failures.append(f"{response.status_code} {response.text}")
                    else:
                        self.answered += 1
                        if "x-promptkeeper-stale" in response.headers:
                            self.stale[server.url] += 1


def _status(server: ServerProcess) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/v1/runtime/status", headers=AUTH, timeout=5)
    assert response.status_code == 200
    status: dict[str, Any] = response.json()
    return status


def test_change_through_one_instance_is_served_by_the_other_and_its_sdk(
    servers: list[ServerProcess], tmp_path: Path, pg_url: str, shared_redis: str
) -> None:
    # TTLs of 10 minutes and a 30 s periodic check: only pub/sub can explain a fast change
    a, b = _start(
        servers,
        tmp_path,
        2,
        PROMPTKEEPER_DATABASE_URL=pg_url,
        PROMPTKEEPER_REDIS_URL=shared_redis,
        PROMPTKEEPER_REDIS_PREFIX=f"pktest-{uuid.uuid4().hex[:8]}",
        PROMPTKEEPER_CACHE_L1_TTL=600,
        PROMPTKEEPER_CACHE_EPOCH_INTERVAL=30,
    )
    _prepare(a)
    assert _version(b) == 1 and _version(a) == 1  # both caches warm
    with Client(b.url, ADMIN_KEY, cache_ttl=600) as sdk:
        assert sdk.get("p").version == 1
        wait_until(lambda: sdk.stream_connected, message="SDK stream")
        for target, action in ((2, "deploy"), (1, "rollback"), (3, "deploy")):
            started = time.monotonic()
            if action == "deploy":
                response = _post(
                    a, "/v1/prompts/p/deployments", {"environment": "production", "version": target}
                )
            else:
                response = _post(a, "/v1/prompts/p/rollback", {"environment": "production"})
            assert response.status_code == 201, response.text
            wait_until(lambda target=target: _version(b) == target, timeout=5, message=f"B serves v{target}")
            wait_until(lambda target=target: sdk.get("p").version == target, timeout=5, message="SDK")
            assert time.monotonic() - started < 3
    status_b = _status(b)
    assert status_b["invalidation"]["pubsub_messages"] >= 3
    assert status_b["invalidation"]["check_invalidations"] == 0
    assert status_b["cache"]["hits"] >= 1
    # Each change reached B over pub/sub, and B's /metrics says how late: well under a second here
    metrics = httpx.get(f"{b.url}/metrics", timeout=5).text
    lag = {
        line.split("{")[0]: float(line.rpartition(" ")[2])
        for line in metrics.splitlines()
        if line.startswith("promptkeeper_invalidation_lag_seconds_")
        and 'path="pubsub"' in line
        and "_bucket" not in line
    }
    assert lag["promptkeeper_invalidation_lag_seconds_count"] >= 3
    assert (
        0
        <= lag["promptkeeper_invalidation_lag_seconds_sum"]
        / lag["promptkeeper_invalidation_lag_seconds_count"]
        < 1.0
    )


def test_redis_killed_and_restarted(servers: list[ServerProcess], tmp_path: Path, pg_url: str) -> None:
    redis_server = RedisProcess().start()
    try:
        a, b = _start(
            servers,
            tmp_path,
            2,
            PROMPTKEEPER_DATABASE_URL=pg_url,
            PROMPTKEEPER_REDIS_URL=redis_server.url,
            PROMPTKEEPER_CACHE_L1_TTL=600,
            PROMPTKEEPER_CACHE_EPOCH_INTERVAL=2,
        )
        _prepare(a)
        assert _version(b) == 1
        load = _Hammer([a, b]).start()
        time.sleep(0.3)
        redis_server.kill()
        time.sleep(0.5)
        # a change made while Redis is down: its pub/sub message is lost
        assert (
            _post(a, "/v1/prompts/p/deployments", {"environment": "production", "version": 2}).status_code
            == 201
        )
        started = time.monotonic()
        wait_until(lambda: _version(b) == 2, timeout=10, message="B sees the change made during the outage")
        lag = time.monotonic() - started
        assert lag < 600  # far inside the TTL: the periodic check caught the lost message
        assert _status(b)["invalidation"]["check_invalidations"] >= 1
        before_restart = load.answered
        redis_server.start()
        wait_until(
            lambda: _status(b)["redis"]["up"] and _status(a)["redis"]["up"], timeout=15, message="Redis back"
        )
        wait_until(
            lambda: _status(b)["invalidation"]["pubsub_reconnects"] >= 1, timeout=15, message="B resubscribed"
        )
        messages = _status(b)["invalidation"]["pubsub_messages"]
        assert (
            _post(a, "/v1/prompts/p/deployments", {"environment": "production", "version": 3}).status_code
            == 201
        )
        wait_until(lambda: _version(b) == 3, timeout=5, message="B sees v3")
        assert _status(b)["invalidation"]["pubsub_messages"] > messages  # pub/sub delivers again
        load.stop()
        assert load.failures == [], load.failures[:5]
        assert load.answered > before_restart > 0
        print(f"\nredis outage: {load.answered} resolves answered, {len(load.failures)} failed")
        for server in (a, b):
            warnings = server.log().count("Redis unavailable")
            assert warnings == 1, f"{server.url} logged {warnings} outage warnings:\n{server.log()[-2000:]}"
    finally:
        redis_server.kill()


def test_postgres_stopped_and_restarted(servers: list[ServerProcess], tmp_path: Path) -> None:
    cluster = PostgresCluster().init()
    try:
        engine = create_engine(cluster.url)
        migrate.upgrade(engine)
        engine.dispose()
        (server,) = _start(
            servers,
            tmp_path,
            1,
            PROMPTKEEPER_DATABASE_URL=cluster.url,
            PROMPTKEEPER_CACHE_L1_TTL=0.5,
            PROMPTKEEPER_DB_TIMEOUT=2,
        )
        _prepare(server)
        assert _version(server) == 1
        # load on the cached prompt through the whole outage and the recovery
        load = _Hammer([server]).start()
        cluster.stop()
        time.sleep(0.6)  # the cached entry is now past its TTL
        stale = _resolve(server)
        assert stale.status_code == 200, stale.text
        assert stale.json()["version"] == 1
        assert stale.headers["x-promptkeeper-stale"] == "database-unavailable"
        refused = _post(server, "/v1/prompts/p/deployments", {"environment": "production", "version": 2})
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "unavailable"
        created = _post(server, "/v1/prompts/p/versions", {"content": text_content("during outage")})
        assert created.status_code == 503
        ready = httpx.get(f"{server.url}/readyz", timeout=10)
        assert ready.status_code == 503 and "database" in ready.json()["error"]["details"]["checks"]
        assert _resolve(server, "never-cached").status_code == 503
        cluster.start()
        wait_until(
            lambda: httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200,
            timeout=20,
            message="ready",
        )
        fresh = _resolve(server)
        assert fresh.status_code == 200 and "x-promptkeeper-stale" not in fresh.headers
        history = httpx.get(f"{server.url}/v1/prompts/p/deployments", headers=AUTH).json()
        assert [d["version"] for d in history["items"]] == [1]  # the refused deploy left nothing
        versions = httpx.get(f"{server.url}/v1/prompts/p/versions", headers=AUTH).json()
        assert versions["total"] == 3 and "during outage" not in str(versions)
        assert (
            _post(
                server, "/v1/prompts/p/deployments", {"environment": "production", "version": 2}
            ).status_code
            == 201
        )
        wait_until(lambda: _version(server) == 2, timeout=5, message="serves v2 after recovery")
        load.stop()
        assert load.failures == [], load.failures[:5]  # not one resolve of the cached prompt failed
        assert load.answered > 20
        print(f"\npostgres outage: {load.answered} resolves answered, {len(load.failures)} failed")
    finally:
        cluster.destroy()


OUTAGE = 60.0
#: every TTL in the resolve path, set short so that the outage outlasts each of them many times
SHORT_TTLS = {
    "PROMPTKEEPER_AUTH_CACHE_TTL": 2,
    "PROMPTKEEPER_CACHE_L1_TTL": 1,
    "PROMPTKEEPER_CACHE_L2_TTL": 3,
}


@pytest.mark.timeout(300)  # the outage alone is 60 s; starting two servers on a busy machine adds more
def test_postgres_outage_longer_than_every_ttl(servers: list[ServerProcess], tmp_path: Path) -> None:
    """Two instances on PostgreSQL + Redis keep answering resolves of a cached prompt, with keys
    verified before the outage, through a 60 s outage (30 times the key-check TTL, 20 times the L2
    TTL); once the database is back, a key revoked then stops working within the key-check TTL."""
    cluster = PostgresCluster().init()
    redis_server = RedisProcess().start()
    try:
        engine = create_engine(cluster.url)
        migrate.upgrade(engine)
        engine.dispose()
        a, b = _start(
            servers,
            tmp_path,
            2,
            PROMPTKEEPER_DATABASE_URL=cluster.url,
            PROMPTKEEPER_REDIS_URL=redis_server.url,
            PROMPTKEEPER_DB_TIMEOUT=2,
            **SHORT_TTLS,
        )
        _prepare(a)
        created = _post(a, "/v1/keys", {"name": "app", "role": "runtime"})
        assert created.status_code == 201, created.text
        app_key = {"Authorization": f"Bearer {created.json()['secret']}"}
        for server in (a, b):  # both instances verify both keys and cache the prompt (L1 and L2)
            assert _version(server) == 1
            assert httpx.get(f"{server.url}/v1/resolve/p", headers=app_key, timeout=5).status_code == 200
        load = _Hammer([a, b]).start()
        app_load = _Hammer([a, b], headers=app_key).start()
        time.sleep(0.5)
        cluster.stop()
        outage_started = time.monotonic()
        refused = _post(a, "/v1/prompts/p/deployments", {"environment": "production", "version": 2})
        assert refused.status_code == 503, refused.text
        wait_until(
            lambda: (
                load.failures
                or app_load.failures
                or (all(load.stale.values()) and all(app_load.stale.values()))
            ),
            timeout=15,
            message="stale answers from both instances",
        )
        assert load.failures == [] and app_load.failures == [], (load.failures[:3], app_load.failures[:3])
        during = load.answered + app_load.answered
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - outage_started)))
        assert load.failures == [] and app_load.failures == [], (load.failures[:3], app_load.failures[:3])
        answered_in_outage = load.answered + app_load.answered
        assert answered_in_outage > during  # still answering at the end of the outage
        cluster.start()
        for server in (a, b):
            wait_until(
                lambda server=server: httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200,
                timeout=30,
                message="ready",
            )
        wait_until(
            lambda: "x-promptkeeper-stale" not in _resolve(b).headers, timeout=10, message="fresh again"
        )
        app_load.stop()
        assert app_load.failures == [], app_load.failures[:3]
        revoked = httpx.delete(f"{a.url}/v1/keys/{created.json()['prefix']}", headers=AUTH, timeout=10)
        assert revoked.status_code == 200, revoked.text
        revoked_at = time.monotonic()
        for server in (a, b):
            wait_until(
                lambda server=server: (
                    httpx.get(f"{server.url}/v1/resolve/p", headers=app_key, timeout=5).status_code == 401
                ),
                timeout=SHORT_TTLS["PROMPTKEEPER_AUTH_CACHE_TTL"] + 3,
                message=f"{server.url} refuses the revoked key",
            )
        refused_after = time.monotonic() - revoked_at
        load.stop()
        assert load.failures == [], load.failures[:3]  # not one resolve failed, before, during or after
        total = load.answered + app_load.answered
        stale = sum(load.stale.values()) + sum(app_load.stale.values())
        print(
            f"\npostgres outage of {OUTAGE:.0f} s, two instances: {total} resolves answered "
            f"({answered_in_outage} by the end of the outage, {stale} marked stale), 0 failed; "
            f"revoked key refused everywhere {refused_after:.1f} s after the revocation"
        )
    finally:
        redis_server.kill()
        cluster.destroy()


def test_two_processes_on_one_sqlite_file_without_redis(servers: list[ServerProcess], tmp_path: Path) -> None:
    """The embedded mode scaled to two processes: the periodic check alone keeps them consistent."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    a, b = _start(
        servers,
        tmp_path,
        2,
        PROMPTKEEPER_DATABASE_URL=url,
        PROMPTKEEPER_CACHE_L1_TTL=600,
        PROMPTKEEPER_CACHE_EPOCH_INTERVAL=0.2,
    )
    _prepare(a)
    assert _version(b) == 1
    assert (
        _post(a, "/v1/prompts/p/deployments", {"environment": "production", "version": 2}).status_code == 201
    )
    wait_until(lambda: _version(b) == 2, timeout=5, message="B sees v2 through the periodic check")


def _version_numbers(server: ServerProcess, name: str = "p") -> list[int]:
    body = httpx.get(f"{server.url}/v1/prompts/{name}/versions", headers=AUTH, timeout=5).json()
    return sorted(v["number"] for v in body["items"])


def test_instance_killed_mid_write_the_sdk_fails_over_and_writes_once(
    servers: list[ServerProcess], tmp_path: Path, pg_url: str
) -> None:
    """A create in flight on A when A is killed: the SDK retries on B with the same Idempotency-Key.
    A never committed, so B does the write: one new version, not two and not none."""
    a, b = _start(servers, tmp_path, 2, PROMPTKEEPER_DATABASE_URL=pg_url)
    assert _post(a, "/v1/prompts", {"name": "p", "content": text_content("v1")}).status_code == 201
    engine = create_engine(pg_url)
    result: dict[str, Any] = {}
    try:
        with engine.connect() as blocker:
            blocker.exec_driver_sql("BEGIN")
            blocker.exec_driver_sql("SELECT id FROM prompts WHERE name = 'p' FOR UPDATE")  # A will wait here
            with Client([a.url, b.url], ADMIN_KEY, stream=False) as sdk:

                def write() -> None:
                    try:
                        result["body"] = sdk.create_version("p", text_content("v2"), message="from the SDK")
                    except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                        result["error"] = exc

                writer = threading.Thread(target=write)
                writer.start()
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as probe:
                    wait_until(
                        lambda: probe.exec_driver_sql(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                            "AND query LIKE '%%prompts%%FOR UPDATE%%' AND pid <> pg_backend_pid()"
                        ).scalar(),
                        message="A's write waiting on the prompt's row",
                    )
                assert a.process is not None
                a.process.kill()  # mid-request: A has read the body and holds a transaction
                a.process.wait()
                time.sleep(0.3)  # the SDK has seen A's connection drop and moved on to B
                blocker.exec_driver_sql("ROLLBACK")
                writer.join(timeout=30)
    finally:
        engine.dispose()
    assert "error" not in result, result
    assert result["body"]["number"] == 2 and result["body"]["message"] == "from the SDK"
    assert _version_numbers(b) == [1, 2]


class _AnswerDropper:
    """A TCP proxy in front of a server that forwards requests and drops the answers: the write
    happens, the client never hears of it (a connection cut after the commit)."""

    def __init__(self, target_port: int) -> None:
        import socket

        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.dropped = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import socket

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with client, socket.create_connection(("127.0.0.1", self.target_port)) as upstream:
                client.settimeout(5)
                request = client.recv(65536)
                while b"\r\n\r\n" not in request:
                    request += client.recv(65536)
                head, _, body = request.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                while len(body) < length:
                    body += client.recv(65536)
                upstream.sendall(head + b"\r\n\r\n" + body)
                upstream.settimeout(10)
                upstream.recv(65536)  # the server answered: it has committed; the client gets nothing
                self.dropped += 1

    def close(self) -> None:
        self.listener.close()


def test_answer_lost_after_commit_is_replayed_not_repeated(
    servers: list[ServerProcess], tmp_path: Path, pg_url: str
) -> None:
    """The write succeeded on A but the answer never arrived: the SDK's retry (on B) gets A's answer
    back from the idempotency record instead of creating version 3."""
    a, b = _start(servers, tmp_path, 2, PROMPTKEEPER_DATABASE_URL=pg_url)
    assert _post(a, "/v1/prompts", {"name": "p", "content": text_content("v1")}).status_code == 201
    dropper = _AnswerDropper(a.port)
    try:
        with Client([dropper.url, b.url], ADMIN_KEY, stream=False) as sdk:
            created = sdk.create_version("p", text_content("v2"))
            deployed = sdk.deploy("p", "production", created["number"], reason="failover test")
    finally:
        dropper.close()
    assert dropper.dropped == 2  # both writes reached A and were applied there
    assert created["number"] == 2 and _version_numbers(b) == [1, 2]
    history = httpx.get(f"{b.url}/v1/prompts/p/deployments", headers=AUTH, timeout=5).json()["items"]
    assert [d["version"] for d in history] == [2] and deployed["version"] == 2
