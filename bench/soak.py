"""Soak: two server instances on PostgreSQL + Redis under mixed traffic from wrk, for a long time.

    .venv/bin/python bench/soak.py [--duration 600] [--connections 16] [--prompts 50]

Two `promptkeeper serve` processes share a private PostgreSQL schema (created and dropped here) and
Redis (a private key prefix). 50 chat prompts with 4 versions each are seeded and deployed to
`production` twice (so a rollback always has somewhere to go); 5 of them get an online monitor. Then
one wrk process per instance (a separate program, closed loop unless `--rate`) sends the mix of
`bench/soak_load.lua`: 95% resolves spread over all prompts, 4% event batches (5 generation records
and their 5 outcomes each), 0.8% new versions and 0.2% rollbacks. Every `--sample-every` seconds
this process reads each server's RSS (VmRSS) and deploys a probe prompt through one instance,
timing until the other serves it. At the end:

- errors: wrk's socket errors and non-2xx responses, and every non-2xx the servers counted
  (`/metrics`), must be zero; a traceback in a server log counts as an error too;
- writes: every version the servers acknowledged (201) is in the database exactly once, numbers
  per prompt are 1..N without gaps, and every acknowledged rollback is one history row; each
  release's revision equals its number of history rows;
- propagation: both instances serve what the database says is live for every prompt, right after
  the load and again after the latest version of every prompt is deployed.

Exit code 1 when any of these fails. The figures are printed and saved under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import ADMIN_KEY, POSTGRES_URL, database, free_port, save, wait_ready  # noqa: E402

REDIS_URL = os.environ.get("PROMPTKEEPER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
LUA = Path(__file__).resolve().parent / "soak_load.lua"
KINDS = ("resolve", "event", "version", "rollback")
PROBES = 2
MONITORED = 5
CONVERGE_SECONDS = 5.0  # the periodic epoch check bounds staleness at 2 s; more than this is a failure


class SoakError(RuntimeError):
    pass


@dataclass
class SoakConfig:
    duration: float = 600
    warmup: float = 10
    prompts: int = 50
    versions: int = 4
    connections: int = 16  # per instance
    rate: float = 0  # requests/s per instance; 0: closed loop (as fast as the servers answer)
    events_per_batch: int = 5  # generation records per event request, each with its outcome
    sample_every: float = 30
    postgres_url: str = POSTGRES_URL
    redis_url: str = REDIS_URL
    log_dir: Path | None = None


@dataclass
class Catalog:
    """What was seeded: names for resolves, the ones wrk writes to, the probes, and the versions."""

    names: list[str]
    writable: list[str]
    probes: list[str]
    live: dict[str, int]


@dataclass
class Instance:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise SoakError(f"no VmRSS for pid {self.process.pid}")


@dataclass
class Sample:
    seconds: float
    rss_kib: list[int]
    probe_ms: float | None = None


@dataclass
class LoadResult:
    """One wrk process: its totals, its latency quantiles (µs, at 0.05%, 0.15%, ... 99.95%)."""

    requests: int
    seconds: float
    socket_errors: int
    status_errors: int
    max_us: int
    kinds: dict[str, int]
    quantiles_us: list[int] = field(repr=False)

    @property
    def errors(self) -> int:
        return self.socket_errors + self.status_errors


@dataclass
class KindStats:
    """Server-side figures for one kind of request, both instances, from `/metrics`."""

    ok: int = 0
    failed: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0


@dataclass
class SoakReport:
    duration: float
    connections: int
    rate: float
    prompts: int
    load: list[LoadResult]
    kinds: dict[str, KindStats]
    samples: list[Sample]
    versions_written: int = 0
    rollbacks: int = 0
    stale_after_load: int = 0
    converge_ms: float = 0.0
    final_deploy_ms: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.load)

    @property
    def requests_per_second(self) -> float:
        return sum(r.requests / r.seconds for r in self.load)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.load)

    def latency_ms(self, q: float) -> float:
        """Quantile q of all requests of both wrk processes (their histograms merged by weight)."""
        points = sorted(
            (value, r.requests / len(r.quantiles_us)) for r in self.load for value in r.quantiles_us
        )
        target = q * sum(weight for _, weight in points)
        running = 0.0
        for value, weight in points:
            running += weight
            if running >= target:
                return value / 1000
        return points[-1][0] / 1000

    @property
    def max_ms(self) -> float:
        return max(r.max_us for r in self.load) / 1000

    @property
    def rss_start_kib(self) -> list[int]:
        return self.samples[0].rss_kib

    @property
    def rss_end_kib(self) -> list[int]:
        return self.samples[-1].rss_kib

    def rss_growth(self) -> list[float]:
        """End RSS over start RSS minus one, per instance."""
        return [end / start - 1 for start, end in zip(self.rss_start_kib, self.rss_end_kib, strict=True)]

    @property
    def ok(self) -> bool:
        return not self.problems


# -- servers ---------------------------------------------------------------------------------------


@contextmanager
def instances(env: dict[str, str], count: int, log_dir: Path) -> Iterator[list[Instance]]:
    """`count` server processes, started one after the other (the first migrates the database)."""
    started: list[tuple[Instance, Any]] = []
    base = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTKEEPER_")}
    try:
        for _ in range(count):
            port = free_port()
            log_path = log_dir / f"server-{port}.log"
            log = log_path.open("ab")
            process = subprocess.Popen(
                [sys.executable, "-m", "promptkeeper.cli", "serve"],
                env={**base, **env, "PROMPTKEEPER_PORT": str(port), "PROMPTKEEPER_LOG_LEVEL": "warning"},
                stdout=log,
                stderr=log,
                cwd=log_dir,
            )
            instance = Instance(f"http://127.0.0.1:{port}", process, log_path)
            started.append((instance, log))
            wait_ready(instance.url, process)
        yield [instance for instance, _ in started]
    finally:
        for instance, log in started:
            instance.process.terminate()
            try:
                instance.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                instance.process.kill()
                instance.process.wait()
            log.close()


def segment(name: str) -> str:
    return quote(name, safe="")


def chat(index: int, version: int) -> dict[str, Any]:
    return {
        "type": "chat",
        "messages": [
            {
                "role": "system",
                "content": f"You are the support assistant of {{{{ product }}}} (prompt {index}, draft "
                f"{version}). Be brief, friendly and precise; never promise a delivery date.",
            },
            {"type": "placeholder", "name": "history"},
            {"role": "user", "content": "{{ question }}"},
        ],
        "config": {"model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 512},
    }


def seed(url: str, config: SoakConfig) -> Catalog:
    """Prompts with `config.versions` versions, production deployed twice (v1, then the last), and
    two probe prompts that only this process changes; monitors on a few prompts."""
    writable = [f"soak/prompt-{index:03d}" for index in range(config.prompts)]
    probes = [f"soak/probe-{index}" for index in range(PROBES)]
    live = dict.fromkeys(writable, config.versions) | dict.fromkeys(probes, 1)

    def one(index_name: tuple[int, str]) -> None:
        index, name = index_name
        with httpx.Client(base_url=url, headers=AUTH, timeout=30) as http:
            last = live[name]
            http.post("/v1/prompts", json={"name": name, "content": chat(index, 1)}).raise_for_status()
            for version in range(2, max(last, 2) + 1):
                http.post(
                    f"/v1/prompts/{segment(name)}/versions", json={"content": chat(index, version)}
                ).raise_for_status()
            for version in sorted({1, last}):
                http.post(
                    f"/v1/prompts/{segment(name)}/deployments",
                    json={"environment": "production", "version": version},
                ).raise_for_status()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, enumerate(writable + probes)))
    with httpx.Client(base_url=url, headers=AUTH, timeout=30) as http:
        for name in writable[:MONITORED]:
            http.post(
                "/v1/monitors",
                json={
                    "prompt": name,
                    "sample_rate": 0.1,
                    "scorers": [{"scorer": "not_contains", "params": {"values": ["UNSAFE"]}}],
                },
            ).raise_for_status()
    return Catalog(names=writable + probes, writable=writable, probes=probes, live=live)


# -- load ------------------------------------------------------------------------------------------


def lua_script(catalog: Catalog, *, instance: int, tag: str, config: SoakConfig) -> str:
    def table(values: list[str]) -> str:
        return "{" + ", ".join(json.dumps(v) for v in values) + "}"

    resolve_paths = [f"/v1/resolve/{segment(n)}?environment=production" for n in catalog.names]
    events = ", ".join(f"{{{json.dumps(n)}, {v}}}" for n, v in catalog.live.items())
    delay_ms = config.connections * 1000 / config.rate if config.rate > 0 else 0
    header = f"""AUTH = {json.dumps(AUTH["Authorization"])}
INSTANCE = {instance}
TAG = {json.dumps(tag)}
RESOLVE_PATHS = {table(resolve_paths)}
WRITE_PATHS = {table([segment(n) for n in catalog.writable])}
EVENT_PROMPTS = {{{events}}}
EVENTS_PER_BATCH = {config.events_per_batch}
DELAY_MS = {delay_ms:.3f}
"""
    return header + LUA.read_text()


def start_load(
    urls: list[str], catalog: Catalog, *, tag: str, seconds: float, config: SoakConfig, work: Path
) -> list[subprocess.Popen[str]]:
    """One wrk process per instance (wrk talks to one host), each running the same mix."""
    if shutil.which("wrk") is None:
        raise SoakError("wrk is needed: apt-get install wrk (scripts/ensure-services.sh installs it)")
    processes = []
    for index, url in enumerate(urls):
        script = work / f"soak-{tag}-{index}.lua"
        script.write_text(lua_script(catalog, instance=index, tag=tag, config=config))
        command = [
            "wrk",
            "-t1",
            f"-c{config.connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ]
        processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return processes


def finish_load(process: subprocess.Popen[str]) -> LoadResult:
    stdout, stderr = process.communicate()
    lines = {line.split(" ", 1)[0]: line.split()[1:] for line in stdout.splitlines() if line}
    if process.returncode != 0 or "RESULT" not in lines:
        raise SoakError(f"wrk failed ({process.returncode}): {stderr.strip()[-2000:]} {stdout[-2000:]}")
    requests, duration_us, connect, read, write, status, timeout, max_us = map(int, lines["RESULT"])
    return LoadResult(
        requests=requests,
        seconds=duration_us / 1e6,
        socket_errors=connect + read + write + timeout,
        status_errors=status,
        max_us=max_us,
        kinds=dict(zip(KINDS, map(int, lines["KINDS"]), strict=True)),
        quantiles_us=[int(v) for v in lines["QUANTILES"]],
    )


# -- what the servers counted ----------------------------------------------------------------------

_COUNT = re.compile(
    r'^promptkeeper_http_requests_total\{route="([^"]*)",method="(\w+)",status="(\w+)"\} (\S+)$'
)
_BUCKET = re.compile(
    r'^promptkeeper_http_request_seconds_bucket\{route="([^"]*)",method="(\w+)",le="([^"]+)"\} (\S+)$'
)


def kind_of(route: str, method: str) -> str | None:
    if method == "GET" and route.startswith("/v1/resolve/"):
        return "resolve"
    if method == "POST":
        for kind, suffix in (("event", "/v1/events"), ("version", "/versions"), ("rollback", "/rollback")):
            if route.endswith(suffix):
                return kind
        if route.endswith("/deployments"):
            return "deploy"
    return None


@dataclass
class Counters:
    """Requests per (kind, status class) and cumulative latency buckets per kind, summed over
    instances."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    buckets: dict[str, dict[float, int]] = field(default_factory=dict)
    other_failures: int = 0

    def minus(self, before: Counters) -> Counters:
        return Counters(
            counts={k: v - before.counts.get(k, 0) for k, v in self.counts.items()},
            buckets={
                kind: {le: n - before.buckets.get(kind, {}).get(le, 0) for le, n in values.items()}
                for kind, values in self.buckets.items()
            },
            other_failures=self.other_failures - before.other_failures,
        )


def scrape(urls: list[str]) -> Counters:
    counters = Counters()
    for url in urls:
        body = httpx.get(f"{url}/metrics", timeout=30).text
        for line in body.splitlines():
            if match := _COUNT.match(line):
                route, method, status, value = match.groups()
                kind = kind_of(route, method)
                if kind is None:
                    if status != "2xx":
                        counters.other_failures += int(float(value))
                    continue
                key = (kind, status)
                counters.counts[key] = counters.counts.get(key, 0) + int(float(value))
            elif match := _BUCKET.match(line):
                route, method, le, value = match.groups()
                kind = kind_of(route, method)
                if kind is not None:
                    values = counters.buckets.setdefault(kind, {})
                    bound = float("inf") if le == "+Inf" else float(le)
                    values[bound] = values.get(bound, 0) + int(float(value))
    return counters


def settled(urls: list[str], *, interval: float = 0.3, timeout: float = 15.0) -> Counters:
    """The servers' counters once the requests wrk left in flight have finished: scraped until two
    scrapes `interval` apart agree. wrk stops at its duration without waiting for its answers, and a
    write still running then is counted (and stored) after wrk has gone; a fixed pause was too short
    beside a CPU hog (a warm-up version counted in the measured window: "55 acknowledged, 54 stored")."""
    deadline = time.monotonic() + timeout
    last = scrape(urls)
    while time.monotonic() < deadline:
        time.sleep(interval)
        current = scrape(urls)
        if current.counts == last.counts and current.other_failures == last.other_failures:
            return current
        last = current
    return last


def bucket_quantile(buckets: dict[float, int], q: float) -> float:
    """Quantile (ms) from cumulative Prometheus buckets, linear inside a bucket."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0
    if total == 0:
        return 0.0
    target = q * total
    lower, below = 0.0, 0
    for bound in bounds:
        count = buckets[bound]
        if count >= target:
            if bound == float("inf"):
                return lower * 1000
            share = (target - below) / (count - below) if count > below else 1.0
            return (lower + (bound - lower) * share) * 1000
        lower, below = bound, count
    return lower * 1000


def kind_stats(delta: Counters) -> dict[str, KindStats]:
    stats: dict[str, KindStats] = {}
    for (kind, status), count in delta.counts.items():
        entry = stats.setdefault(kind, KindStats())
        if status == "2xx":
            entry.ok += count
        else:
            entry.failed += count
    for kind, entry in stats.items():
        entry.p50_ms = bucket_quantile(delta.buckets.get(kind, {}), 0.5)
        entry.p99_ms = bucket_quantile(delta.buckets.get(kind, {}), 0.99)
    return stats


# -- probes and checks -----------------------------------------------------------------------------


def served(http: httpx.Client, url: str, name: str) -> int:
    response = http.get(f"{url}/v1/resolve/{segment(name)}", params={"environment": "production"})
    response.raise_for_status()
    version: int = response.json()["version"]
    return version


def probe(http: httpx.Client, urls: list[str], name: str, round_number: int) -> float:
    """Toggle a probe prompt between v1 and v2 through one instance; ms until the other serves it."""
    writer, reader = urls[round_number % 2], urls[(round_number + 1) % 2]
    current = served(http, writer, name)
    target = 2 if current == 1 else 1
    response = http.post(
        f"{writer}/v1/prompts/{segment(name)}/deployments",
        json={"environment": "production", "version": target, "reason": "soak probe"},
    )
    started = time.perf_counter()
    response.raise_for_status()
    while served(http, reader, name) != target:
        if time.perf_counter() - started > CONVERGE_SECONDS:
            raise SoakError(
                f"probe {name}: the other instance did not serve v{target} in {CONVERGE_SECONDS} s"
            )
        time.sleep(0.001)
    return (time.perf_counter() - started) * 1000


def live_versions(engine: Any) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT p.name, r.version_number FROM releases r JOIN prompts p ON p.id = r.prompt_id "
                "JOIN environments e ON e.id = r.environment_id WHERE e.name = 'production'"
            )
        )
        return dict(rows.all())


def wait_consistent(http: httpx.Client, urls: list[str], expected: dict[str, int]) -> tuple[int, float]:
    """(prompts some instance did not serve as expected at the first look, ms until all did: at least
    the time one pass over every prompt and instance takes)."""
    started = time.perf_counter()
    pending = dict(expected)
    first_look: int | None = None
    while True:
        pending = {
            name: version
            for name, version in pending.items()
            if any(served(http, url, name) != version for url in urls)
        }
        if first_look is None:
            first_look = len(pending)
        if not pending:
            return first_look, (time.perf_counter() - started) * 1000
        if time.perf_counter() - started > CONVERGE_SECONDS:
            raise SoakError(
                f"instances still disagree with the database after {CONVERGE_SECONDS} s: {pending}"
            )
        time.sleep(0.01)


def check_writes(engine: Any, tag: str, report: SoakReport, acknowledged: dict[str, int]) -> None:
    """Acknowledged writes are in the database exactly once; numbering and history are whole."""
    with engine.connect() as connection:
        gaps = connection.execute(
            text(
                "SELECT p.name, count(*), count(DISTINCT v.number), min(v.number), max(v.number) "
                "FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id GROUP BY p.name "
                "HAVING count(*) <> max(v.number) OR count(DISTINCT v.number) <> count(*) "
                "OR min(v.number) <> 1"
            )
        ).all()
        written = connection.execute(
            text("SELECT count(*), count(DISTINCT message) FROM prompt_versions WHERE message LIKE :mark"),
            {"mark": f"soak {tag}-%"},
        ).one()
        rollbacks = connection.execute(
            text("SELECT count(*) FROM deployments WHERE action = 'rollback' AND reason = :reason"),
            {"reason": f"soak {tag}"},
        ).scalar_one()
        history = connection.execute(
            text(
                "SELECT p.name, r.revision, count(d.id), max(d.revision) FROM releases r "
                "JOIN prompts p ON p.id = r.prompt_id LEFT JOIN deployments d "
                "ON d.prompt_id = r.prompt_id AND d.environment_id = r.environment_id "
                "GROUP BY p.name, r.revision "
                "HAVING count(d.id) <> r.revision OR max(d.revision) <> r.revision"
            )
        ).all()
    report.versions_written, report.rollbacks = int(written[0]), int(rollbacks)
    if gaps:
        report.problems.append(f"version numbers with gaps or duplicates: {gaps[:5]}")
    if written[0] != written[1]:
        report.problems.append(f"{written[0] - written[1]} versions stored twice")
    if written[0] != acknowledged.get("version", 0):
        report.problems.append(f"{acknowledged.get('version', 0)} versions acknowledged, {written[0]} stored")
    if rollbacks != acknowledged.get("rollback", 0):
        report.problems.append(
            f"{acknowledged.get('rollback', 0)} rollbacks acknowledged, {rollbacks} stored"
        )
    if history:
        report.problems.append(f"release revisions that disagree with their history: {history[:5]}")


def log_problems(servers: list[Instance]) -> list[str]:
    found = []
    for server in servers:
        log = server.log_path.read_text(errors="replace")
        if "Traceback" in log or " ERROR " in log or "ERROR:" in log:
            found.append(f"{server.url} logged errors:\n{log[-3000:]}")
    return found


# -- the run ---------------------------------------------------------------------------------------


def run_soak(config: SoakConfig, out: Callable[[str], None] = print) -> SoakReport:
    run_id = uuid.uuid4().hex[:8]
    with (
        database("postgresql", schema=f"pk_soak_{run_id}", postgres_url=config.postgres_url) as url,
        tempfile.TemporaryDirectory(prefix="pk-soak-") as tmp,
    ):
        work = Path(tmp)
        log_dir = config.log_dir or work
        log_dir.mkdir(parents=True, exist_ok=True)
        env = {
            "PROMPTKEEPER_DATABASE_URL": url,
            "PROMPTKEEPER_ADMIN_KEY": ADMIN_KEY,
            "PROMPTKEEPER_REDIS_URL": config.redis_url,
            "PROMPTKEEPER_REDIS_PREFIX": f"pksoak-{run_id}",
        }
        engine = create_engine(url)
        try:
            with instances(env, 2, log_dir) as servers, httpx.Client(headers=AUTH, timeout=30) as http:
                return _drive(servers, engine, http, config, work, run_id, out)
        finally:
            engine.dispose()


def _drive(
    servers: list[Instance],
    engine: Any,
    http: httpx.Client,
    config: SoakConfig,
    work: Path,
    run_id: str,
    out: Callable[[str], None],
) -> SoakReport:
    urls = [server.url for server in servers]
    started = time.monotonic()
    catalog = seed(urls[0], config)
    out(f"seeded {len(catalog.names)} prompts in {time.monotonic() - started:.1f} s")
    if config.warmup > 0:
        for process in start_load(
            urls, catalog, tag=f"{run_id}w", seconds=config.warmup, config=config, work=work
        ):
            finish_load(process)
    tag = f"{run_id}m"
    before = settled(urls)
    samples = [Sample(0.0, [server.rss_kib() for server in servers])]
    out(f"{'t s':>6} {'RSS MiB':>20} {'probe ms':>9} {'requests':>10} {'non-2xx':>8}")
    out(f"{0:6.0f} {_rss(samples[0].rss_kib):>20} {'':>9}")
    processes = start_load(urls, catalog, tag=tag, seconds=config.duration, config=config, work=work)
    load_started = time.monotonic()
    round_number = 0
    try:
        while any(process.poll() is None for process in processes):
            next_sample = load_started + (round_number + 1) * config.sample_every
            while time.monotonic() < next_sample and any(p.poll() is None for p in processes):
                time.sleep(0.2)
            if all(p.poll() is not None for p in processes):
                break
            round_number += 1
            probe_ms = probe(http, urls, catalog.probes[round_number % len(catalog.probes)], round_number)
            sample = Sample(time.monotonic() - load_started, [s.rss_kib() for s in servers], probe_ms)
            samples.append(sample)
            progress = scrape(urls).minus(before)
            total = sum(progress.counts.values())
            failed = sum(n for (_, status), n in progress.counts.items() if status != "2xx")
            out(f"{sample.seconds:6.0f} {_rss(sample.rss_kib):>20} {probe_ms:9.1f} {total:10d} {failed:8d}")
        load = [finish_load(process) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    after = settled(urls)
    samples.append(Sample(time.monotonic() - load_started, [s.rss_kib() for s in servers]))
    delta = after.minus(before)
    report = SoakReport(
        duration=config.duration,
        connections=config.connections,
        rate=config.rate,
        prompts=len(catalog.names),
        load=load,
        kinds=kind_stats(delta),
        samples=samples,
    )
    if report.errors:
        per_instance = [f"{r.socket_errors} socket, {r.status_errors} non-2xx" for r in load]
        report.problems.append(f"wrk saw {report.errors} errors ({'; '.join(per_instance)})")
    refused = {kind: stats.failed for kind, stats in report.kinds.items() if stats.failed}
    if refused or delta.other_failures:
        report.problems.append(f"servers answered non-2xx: {refused}, other routes {delta.other_failures}")
    acknowledged = {kind: stats.ok for kind, stats in report.kinds.items()}
    check_writes(engine, tag, report, acknowledged)
    try:
        report.stale_after_load, report.converge_ms = wait_consistent(http, urls, live_versions(engine))
        latest = _deploy_latest(http, urls, engine, catalog)
        _, report.final_deploy_ms = wait_consistent(http, urls, latest)
    except SoakError as exc:
        report.problems.append(str(exc))
    report.problems += log_problems(servers)
    return report


def _deploy_latest(http: httpx.Client, urls: list[str], engine: Any, catalog: Catalog) -> dict[str, int]:
    """Deploy every written-to prompt's newest version, alternating instances; returns what is live."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT p.name, max(v.number) FROM prompt_versions v "
                "JOIN prompts p ON p.id = v.prompt_id GROUP BY p.name"
            )
        )
        newest = dict(rows.all())
    live = live_versions(engine)
    for index, name in enumerate(catalog.writable):
        if live[name] != newest[name]:
            http.post(
                f"{urls[index % 2]}/v1/prompts/{segment(name)}/deployments",
                json={"environment": "production", "version": newest[name], "reason": "soak final"},
            ).raise_for_status()
    return live_versions(engine)


def _rss(values: list[int]) -> str:
    return " / ".join(f"{v / 1024:6.1f}" for v in values)


def render(report: SoakReport) -> str:
    lines = [
        f"{'load generator (wrk, client side)':38} {'requests':>10} {'req/s':>8} {'errors':>7} "
        f"{'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>8}",
        f"{'all requests, both instances':38} {report.requests:10d} {report.requests_per_second:8.0f} "
        f"{report.errors:7d} {report.latency_ms(0.5):7.2f} {report.latency_ms(0.9):7.2f} "
        f"{report.latency_ms(0.99):7.2f} {report.max_ms:8.1f}",
        "",
        f"{'per kind (server side, /metrics)':38} {'2xx':>10} {'share':>8} {'non-2xx':>7} "
        f"{'p50 ms':>7} {'p99 ms':>7}",
    ]
    total = sum(s.ok + s.failed for k, s in report.kinds.items() if k in KINDS) or 1
    for kind in (*KINDS, "deploy"):
        stats = report.kinds.get(kind, KindStats())
        share = f"{100 * (stats.ok + stats.failed) / total:7.2f}%" if kind in KINDS else f"{'probe':>8}"
        lines.append(
            f"{kind:38} {stats.ok:10d} {share:>8} {stats.failed:7d} {stats.p50_ms:7.2f} {stats.p99_ms:7.2f}"
        )
    growth = ", ".join(f"{100 * g:+.1f}%" for g in report.rss_growth())
    probes = [s.probe_ms for s in report.samples if s.probe_ms is not None]
    lines += [
        "",
        f"RSS MiB (instance 1 / instance 2): start {_rss(report.rss_start_kib).strip()}, "
        f"end {_rss(report.rss_end_kib).strip()} ({growth})",
        f"probes: propagation under load p50 {_median(probes):.1f} ms, max {max(probes or [0.0]):.1f} ms "
        f"over {len(probes)} rounds",
        f"writes: {report.versions_written} new versions, {report.rollbacks} rollbacks (each acknowledged "
        "write checked against the database)",
        f"after the load: {report.stale_after_load} prompts served stale at the first look (checking all "
        f"on both instances took {report.converge_ms:.0f} ms); after deploying the newest versions both "
        f"instances served them all within {report.final_deploy_ms:.0f} ms",
        "result: " + ("OK" if report.ok else "FAILED\n  " + "\n  ".join(report.problems)),
    ]
    return "\n".join(lines)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    parser.add_argument("--warmup", type=float, default=10, help="seconds of the same load before measuring")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections per instance")
    parser.add_argument("--rate", type=float, default=0, help="requests/s per instance (0: closed loop)")
    parser.add_argument("--prompts", type=int, default=50)
    parser.add_argument(
        "--sample-every", type=float, default=30, help="seconds between RSS samples and probes"
    )
    parser.add_argument("--log-dir", type=Path, help="keep the server logs here")
    args = parser.parse_args()
    # Ctrl-C or a kill: unwind through run_soak's cleanup (servers, wrk, the schema), not around it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    config = SoakConfig(
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
        rate=args.rate,
        prompts=args.prompts,
        sample_every=args.sample_every,
        log_dir=args.log_dir,
    )
    pace = f"{args.rate:g} req/s per instance" if args.rate else "closed loop"
    print(
        f"soak: 2 instances on PostgreSQL + Redis, {args.duration:g} s after {args.warmup:g} s warm-up, "
        f"wrk -c{args.connections} per instance ({pace}), {args.prompts} prompts + {PROBES} probes, "
        f"{os.cpu_count()} CPUs shared by everything"
    )
    report = run_soak(config, out=lambda line: print(line, flush=True))
    print(render(report))
    print(f"saved {save('soak', report.__dict__)}")
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
