"""Shared pieces of the benchmarks: databases, server processes, wrk runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
ADMIN_KEY = "pk_benchadm_0123456789abcdefghijklmnopqrstuvwxyzABCD"
POSTGRES_URL = os.environ.get(
    "PROMPTKEEPER_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
HAS_TASKSET = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def database(backend: str, *, schema: str = "pk_bench", postgres_url: str = POSTGRES_URL) -> Iterator[str]:
    """A fresh, empty database URL for `backend` (sqlite file or a PostgreSQL schema), dropped after.

    Benches that may run beside another (the soak's CI form runs inside the test suite) pass a
    `schema` of their own."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    admin = create_engine(postgres_url)
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not become ready")


#: the process id of each running `server()`, by its URL (for `cpu_seconds`)
SERVER_PIDS: dict[str, int] = {}


def _stat(text: str) -> tuple[str, float]:
    """A /proc/<pid>/stat line: the command name and its CPU time so far (user + system)."""
    name, rest = text.split("(", 1)[1].rsplit(")", 1)
    fields = rest.split()
    return name, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc (Linux)."""
    return _stat(Path(f"/proc/{pid}/stat").read_text())[1]


def postgres_cpu_seconds() -> float:
    """CPU time used so far by every PostgreSQL process on this machine (others' work included: read
    it on an otherwise idle machine)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended meanwhile
            continue
        name, seconds = _stat(text)
        if name == "postgres":
            total += seconds
    return total


@contextmanager
def server(
    env: dict[str, str], *, cpu: int | None = 0, args: list[str] | None = None, ready_timeout: float = 30
) -> Iterator[str]:
    """`promptkeeper serve` (or `args`) in a subprocess, pinned to one CPU when possible."""
    port = free_port()
    full_env = {**os.environ, **env, "PROMPTKEEPER_PORT": str(port), "PROMPTKEEPER_LOG_LEVEL": "warning"}
    command = args or [sys.executable, "-m", "promptkeeper.cli", "serve"]
    command = [arg.replace("{port}", str(port)) for arg in command]
    if cpu is not None and HAS_TASKSET:
        command = ["taskset", "-c", str(cpu), *command]
    process = subprocess.Popen(command, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    SERVER_PIDS[url] = process.pid  # taskset execs the server: the same process
    try:
        wait_ready(url, process, ready_timeout)
        yield url
    finally:
        SERVER_PIDS.pop(url, None)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@dataclass
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(value: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s)", value)
    if not match:
        raise ValueError(value)
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(
    url: str,
    *,
    paths: list[str],
    headers: dict[str, str],
    duration: float,
    connections: int,
    cpu: int | None = 1,
) -> WrkResult:
    """Closed-loop load with wrk, rotating over `paths`; latency percentiles from wrk's histogram."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    lua_paths = ", ".join(json.dumps(p) for p in paths)
    lua_headers = "\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())
    script = f"""
{lua_headers}
local paths = {{{lua_paths}}}
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %f %f %f\\n", summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    command = ["wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", "-s", handle.name, url]
    if cpu is not None and HAS_TASKSET:
        command = ["taskset", "-c", str(cpu), *command]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    os.unlink(handle.name)
    line = next(line for line in output.splitlines() if line.startswith("RESULT"))
    requests, status_errors, socket_errors, duration_us, p50, p90, p99 = line.split()[1:]
    seconds = int(duration_us) / 1e6
    return WrkResult(
        requests_per_second=int(requests) / seconds,
        p50_ms=float(p50) / 1000,
        p90_ms=float(p90) / 1000,
        p99_ms=float(p99) / 1000,
        requests=int(requests),
        errors=int(status_errors) + int(socket_errors),
    )


def header() -> str:
    return f"{'case':30} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'errors':>6} {'vs bare':>8}"


def row(label: str, result: WrkResult, ratio: float | None) -> str:
    ratio_text = f"{ratio:8.2f}" if ratio is not None else f"{'':>8}"
    return (
        f"{label:30} {result.requests_per_second:9.0f} {result.p50_ms:8.2f} {result.p90_ms:8.2f}"
        f" {result.p99_ms:8.2f} {result.errors:6d} {ratio_text}"
    )


def save(name: str, results: dict[str, object]) -> Path:
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2, default=lambda o: asdict(o)))
    return path
