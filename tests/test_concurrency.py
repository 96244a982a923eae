"""Concurrent writers through a real HTTP server: numbering, deploy history, name races."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import httpx

from tests.conftest import LiveServer
from tests.helpers import text_content

CLIENTS = 20


def _in_parallel(server: LiveServer, count: int, request: object) -> list[httpx.Response]:
    barrier = Barrier(count)

    def one(index: int) -> httpx.Response:
        with server.client(timeout=60) as client:
            barrier.wait()
            return request(client, index)  # type: ignore[operator, no-any-return]

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def test_parallel_version_creation_numbers_without_gaps(live_server: LiveServer) -> None:
    with live_server.client() as client:
        assert (
            client.post("/v1/prompts", json={"name": "race", "content": text_content("v0")}).status_code
            == 201
        )
    responses = _in_parallel(
        live_server,
        CLIENTS,
        lambda c, i: c.post(
            "/v1/prompts/race/versions", json={"content": text_content(f"edit {i}"), "message": f"m{i}"}
        ),
    )
    assert [r.status_code for r in responses] == [201] * CLIENTS, [
        r.text for r in responses if r.status_code != 201
    ]
    numbers = sorted(r.json()["number"] for r in responses)
    assert numbers == list(range(2, CLIENTS + 2))
    with live_server.client() as client:
        listing = client.get("/v1/prompts/race/versions", params={"limit": 100}).json()
    assert sorted(v["number"] for v in listing["items"]) == list(range(1, CLIENTS + 2))
    assert listing["total"] == CLIENTS + 1
    # every version's parent is the version before it
    assert all(v["parent"] == v["number"] - 1 for v in listing["items"] if v["number"] > 1)
    # each request's content landed in the version it was told about
    by_message = {r.json()["message"]: r.json()["number"] for r in responses}
    assert {v["message"]: v["number"] for v in listing["items"] if v["number"] > 1} == by_message


def test_parallel_optimistic_edits_only_one_wins(live_server: LiveServer) -> None:
    with live_server.client() as client:
        client.post("/v1/prompts", json={"name": "opt", "content": text_content("v0")})
    responses = _in_parallel(
        live_server,
        10,
        lambda c, i: c.post(
            "/v1/prompts/opt/versions", json={"content": text_content(f"e{i}"), "base_version": 1}
        ),
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * 9
    assert all(r.json()["error"]["details"]["head_version"] == 2 for r in responses if r.status_code == 409)


def test_parallel_deploys_leave_a_consistent_history(live_server: LiveServer) -> None:
    with live_server.client() as client:
        client.post("/v1/prompts", json={"name": "dep", "content": text_content("v1")})
        for n in range(2, 6):
            client.post("/v1/prompts/dep/versions", json={"content": text_content(f"v{n}")})
    responses = _in_parallel(
        live_server,
        CLIENTS,
        lambda c, i: c.post(
            "/v1/prompts/dep/deployments", json={"environment": "production", "version": i % 5 + 1}
        ),
    )
    codes = [r.status_code for r in responses]
    assert set(codes) <= {201, 409}, [r.text for r in responses]
    created = [r.json() for r in responses if r.status_code == 201]
    assert created
    with live_server.client() as client:
        history = client.get("/v1/prompts/dep/deployments", params={"limit": 500}).json()["items"]
        release = client.get("/v1/prompts/dep").json()["environments"]["production"]
        resolved = client.get("/v1/resolve/dep").json()
    chronological = sorted(history, key=lambda d: d["revision"])
    assert len(chronological) == len(created)
    assert [d["revision"] for d in chronological] == list(range(1, len(created) + 1))
    assert chronological[0]["previous_version"] is None
    for before, after in zip(chronological, chronological[1:], strict=False):
        assert after["previous_version"] == before["version"]
        assert after["version"] != before["version"]
        assert after["at"] >= before["at"]
    assert release["version"] == chronological[-1]["version"] == resolved["version"]
    assert release["revision"] == len(created) == resolved["revision"]


def test_parallel_creates_of_one_name(live_server: LiveServer) -> None:
    responses = _in_parallel(
        live_server,
        10,
        lambda c, i: c.post("/v1/prompts", json={"name": "same", "content": text_content(f"c{i}")}),
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * 9, [r.text for r in responses]
    with live_server.client() as client:
        assert client.get("/v1/prompts/same/versions").json()["total"] == 1
