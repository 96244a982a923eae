"""Generated from the app's route table: the role matrix, project isolation, audit completeness."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from promptkeeper.access.service import Role
from promptkeeper.app import create_app
from promptkeeper.bootstrap import create_project
from promptkeeper.config import Settings
from promptkeeper.db.engine import Database
from tests.conftest import ADMIN_KEY
from tests.helpers import app_routes, bearer
from tests.route_catalog import ROUTES, UNAUDITED_POSTS, Route, World, new_key

STREAM = ("GET", "/v1/stream")


NO_CREDENTIALS = {"Authorization": ""}  # replaces the test client's default admin header


def _app_routes(settings: Settings) -> set[tuple[str, str]]:
    return app_routes(create_app(settings))


def _world(client: TestClient, settings: Settings, project: str, tag: str) -> World:
    admin = bearer(ADMIN_KEY) if project == "default" else bearer(new_key(settings, project, Role.admin))
    author = bearer(new_key(settings, project, Role.editor, name=f"{tag}-author"))
    return World(client=client, admin=admin, author=author, tag=tag)


def _send(
    client: TestClient, route: Route, world: World, headers: dict[str, str] | None
) -> tuple[int, str, str]:
    response = route.call(world).send(client, headers or {})
    code = ""
    if response.status_code >= 400:
        error = response.json().get("error", {})
        # the Langfuse-compatible routes answer in Langfuse's shape: {"error": <name>, "message"}
        code = LANGFUSE_CODES.get(error, error) if isinstance(error, str) else error.get("code", "")
    return response.status_code, code, response.text[:300]


LANGFUSE_CODES = {
    "AccessDeniedError": "permission_denied",
    "LangfuseNotFoundError": "not_found",
    "UnauthorizedError": "unauthorized",
}


def test_catalog_lists_every_route(settings: Settings) -> None:
    catalog = {(route.method, route.path) for route in ROUTES}
    app = _app_routes(settings)
    assert not app - catalog, f"routes missing from tests/route_catalog.py: {sorted(app - catalog)}"
    assert not catalog - app, f"catalog entries with no route: {sorted(catalog - app)}"


def test_role_matrix(client: TestClient, settings: Settings) -> None:
    """Every route x every role: admitted roles pass the role check, the others get 403."""
    world = _world(client, settings, "default", "m")
    keys = {role: bearer(new_key(settings, "default", role)) for role in Role}
    wrong: list[str] = []
    for route in ROUTES:
        if route.roles is None:
            status, _, text = _send(client, route, world, NO_CREDENTIALS)
            if status >= 400:
                wrong.append(f"{route.method} {route.path} without a key: {status} {text}")
            continue
        if (route.method, route.path) == STREAM:
            continue  # endless: tests/test_stream.py checks that every role may subscribe
        for role in Role:
            status, code, text = _send(client, route, world, keys[role])
            ruled = status == 403 and route.service_rule is not None and route.service_rule in text
            if role in route.roles and (status in (401, 403) or status >= 500) and not ruled:
                wrong.append(f"{route.method} {route.path} as {role.value}: {status} {text}")
            if role not in route.roles and (status != 403 or code != "permission_denied"):
                wrong.append(f"{route.method} {route.path} as {role.value}: {status}, expected 403")
        status, _, _ = _send(client, route, world, NO_CREDENTIALS)
        if status != 401:
            wrong.append(f"{route.method} {route.path} without a key: {status}, expected 401")
    assert not wrong, "\n".join(wrong)


def test_project_isolation(client: TestClient, settings: Settings) -> None:
    """Project A's admin gets 404 for every object of project B, whatever the route."""
    project = f"b{uuid.uuid4().hex[:8]}"
    database = Database(settings)
    with database.write_session() as session:
        create_project(session=session, name=project)
        session.commit()
    database.dispose()
    other = _world(client, settings, project, project)
    mine = bearer(ADMIN_KEY)
    wrong: list[str] = []
    for route in ROUTES:
        if route.roles is None or not route.scoped:
            continue
        status, code, text = _send(client, route, other, mine)
        if status != 404 or code != "not_found":
            wrong.append(f"{route.method} {route.path} on project B's object: {status} {text}")
    assert not wrong, "\n".join(wrong)
    # Lists never show B's objects (B's names all carry its tag).
    other.prompt(deployed=True)
    other.review(other.prompt())
    other.webhook()
    other.member()
    other.key()
    other.environment()
    for path in (
        "/v1/prompts",
        "/v1/reviews",
        "/v1/audit",
        "/v1/keys",
        "/v1/users",
        "/v1/webhooks",
        "/v1/environments",
    ):
        response = client.get(path, params={"limit": 500} if path == "/v1/audit" else None, headers=mine)
        assert response.status_code == 200, response.text
        assert project not in response.text, f"{path} shows project B's objects"
    # ... while B's admin sees them.
    assert project in client.get("/v1/audit", headers=other.admin).text


def test_every_mutating_route_is_audited(client: TestClient, settings: Settings) -> None:
    """Each mutating route, called once successfully, leaves an audit entry with its request id."""
    mutating = {
        (method, path)
        for method, path in app_routes(client.app)  # the app under test: its routes are built once
        if method in ("POST", "PUT", "PATCH", "DELETE") and (method, path) not in UNAUDITED_POSTS
    }
    declared = {(route.method, route.path) for route in ROUTES if route.mutating}
    assert mutating == declared, f"mutating routes not declared: {mutating ^ declared}"
    world = _world(client, settings, "default", "audit")
    missing: list[str] = []
    for route in ROUTES:
        if not route.mutating:
            continue
        request = route.call(world)
        request_id = f"audit-{uuid.uuid4().hex[:12]}"
        headers = {
            **(request.headers if request.headers is not None else world.admin),
            "X-Request-ID": request_id,
        }
        response = request.send(client, headers)
        if response.status_code not in (200, 201, 202, 204):
            missing.append(f"{route.method} {route.path}: {response.status_code} {response.text[:200]}")
            continue
        assert response.headers.get("X-Request-ID") == request_id, route.path
        found = client.get("/v1/audit", params={"request_id": request_id}, headers=world.admin).json()
        if not found["items"]:
            missing.append(f"{route.method} {route.path}: no audit entry")
        for entry in found["items"]:
            assert entry["actor"] and entry["action"] and entry["at"], entry
    assert not missing, "\n".join(missing)
