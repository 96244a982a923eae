"""A fresh server answers its first requests without first building its routing tables.

Issue 19.8: `test_parallel_edits_of_one_draft_never_overwrite[postgresql]` timed out (5 s) creating a
draft on a loaded machine. FastAPI 0.165 builds each included router's routes (dependants, pydantic
adapters for every parameter and response model) lazily, when the first request is routed through
that router, on the event loop: on the 2-core machine the first requests of a new server carried
0.5 to 1.4 s of that CPU work (and made every concurrent request wait), several seconds under load.
The server now builds them during start-up, before it accepts connections.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import routing

from tests.conftest import LiveServer
from tests.helpers import create_prompt


@pytest.fixture
def route_builds(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every route whose serving state FastAPI builds, by path, from now on."""
    built: list[str] = []
    context = routing._EffectiveRouteContext
    original = context.from_api_route.__func__  # type: ignore[attr-defined]

    def counting(cls: Any, *, original_route: Any, **kwargs: Any) -> Any:
        built.append(original_route.path)
        return original(cls, original_route=original_route, **kwargs)

    monkeypatch.setattr(context, "from_api_route", classmethod(counting))
    yield built


def test_first_requests_of_a_new_server_build_no_routes(
    route_builds: list[str], live_server: LiveServer
) -> None:
    at_start = len(route_builds)
    with live_server.client() as client:
        create_prompt(client, "p", "one")
        assert client.post("/v1/prompts/p/drafts", json={}).status_code == 201
        assert client.get("/v1/prompts/p/drafts").status_code == 200
        assert client.get("/v1/nothing-here").status_code == 404  # tried against every router
    during = route_builds[at_start:]
    assert route_builds, "no route was built at all: the probe no longer sees FastAPI's route building"
    assert during == [], f"{len(during)} routes built while serving the first requests: {during[:8]}"
