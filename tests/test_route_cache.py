"""A second app in one process reuses the first one's route building, and stays its own app.

promptkeeper/api/route_cache.py keeps each route's built state (dependant, pydantic adapters) per
include context and hands every app a copy bound to that app: the suite builds an app per test, and
building all routes cost 0.2 to 0.6 s of CPU each time. What must not be shared is the app itself:
`dependency_overrides` of one app must not reach another.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from promptkeeper.api import route_cache
from promptkeeper.api.deps import current_principal
from promptkeeper.api.warmup import build_routes
from promptkeeper.app import create_app
from promptkeeper.config import Settings
from promptkeeper.errors import PermissionDenied
from tests.conftest import ADMIN_KEY


def _refuse_everyone() -> None:
    raise PermissionDenied("overridden in this app only")


def _contexts(app: object) -> list[object]:
    from fastapi.routing import iter_route_contexts

    return [context._route_context for context in iter_route_contexts(app.routes)]  # type: ignore[attr-defined]


def test_a_second_app_builds_no_route_anew() -> None:
    first = create_app(Settings(database_url="sqlite://"))
    build_routes(first)
    kept = route_cache.cached_routes()
    assert kept >= 100, "the cache keeps no routes: the seam in fastapi.routing moved"
    second = create_app(Settings(database_url="sqlite://"))
    build_routes(second)
    assert route_cache.cached_routes() == kept
    first_contexts = [c for c in _contexts(first) if c is not None]
    second_contexts = [c for c in _contexts(second) if c is not None]
    assert len(first_contexts) == len(second_contexts) >= 100
    for mine, theirs in zip(first_contexts, second_contexts, strict=True):
        assert mine is not theirs
        assert mine.app is not theirs.app  # type: ignore[attr-defined]
        assert mine.dependency_overrides_provider is first  # type: ignore[attr-defined]
        assert theirs.dependency_overrides_provider is second  # type: ignore[attr-defined]


def test_dependency_overrides_stay_in_their_app(settings: Settings) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with (
        TestClient(create_app(settings), headers=headers) as plain,
        TestClient(create_app(settings), headers=headers) as overridden,
    ):
        overridden.app.dependency_overrides[current_principal] = _refuse_everyone  # type: ignore[attr-defined]
        assert plain.get("/v1/prompts").status_code == 200
        refused = overridden.get("/v1/prompts")
        assert refused.status_code == 403, refused.text
        assert "overridden in this app only" in refused.text
        assert plain.get("/v1/prompts").status_code == 200
        overridden.app.dependency_overrides.clear()  # type: ignore[attr-defined]
        assert overridden.get("/v1/prompts").status_code == 200
