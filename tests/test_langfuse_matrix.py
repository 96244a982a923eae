"""The Langfuse-compatible API against every supported client: Python `langfuse` 2.x, 3.x, 4.x and
5.x (one virtualenv each, `make langfuse-clients`) and the JS `langfuse` 3.x and
`@langfuse/client` 5.x (`node --test`), on SQLite and on PostgreSQL with Redis.

One server per backend for the module; each client runs its whole scenario in one subprocess
(tests/langfuse/scenario.py, tests/js/langfuse/scenario.test.mjs) through a proxy that records
every request, so "a refused change is sent once" is counted at the wire, not assumed. A row an
older client cannot run is skipped by the scenario with its reason, and EXPECTED_SKIPS below says
which ones may be: a skip that is not listed, or a listed one that passes, fails the test.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Backend, LiveServer, make_settings

ROOT = Path(__file__).resolve().parent.parent
PYTHON_MAJORS = (2, 3, 4, 5)
JS_DIR = ROOT / "tests" / "js" / "langfuse"
ROWS = (
    "auth_check",
    "create_and_get",
    "compile_text",
    "chat_placeholders",
    "any_chat_role",
    "label_moves",
    "caching_and_fallback",
    "list_from_updated_at",
    "refused_change_sent_once",
    "upper_case_and_folders",
)
#: What a client version lacks, so its scenario skips the row (with this reason in its output).
EXPECTED_SKIPS: dict[str, dict[str, str]] = {
    "py2": {"chat_placeholders": "no chat placeholders"},
    "js-langfuse": {},
    "js-client": {},
    "py3": {},
    "py4": {},
    "py5": {},
}


def _venv_python(major: int) -> Path:
    return ROOT / ".venv" / f"langfuse-{major}" / "bin" / "python"


def _missing(what: str, path: Path) -> None:
    message = f"{what} is not installed ({path}): run `make langfuse-clients` (make test does)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


class CountingProxy:
    """Forwards every request to the server and records `(method, path, status, body name)`."""

    def __init__(self, target: str) -> None:
        self.seen: list[tuple[str, str, int, str | None]] = []
        upstream = httpx.Client(base_url=target, timeout=60)
        seen = self.seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                answer = upstream.request(self.command, self.path, content=body, headers=headers)
                try:
                    name = json.loads(body).get("name") if body else None
                except (ValueError, AttributeError):
                    name = None
                seen.append((self.command, self.path.split("?")[0], answer.status_code, name))
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in (
                        "content-length",
                        "transfer-encoding",
                        "connection",
                        "content-encoding",
                    ):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _forward

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._upstream = upstream
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._upstream.close()


#: Every client on PostgreSQL with Redis (production: the shared cache and invalidation are where a
#: client's caching meets ours); the current majors on SQLite too (the embedded mode). The
#: compatible routes are one code path on both backends, so the older majors add no coverage there.
CLIENTS = [f"py{major}" for major in PYTHON_MAJORS] + ["js-langfuse", "js-client"]
SQLITE_CLIENTS = ["py5", "js-client"]


def _serve(settings: Any) -> Iterator[LiveServer]:
    live = LiveServer(settings).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def postgres_server(
    postgres_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """One server for the module (each client's scenario uses names of its own)."""
    from tests.conftest import _truncate_postgres

    _truncate_postgres(postgres_url)
    settings = make_settings(
        Backend("postgresql", postgres_url),
        tmp_path_factory.mktemp("matrix-pg"),
        redis_url=redis_url,
        redis_prefix=f"pktest-{uuid.uuid4().hex[:12]}",
    )
    yield from _serve(settings)


@pytest.fixture(scope="module")
def sqlite_server(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("matrix-sqlite")
    shutil.copyfile(sqlite_template, tmp / "matrix.db")
    yield from _serve(make_settings(Backend("sqlite", f"sqlite:///{tmp / 'matrix.db'}"), tmp))


def _editor_key(server: LiveServer, client: str) -> str:
    with server.client() as http:
        created = http.post("/v1/keys", json={"name": f"matrix-{client}", "role": "editor"})
    assert created.status_code == 201, created.text
    secret: str = created.json()["secret"]
    return secret


def _check(client: str, rows: dict[str, str], proxy: CountingProxy, prefix: str) -> None:
    assert set(rows) == set(ROWS), sorted(set(ROWS) ^ set(rows))
    failed = {row: outcome for row, outcome in rows.items() if outcome.startswith("fail")}
    assert not failed, "\n\n".join(f"{row}: {outcome}" for row, outcome in failed.items())
    skipped = {row: outcome for row, outcome in rows.items() if outcome.startswith("skip")}
    expected = EXPECTED_SKIPS[client]
    assert set(skipped) == set(expected), (skipped, expected)
    for row, reason in expected.items():
        assert reason in skipped[row], (row, skipped[row])
    refused = [
        status
        for method, path, status, name in proxy.seen
        if method == "POST" and path == "/api/public/v2/prompts" and name == prefix + "typed"
    ]
    assert refused == [201, 400], refused  # created once, refused once: the 400 is not retried


def _run_python(major: int, server: LiveServer, proxy: CountingProxy, prefix: str) -> dict[str, Any]:
    python = _venv_python(major)
    if not python.exists():
        _missing(f"langfuse {major}.x", python)
    arguments = {
        "url": proxy.url,
        "api": server.url,
        "secret": _editor_key(server, f"py{major}"),
        "prefix": prefix,
    }
    done = subprocess.run(
        [str(python), str(ROOT / "tests" / "langfuse" / "scenario.py"), json.dumps(arguments)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": os.environ.get("PATH", ""), "LANGFUSE_TRACING_ENABLED": "false"},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["version"].split(".")[0] == str(major), report["version"]
    return report


def _run_js(client: str, server: LiveServer, proxy: CountingProxy, prefix: str) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        _missing("node", Path("node"))
    modules = JS_DIR / "node_modules" / ".installed"
    if not modules.exists():
        _missing("the JS Langfuse clients", modules)
    report_file = JS_DIR / f".report-{client}-{os.getpid()}.json"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "MATRIX_CLIENT": client,
        "MATRIX_URL": proxy.url,
        "MATRIX_API": server.url,
        "MATRIX_SECRET": _editor_key(server, client),
        "MATRIX_PREFIX": prefix,
        "MATRIX_REPORT": str(report_file),
    }
    try:
        done = subprocess.run(
            [str(node), "--test", "--test-reporter=tap", "scenario.test.mjs"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert report_file.exists(), done.stdout[-4000:] + done.stderr[-2000:]
        report: dict[str, Any] = json.loads(report_file.read_text())
    finally:
        report_file.unlink(missing_ok=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return report


def _run(client: str, server: LiveServer) -> None:
    proxy = CountingProxy(server.url)
    try:
        prefix = f"{client}-"
        if client.startswith("py"):
            report = _run_python(int(client[2:]), server, proxy, prefix)
        else:
            report = _run_js(client, server, proxy, prefix)
        _check(client, report["rows"], proxy, prefix)
    finally:
        proxy.close()


@pytest.mark.parametrize("client", CLIENTS)
def test_client_on_postgresql_with_redis(client: str, postgres_server: LiveServer) -> None:
    _run(client, postgres_server)


@pytest.mark.parametrize("client", SQLITE_CLIENTS)
def test_client_on_sqlite(client: str, sqlite_server: LiveServer) -> None:
    _run(client, sqlite_server)


def test_the_matrix_pins_the_supported_versions() -> None:
    """The versions docs/langfuse.md promises are the ones installed and tested."""
    pins = {
        major: (ROOT / "tests" / "langfuse" / f"requirements-{major}.txt").read_text()
        for major in PYTHON_MAJORS
    }
    assert [line for line in pins[2].splitlines() if line.startswith("langfuse==")] == ["langfuse==2.60.10"]
    assert "langfuse==3.15." in pins[3] and "langfuse==4.18." in pins[4] and "langfuse==5.2." in pins[5]
    package = json.loads((JS_DIR / "package.json").read_text())["dependencies"]
    assert package["langfuse"].startswith("3.39.") and package["@langfuse/client"].startswith("5.11.")
    docs = (ROOT / "docs" / "langfuse.md").read_text()
    for version in ("2.60", "3.15", "4.18", "5.2", "3.39", "5.11"):
        assert version in docs, version
    assert sys.version_info >= (3, 11)


@pytest.mark.skipif(shutil.which("make") is None, reason="the matrix is built by a make target")
def test_make_builds_one_venv_per_major_and_the_js_clients_once() -> None:
    planned = subprocess.run(
        ["make", "-s", "-n", "-B", "langfuse-clients"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    for major in PYTHON_MAJORS:
        assert f"-m venv .venv/langfuse-{major}" in planned, planned
        assert f"-r tests/langfuse/requirements-{major}.txt" in planned, planned
    assert "npm ci" in planned and (JS_DIR / "package-lock.json").is_file()
    if all(_venv_python(major).exists() for major in PYTHON_MAJORS):
        # built: a second `make test` installs nothing (make -q: exit 0 when up to date)
        assert subprocess.run(["make", "-q", "langfuse-clients"], cwd=ROOT).returncode == 0
