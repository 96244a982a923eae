"""Test fixtures: every storage test runs on SQLite and on PostgreSQL.

PostgreSQL: database `test` on 127.0.0.1:5432 (override with PROMPTKEEPER_TEST_POSTGRES_URL); each
pytest-xdist worker gets its own schema, migrated once, and tables are truncated between tests.
SQLite: one migrated file per session, copied for every test.
Under CI=true an unreachable PostgreSQL or Redis fails the run instead of skipping.
"""

from __future__ import annotations

import gc
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from promptkeeper.app import create_app
from promptkeeper.config import Settings
from promptkeeper.db import migrate
from promptkeeper.tables import metadata

if TYPE_CHECKING:
    from tests.processes import PostgresCluster

ADMIN_KEY = "pk_testadm1_0123456789abcdefghijklmnopqrstuvwxyzABCDEF"
POSTGRES_URL = os.environ.get(
    "PROMPTKEEPER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("PROMPTKEEPER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BACKENDS = ("sqlite", "postgresql")

# Property tests run the same examples on every run (derandomize, no example database), so CI is
# deterministic and a failure reproduces locally; each test sets its own example count.
hypothesis_settings.register_profile(
    "promptkeeper",
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
hypothesis_settings.load_profile("promptkeeper")


# Tests that take tens of seconds on any machine (a 60 s outage, the soak, real server processes,
# hundreds of requests), longest first: collected first, so that pytest-xdist (`--dist worksteal`,
# pyproject.toml) starts them at once and runs the short tests beside them, instead of one of them
# starting last and running alone at the end. The rest keep their order.
LONG_FIRST = (
    "tests/test_runtime_faults.py::test_postgres_outage_longer_than_every_ttl",
    "tests/test_authorization.py::test_role_matrix",
    "tests/test_sdk_failover.py::",
    "tests/test_soak.py::",
    "tests/test_monitoring_judge.py::",
    "tests/test_runtime_faults.py::",
    "tests/test_idempotency_outage.py::",
    "tests/test_otlp_outage.py::",
)


def _rank(item: pytest.Item) -> int:
    for index, prefix in enumerate(LONG_FIRST):
        if item.nodeid.startswith(prefix):
            return index
    return len(LONG_FIRST) + (item.get_closest_marker("slow") is None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_rank)  # stable: the order within a rank is the collection order


def service_missing(what: str, error: Exception) -> None:
    message = f"{what} is not reachable ({error}); run `make services` (scripts/ensure-services.sh)"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _worker_id() -> str:
    """Unique per test process: two runs on one machine (or one database) never share a schema."""
    return f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"


@dataclass
class Backend:
    name: str
    url: str

    @property
    def is_postgres(self) -> bool:
        return self.name == "postgresql"


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """Argon2id with minimal cost in tests: the production cost (~150 ms a hash) would make every
    login in the suite that slow. tests/test_access_api.py checks the production parameters."""
    from argon2 import PasswordHasher

    from promptkeeper.access import users

    production = users._hasher
    users._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    users._hasher = production


@pytest.fixture(scope="session", autouse=True)
def frozen_import_heap() -> Iterator[None]:
    """What collection imported (FastAPI, pydantic schemas, SQLAlchemy, torch, Hypothesis, ...) is
    moved out of the collector's reach: it lives as long as the process anyway, and every full
    collection walked all of it, a large share of the CPU of a test that builds an app and a few
    hundred objects. Objects created by tests are collected as before."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(scope="session", autouse=True)
def one_tls_context_per_process() -> Iterator[None]:
    """httpx builds a TLS context for every client it creates (~20 ms of CPU loading the CA bundle),
    even for http:// on 127.0.0.1, and the suite creates thousands: every `LiveServer.client()`,
    SDK client and `httpx.get` in a polling loop. The default context (verify=True, no client
    certificate) is built once per SSL_CERT_FILE/DIR and shared; anything else is httpx's own."""
    from httpx import _config
    from httpx._transports import default

    build = _config.create_ssl_context
    built: dict[tuple[bool, str | None, str | None], Any] = {}

    def create_ssl_context(verify: Any = True, cert: Any = None, trust_env: bool = True) -> Any:
        if verify is not True or cert is not None:
            return build(verify=verify, cert=cert, trust_env=trust_env)
        key = (trust_env, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        if key not in built:
            built[key] = build(verify=verify, cert=cert, trust_env=trust_env)
        return built[key]

    patched = [m for m in (_config, default) if getattr(m, "create_ssl_context", None) is build]
    for module in patched:
        module.create_ssl_context = create_ssl_context  # type: ignore[attr-defined]
    yield
    for module in patched:
        module.create_ssl_context = build  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def no_saved_login(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """CLI commands must not pick up a developer's `promptkeeper login` from their home folder."""
    monkeypatch.setenv("PROMPTKEEPER_CONFIG", str(tmp_path / "no-saved-login.json"))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A schema of our own in the test database, migrated once."""
    schema = f"pk_test_{_worker_id()}"
    admin = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        admin.dispose()
        service_missing(f"PostgreSQL at {POSTGRES_URL}", exc)
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    rendered = url.render_as_string(hide_password=False)
    engine = create_engine(rendered)
    migrate.upgrade(engine)
    engine.dispose()
    yield rendered
    _dispose_cleaners()
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    engine = create_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


_cleaners: dict[str, tuple[Engine, bool]] = {}  # URL -> (engine, connects as a superuser)


def _truncate_postgres(url: str) -> None:
    """Empty every table and restart every sequence, as `TRUNCATE ... RESTART IDENTITY` would.

    TRUNCATE gives each of the ~35 tables, its indexes and TOAST table new files; it cost 1.0-1.4 s
    a test on the loaded 2-core machine, against 0.2 s for a DELETE of the few rows a test leaves.
    The DELETEs run with `session_replication_role = replica`, which skips the history's
    append-only triggers (and the foreign-key checks: every table is emptied) for this transaction
    only; that needs a superuser (the test database's `postgres`), else TRUNCATE it is. One engine
    per URL for the session: a connection a test is a round trip saved.
    """
    if url not in _cleaners:
        engine = create_engine(url, pool_size=1)
        with engine.connect() as connection:
            query = "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
            _cleaners[url] = (engine, bool(connection.exec_driver_sql(query).scalar()))
    engine, superuser = _cleaners[url]
    tables = metadata.sorted_tables
    with engine.begin() as connection:
        if superuser:
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
            connection.exec_driver_sql("; ".join(f'DELETE FROM "{t.name}"' for t in reversed(tables)))
            connection.exec_driver_sql(
                "SELECT setval(c.oid::regclass, 1, false) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relkind = 'S' AND n.nspname = current_schema()"
            )
        else:
            names = ", ".join(f'"{t.name}"' for t in tables)
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


def _dispose_cleaners() -> None:
    for engine, _ in _cleaners.values():
        engine.dispose()
    _cleaners.clear()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        _truncate_postgres(url)
        return Backend("postgresql", url)
    template: Path = request.getfixturevalue("sqlite_template")
    target = tmp_path / "promptkeeper.db"
    shutil.copyfile(template, target)
    return Backend("sqlite", f"sqlite:///{target}")


@pytest.fixture(params=BACKENDS)
def empty_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A database with nothing in it: a new SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite:///{tmp_path / 'empty.db'}")
        return
    request.getfixturevalue("postgres_url")  # skips or fails when PostgreSQL is unreachable
    schema = f"pk_empty_{_worker_id()}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    yield Backend("postgresql", url.render_as_string(hide_password=False))
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


def make_settings(backend: Backend, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": backend.url,
        "admin_key": ADMIN_KEY,
        "admin_key_file": tmp_path / "admin-key",
        "db_timeout": 10.0,
        # Test receivers listen on 127.0.0.1, which the production default (PostgreSQL:
        # PROMPTKEEPER_WEBHOOK_EGRESS=public) refuses; tests of the policy set their own list.
        "webhook_allow": ["127.0.0.1/32"],
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        service_missing(f"Redis at {REDIS_URL}", exc)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def settings(backend: Backend, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """SQLite runs as the embedded mode (no Redis); PostgreSQL as production (with Redis)."""
    if backend.is_postgres:
        url = request.getfixturevalue("redis_url")
        return make_settings(backend, tmp_path, redis_url=url, redis_prefix=f"pktest-{uuid.uuid4().hex[:12]}")
    return make_settings(backend, tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app in-process, authenticated as the bootstrap admin. Routes are built as requests need
    them: nothing here is timed (a process's first app builds each route, ~0.3 s of CPU for all of
    them; later apps copy them, promptkeeper/api/route_cache.py)."""
    in_process = settings.model_copy(update={"build_routes_at_start": False})
    with TestClient(create_app(in_process), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as test_client:
        yield test_client


class LiveServer:
    """A real uvicorn server in a background thread, for concurrency and SDK tests."""

    def __init__(self, settings: Settings, port: int = 0) -> None:
        self.app_settings = settings
        self.app = create_app(settings)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", port))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="on", access_log=False, timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def start(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("live server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self.server.should_exit = True
        self._thread.join(timeout=15)
        self._socket.close()

    def client(self, key: str = ADMIN_KEY, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"}, **kwargs)


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    server = LiveServer(settings).start()
    yield server
    server.stop()


@pytest.fixture
def stoppable_postgres() -> Iterator[PostgresCluster]:
    """A private PostgreSQL cluster, migrated, that the test may stop and start (an outage without
    touching the shared server); destroyed after."""
    from tests.processes import PostgresCluster  # it imports this module

    cluster = PostgresCluster().init()
    try:
        engine = create_engine(cluster.url)
        migrate.upgrade(engine)
        engine.dispose()
        yield cluster
    finally:
        cluster.destroy()
