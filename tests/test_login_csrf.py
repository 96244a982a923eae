"""Login CSRF: another site cannot sign a browser in to the attacker's account.

A page elsewhere auto-submitting a form to `/ui/login` with the attacker's credentials would leave
the victim working, unknowingly, in the attacker's session (what they type lands in the
attacker's project). Browsers say where a form post comes from (`Origin`, `Sec-Fetch-Site`); the
sign-in refuses any post another site made. Checked with Chromium itself and header by header.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import ADMIN_KEY, LiveServer
from tests.helpers import bearer
from tests.test_ui import PASSWORD, browser  # noqa: F401 - the Chromium fixture

FIELDS = {"email": "mallory@example.com", "password": PASSWORD, "next": "/ui/prompts"}


def _mallory(client: TestClient | httpx.Client) -> None:
    created = client.post(
        "/v1/users",
        json={"email": FIELDS["email"], "role": "editor", "password": PASSWORD},
        headers=bearer(ADMIN_KEY),
    )
    assert created.status_code == 201, created.text


def _sessions(client: TestClient | httpx.Client) -> int:
    found = client.get("/v1/audit", params={"action": "session.created"}, headers=bearer(ADMIN_KEY))
    total: int = found.json()["total"]
    return total


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},  # a sandboxed frame, a data: URL
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain is another party too
        {"Origin": "http://testserver.evil.example", "Sec-Fetch-Site": "cross-site"},
    ],
    ids=["foreign-origin", "null-origin", "cross-site", "same-site", "both"],
)
def test_a_cross_site_sign_in_is_refused_and_opens_no_session(
    client: TestClient, headers: dict[str, str]
) -> None:
    _mallory(client)
    before = _sessions(client)
    response = client.post("/ui/login", data=FIELDS, headers=headers, follow_redirects=False)
    assert response.status_code == 403, response.text
    assert "another site" in response.text
    assert "set-cookie" not in response.headers
    assert _sessions(client) == before


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},  # typed or bookmarked
        {},  # not a browser (curl, scripts): no CSRF without a browser
    ],
    ids=["same-origin", "user-initiated", "no-browser"],
)
def test_a_same_origin_sign_in_works(client: TestClient, headers: dict[str, str]) -> None:
    _mallory(client)
    response = client.post("/ui/login", data=FIELDS, headers=headers, follow_redirects=False)
    assert response.status_code == 303, response.text
    assert "pk_session=" in response.headers["set-cookie"]


@pytest.fixture
def evil_site() -> Iterator[tuple[str, dict[str, str]]]:
    """Another origin (another port) serving a page that posts the attacker's sign-in."""
    target: dict[str, str] = {}

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in FIELDS.items())
            html = (
                f'<form id="f" method="post" action="{target["url"]}/ui/login">{inputs}</form>'
                '<script>document.getElementById("f").submit()</script>'
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", target
    server.shutdown()
    server.server_close()


def test_chromium_posting_from_another_site_is_not_signed_in(
    browser: object,  # noqa: F811 - the fixture imported above
    live_server: LiveServer,
    evil_site: tuple[str, dict[str, str]],
) -> None:
    url, target = evil_site
    target["url"] = live_server.url.replace("127.0.0.1", "localhost")  # another origin than the page's
    with live_server.client() as http:
        _mallory(http)
        before = _sessions(http)
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    with page.expect_navigation(url=f"{target['url']}/ui/login"):
        page.goto(url)
    assert "another site" in page.content()
    assert [c for c in context.cookies() if c["name"] == "pk_session"] == []
    with live_server.client() as http:
        assert _sessions(http) == before
    # the real sign-in form, on the server's own origin, still works
    page.goto(f"{target['url']}/ui/login")
    page.get_by_label("Email").fill(FIELDS["email"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/prompts")
    assert [c["name"] for c in context.cookies() if c["name"] == "pk_session"] == ["pk_session"]
    context.close()
