"""Experiments across instances: a unit gets the same variant whichever instance and cache layer
answers (issue 19.1: a release read from Redis had lost its experiment).

Real `promptkeeper serve` processes on PostgreSQL and the shared Redis; instance A has no L1 (TTL
0), so after its first load every answer it gives comes from Redis too.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from promptkeeper.core.assignment import assign
from tests.processes import ServerProcess
from tests.test_runtime_faults import AUTH, _post, _prepare, _start, _status, pg_url, servers

pytestmark = pytest.mark.slow
__all__ = ["pg_url", "servers"]  # fixtures used by the tests below
UNITS = [f"u{i}" for i in range(1, 41)]


def _start_experiment(server: ServerProcess) -> dict[str, Any]:
    body = {
        "prompt": "p",
        "environment": "production",
        "name": "cache layers",
        "candidates": [{"version": 2, "weight": 1, "key": "treatment"}],
        "primary_metric": "completion",
        "baseline": 0.5,
        "mde": 0.07,
    }
    created = _post(server, "/v1/experiments", body)
    assert created.status_code == 201, created.text
    experiment: dict[str, Any] = created.json()
    started = _post(server, f"/v1/experiments/{experiment['id']}/start", {})
    assert started.status_code == 200, started.text
    return experiment


def _native(server: ServerProcess, unit: str) -> tuple[int, str | None]:
    response = httpx.get(
        f"{server.url}/v1/resolve/p", params={"environment": "production", "unit": unit}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return body["version"], (body.get("assignment") or {}).get("variant")


def _langfuse(server: ServerProcess, unit: str) -> int:
    response = httpx.get(
        f"{server.url}/api/public/v2/prompts/p",
        params={"label": "production"},
        headers={**AUTH, "X-PromptKeeper-Unit": unit},
    )
    assert response.status_code == 200, response.text
    version: int = response.json()["version"]
    return version


def test_every_instance_assigns_every_unit_alike_from_any_cache_layer(
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
    _prepare(a, versions=2)
    experiment = _start_experiment(a)
    keys = [v["key"] for v in experiment["variants"]]
    versions = [v["version"] for v in experiment["variants"]]
    weights = [v["weight"] for v in experiment["variants"]]
    expected = {unit: assign(seed=experiment["seed"], unit=unit, weights=weights) for unit in UNITS}
    assert 0 < sum(expected.values()) < len(UNITS)  # both variants are exercised

    # A loads the release from the database and stores it in Redis; later answers come from there
    assert _native(a, "warm-up")[0] in versions
    on_a = {unit: _native(a, unit) for unit in UNITS}
    on_b = {unit: _native(b, unit) for unit in UNITS}
    langfuse_b = {unit: _langfuse(b, unit) for unit in UNITS}
    langfuse_a = {unit: _langfuse(a, unit) for unit in UNITS}
    assert _status(b)["cache"]["shared_hits"] >= 1  # B's entry came from Redis
    assert _status(a)["cache"]["shared_hits"] >= len(UNITS)  # and so did A's, without an L1

    want = {unit: (versions[index], keys[index]) for unit, index in expected.items()}
    want_version = {unit: version for unit, (version, _) in want.items()}
    for route, got, wanted in (
        ("A /v1/resolve", on_a, want),
        ("B /v1/resolve", on_b, want),
        ("B Langfuse", langfuse_b, want_version),
        ("A Langfuse", langfuse_a, want_version),
    ):
        wrong = sorted(unit for unit in UNITS if got[unit] != wanted[unit])
        assert not wrong, f"{route}: {len(wrong)} of {len(UNITS)} units not assigned as hashing says: {wrong}"
