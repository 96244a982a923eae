"""Who may see a UI page: every page but the sign-in sends a visitor without a session to sign in.

Walks every route of the admin UI on a real server, so a page added without the session check,
or one whose check runs after it has already judged the request, fails here. A signed-in user who
meets an error still sees the page as themselves (name, role, sign-out), not as a stranger.
"""

from __future__ import annotations

import re

import httpx
import pytest

from promptkeeper.config import Settings
from tests.conftest import LiveServer
from tests.helpers import ui_routes

PASSWORD = "correct horse battery staple"
#: Pages anyone may open: the redirects to the prompts and the sign-in form itself.
PUBLIC = {("GET", "/"), ("GET", "/ui"), ("GET", "/ui/"), ("GET", "/ui/login"), ("POST", "/ui/login")}
#: Plausible values for each path parameter, and the query a page cannot do without.
PARAMS = {"name": "faq", "what": "key"}
QUERY = {"/ui/prompts/{name}/confirm": "?environment=production&version=1"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Walking every page with a bad token is more failed authentications than the throttle lets
    one address make (429 after 20): the throttle has its own tests."""
    return settings.model_copy(update={"auth_failure_limit": 0})


def _pages() -> list[tuple[str, str]]:
    found = []
    for method, route in ui_routes():
        if (method, route) not in PUBLIC:
            path = re.sub(r"{(\w+)}", lambda m: PARAMS.get(m.group(1), "1"), route)
            found.append((method, path + QUERY.get(route, "")))
    return found


def _sent_to_sign_in(response: httpx.Response, path: str) -> None:
    assert response.status_code == 303, (path, response.status_code, response.text[:200])
    assert response.headers["location"] == f"/ui/login?next={path}"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    "cookies",
    [{}, {"pk_session": "pk_not_a_session"}, {"pk_session": ""}],
    ids=["no-cookie", "unknown-token", "empty-cookie"],
)
def test_every_page_sends_a_visitor_without_a_session_to_sign_in(
    live_server: LiveServer, cookies: dict[str, str]
) -> None:
    pages = _pages()
    assert len(pages) >= 33  # the walk found the UI's routes
    with httpx.Client(base_url=live_server.url, cookies=cookies) as visitor:
        for method, path in pages:
            data = {"csrf": "x"} if method == "POST" else None
            _sent_to_sign_in(visitor.request(method, path, data=data), path.split("?")[0])


def test_an_api_key_is_not_a_session(live_server: LiveServer) -> None:
    with live_server.client() as http:
        key = http.post("/v1/keys", json={"name": "ui", "role": "admin"}).json()["secret"]
    with httpx.Client(base_url=live_server.url, cookies={"pk_session": key}) as visitor:
        _sent_to_sign_in(visitor.get("/ui/prompts"), "/ui/prompts")
        _sent_to_sign_in(visitor.post("/ui/preview", data={"csrf": "x"}), "/ui/preview")


def test_a_visitor_is_sent_to_sign_in_before_the_address_is_judged(live_server: LiveServer) -> None:
    """A stale bookmark with a malformed id, or a confirm link missing its query, opens the sign-in
    (and then the page's own answer), not a JSON validation error for someone not signed in."""
    with httpx.Client(base_url=live_server.url) as visitor:
        _sent_to_sign_in(visitor.get("/ui/evaluations/not-a-number"), "/ui/evaluations/not-a-number")
        _sent_to_sign_in(visitor.get("/ui/prompts/faq/confirm"), "/ui/prompts/faq/confirm")


def test_an_error_page_shows_the_signed_in_user(live_server: LiveServer) -> None:
    with live_server.client() as http:
        created = http.post(
            "/v1/users",
            json={"email": "pm@example.com", "role": "viewer", "password": PASSWORD, "name": "Pat"},
        )
        assert created.status_code == 201, created.text
    with httpx.Client(base_url=live_server.url) as browser:
        signed = browser.post("/ui/login", data={"email": "pm@example.com", "password": PASSWORD})
        assert signed.status_code == 303, signed.text
        missing = browser.get("/ui/prompts/no-such-prompt")
        assert missing.status_code == 404
        assert "pm@example.com · viewer · default" in missing.text  # the page knows who is looking
        refused = browser.post("/ui/prompts", data={"csrf": "wrong"})
        assert refused.status_code == 403 and "CSRF" in refused.text
        assert "pm@example.com · viewer · default" in refused.text
        browser.post("/ui/logout", data={"csrf": _csrf(browser.get("/ui/prompts").text)})
        _sent_to_sign_in(browser.get("/ui/prompts"), "/ui/prompts")  # the ended session opens nothing


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found is not None, html[:500]
    return found.group(1)
