"""What a webhook URL must not do: leak its own secrets, or reach what the server can reach.

Only loopback addresses are ever connected to. An address the egress policy refuses is a loopback
one outside the allow-list (127.0.0.2) where a `Listener` counts connection attempts: a refusal
must leave it at zero. Names under `.invalid` (RFC 2606: they never resolve) reach a receiver only
through a resolver the test controls, which shows that the connection went to the address that
was checked and was not resolved again.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from fastapi.testclient import TestClient

from promptkeeper.access.service import DEFAULT_PROJECT, Actor
from promptkeeper.app import create_app
from promptkeeper.audit import webhooks
from promptkeeper.audit.delivery import Dispatcher
from promptkeeper.audit.models import WebhookDelivery
from promptkeeper.audit.schemas import WebhookCreate
from promptkeeper.bootstrap import create_project
from promptkeeper.config import Settings
from promptkeeper.core.egress import EgressPolicy
from promptkeeper.db.engine import Database
from tests.conftest import ADMIN_KEY
from tests.helpers import create_prompt, error_of
from tests.test_webhooks import (
    FAST,
    OpenApi,
    Receiver,
    _Server,
    deliveries,
    new_webhook,
    settled,
    wait_for,
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def open_api(settings: Settings) -> Iterator[OpenApi]:
    """The app with test_webhooks' fast settings (plus overrides), closed at the end of the test."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> TestClient:
            app = create_app(settings.model_copy(update={**FAST, **overrides}))
            client = TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
            return stack.enter_context(client)

        yield start


TOKEN = "tok-5ecret-0123456789abcdef"
USER, PASSWORD = "hook-user-5e", "hook-pa55word-5e"
LOOPBACK_ONLY = {"webhook_egress": "public", "webhook_allow": ["127.0.0.1/32"]}


class Listener:
    """A TCP port on 127.0.0.2 that counts the connections made to it and answers none."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.2", 0))
        self._socket.listen(64)
        self._socket.setblocking(False)
        self.port: int = self._socket.getsockname()[1]
        self._count = 0

    def attempts(self) -> int:
        while True:
            try:
                connection, _ = self._socket.accept()
            except BlockingIOError:
                return self._count
            connection.close()
            self._count += 1

    def close(self) -> None:
        self._socket.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    watched = Listener()
    yield watched
    watched.close()


def _app(settings: Settings, **overrides: Any) -> TestClient:
    app = create_app(settings.model_copy(update={**FAST, **overrides}))
    return TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"})


# --- item 5: a URL's credentials never leave its webhook -----------------------------------------


def test_url_secrets_stay_out_of_logs_the_delivery_log_and_the_audit_log(
    open_api: OpenApi, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "promptkeeper"):
        caplog.set_level(logging.DEBUG, logger=name)
    api = open_api(**LOOPBACK_ONLY)
    receiver.fail(1, status=500)
    url = f"http://{USER}:{PASSWORD}@127.0.0.1:{receiver.port}/loop?token={TOKEN}"
    hook = new_webhook(api, url, ["prompt.created"])
    dead_url = f"http://{USER}:{PASSWORD}@127.0.0.1:9/x?token={TOKEN}"  # nothing listens: the error path
    dead = new_webhook(api, dead_url, ["prompt.created"])
    create_prompt(api, "greeting")
    assert api.post(f"/v1/webhooks/{hook['id']}/ping").status_code == 202
    wait_for(lambda: settled(api, hook["id"]), what="the deliveries")
    wait_for(lambda: settled(api, dead["id"]), what="the failed delivery")
    patched = api.patch(f"/v1/webhooks/{hook['id']}", json={"url": url.replace(TOKEN, TOKEN + "-2")})
    assert patched.status_code == 200

    # The receiver still gets its token and its credentials.
    received = receiver.received()
    assert len(received) == 3
    assert all(r.path == f"/loop?token={TOKEN}" for r in received)
    credentials = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert all(r.headers["authorization"] == f"Basic {credentials}" for r in received)
    assert deliveries(api, dead["id"])[0]["status"] == "failed"

    shown = {
        "logs": caplog.text,
        "deliveries": json.dumps(deliveries(api, hook["id"]) + deliveries(api, dead["id"])),
        "audit": api.get("/v1/audit", params={"limit": 500}).text,
    }
    assert "HTTP Request: POST" in shown["logs"]  # httpx's line was captured, and redacted
    for where, text in shown.items():
        for secret in (TOKEN, USER, PASSWORD):
            assert secret not in text, f"{secret!r} appears in the {where}"
    # What the audit log still says: which host, and that the URL changed.
    entry = api.get("/v1/audit", params={"action": "webhook.updated"}).json()["items"][0]
    assert entry["summary"]["before"]["url"].startswith("http://***@127.0.0.1:")


# --- item 6: the egress policy -------------------------------------------------------------------

REFUSED = [
    ("http://127.0.0.1/hook", "127.0.0.1"),
    ("http://127.0.0.2:8080/hook", "127.0.0.2"),
    ("http://localhost:8080/hook", "localhost"),
    ("http://LOCALHOST./hook", "localhost"),
    ("http://app.localhost/hook", "app.localhost"),
    ("http://0x7f000001/hook", "127.0.0.1"),
    ("http://2130706433/hook", "127.0.0.1"),
    ("http://0177.0.0.1/hook", "127.0.0.1"),
    ("http://127.1/hook", "127.0.0.1"),
    ("http://[::1]/hook", "::1"),
    ("http://[::ffff:127.0.0.1]/hook", "127.0.0.1"),
    ("http://[::ffff:7f00:1]/hook", "127.0.0.1"),
    ("http://0.0.0.0/hook", "0.0.0.0"),
    ("http://0/hook", "0.0.0.0"),
    ("http://[::]/hook", "::"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "fd00:ec2::254"),
    ("http://100.100.100.200/latest/meta-data/", "100.100.100.200"),
    ("http://10.0.0.1/hook", "10.0.0.1"),
    ("http://172.16.5.4/hook", "172.16.5.4"),
    ("http://192.168.1.1/hook", "192.168.1.1"),
    ("http://[fe80::1]/hook", "fe80::1"),
    ("http://224.0.0.1/hook", "224.0.0.1"),
    ("http://[2002:7f00:1::]/hook", "127.0.0.1"),
    ("http://[64:ff9b::a9fe:a9fe]/hook", "169.254.169.254"),
    ("http://[::7f00:1]/hook", "::7f00:1"),
]


def test_internal_addresses_are_refused_at_creation_and_update(settings: Settings) -> None:
    """Checked without connecting to anything: the address is in the URL, or `localhost`."""
    with _app(settings, webhook_egress="public", webhook_allow=[]) as api:
        hook = new_webhook(api, "https://hooks.pk.invalid/x", ["version.created"], active=False)
        for url, named in REFUSED:
            # Inactive, for an event that never happens: were it accepted, nothing would be sent.
            response = api.post("/v1/webhooks", json={"url": url, "events": ["nothing.yet"], "active": False})
            assert response.status_code == 422, (url, response.text)
            error = error_of(response)
            assert error["details"]["errors"][0]["field"] == "body.url", url
            assert "body.url" in error["message"] and named in error["message"], (url, error["message"])
            assert "PROMPTKEEPER_WEBHOOK_ALLOW" in error["message"]
            # An update to it is refused too, and changes nothing.
            response = api.patch(f"/v1/webhooks/{hook['id']}", json={"url": url, "description": "moved"})
            assert response.status_code == 422, (url, response.text)
            assert error_of(response)["details"]["errors"][0]["field"] == "body.url"
        after = api.get(f"/v1/webhooks/{hook['id']}").json()
        assert (after["url"], after["description"]) == ("https://hooks.pk.invalid/x", "")
        assert [e["action"] for e in api.get("/v1/audit").json()["items"]] == ["webhook.created"]


def test_the_allow_list_admits_named_networks_and_hosts(settings: Settings) -> None:
    allow = ["127.0.0.1/32", "10.1.0.0/16", "hooks.corp.invalid", "*.ci.invalid"]
    with _app(settings, webhook_egress="public", webhook_allow=allow) as api:
        for url in [
            "http://127.0.0.1:9/hook",
            "http://10.1.2.3/hook",
            "http://localhost:9/hook",  # resolves to 127.0.0.1 (allowed) and ::1 (refused when sent)
            "http://hooks.corp.invalid/hook",
            "https://build.ci.invalid/hook",
            "https://hooks.pk.invalid/hook",  # a name: checked against what it resolves to, at delivery
        ]:
            response = api.post("/v1/webhooks", json={"url": url, "events": ["nothing.yet"], "active": False})
            assert response.status_code == 201, (url, response.text)
        for url in ["http://127.0.0.2/hook", "http://10.2.0.1/hook", "http://[::1]/hook"]:
            response = api.post("/v1/webhooks", json={"url": url, "events": ["nothing.yet"], "active": False})
            assert response.status_code == 422, (url, response.text)


def test_the_default_refuses_internal_addresses_in_production_only(settings: Settings) -> None:
    """`auto`: PostgreSQL is the production mode (refuse); embedded SQLite reaches anything."""
    with _app(settings, webhook_allow=[]) as api:
        response = api.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["x.y"]})
        if settings.database_url.startswith("postgresql"):
            assert response.status_code == 422, response.text
            assert "body.url" in error_of(response)["message"]
        else:
            assert response.status_code == 201, response.text
    assert EgressPolicy.from_settings(settings.model_copy(update={"webhook_egress": "any"})).mode == "any"


def test_delivery_time_check_refuses_webhooks_stored_before_the_policy(
    settings: Settings, listener: Listener
) -> None:
    """A webhook created while anything was allowed is refused when it is sent, unconnected."""
    with _app(settings, webhook_egress="any") as api:
        hook = new_webhook(api, f"http://127.0.0.2:{listener.port}/hook", ["prompt.created"])
    with _app(settings, **LOOPBACK_ONLY) as api:
        create_prompt(api, "greeting")
        log = wait_for(lambda: settled(api, hook["id"]), what="the refused delivery")
    assert [(d["status"], d["attempts"], d["last_status_code"]) for d in log] == [("failed", 1, None)]
    assert "egress policy" in log[0]["last_error"] and "127.0.0.2" in log[0]["last_error"]
    assert listener.attempts() == 0


class _Leaky(BaseHTTPRequestHandler):
    """An internal service: an error page full of secrets, and a redirect to another address."""

    decoy_port = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path.startswith("/redirect"):
            self.send_response(307, "Go Elsewhere internal-reason")
            self.send_header("Location", f"http://127.0.0.2:{self.decoy_port}/steal?internal-location")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"Traceback: db password=internal-body-secret\n"
        self.send_response(500, "internal-reason-secret")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_answers_are_not_read_back_and_redirects_not_followed(open_api: OpenApi, listener: Listener) -> None:
    handler = type("Leaky", (_Leaky,), {"decoy_port": listener.port})
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        api = open_api(webhook_max_attempts=1, **LOOPBACK_ONLY)
        base = f"http://127.0.0.1:{server.server_address[1]}"
        error = new_webhook(api, f"{base}/error", ["prompt.created"])
        redirect = new_webhook(api, f"{base}/redirect", ["prompt.created"])
        create_prompt(api, "greeting")
        (failed,) = wait_for(lambda: settled(api, error["id"]), what="the failed delivery")
        (moved,) = wait_for(lambda: settled(api, redirect["id"]), what="the redirected delivery")
    finally:
        server.shutdown()
        server.server_close()
    assert (failed["status"], failed["last_status_code"], failed["last_error"]) == (
        "failed",
        500,
        "HTTP 500 Internal Server Error",
    )
    assert (moved["status"], moved["last_status_code"], moved["last_error"]) == (
        "failed",
        307,
        "HTTP 307 Temporary Redirect",
    )
    assert listener.attempts() == 0  # the redirect was not followed
    shown = json.dumps(deliveries(api, error["id"]) + deliveries(api, redirect["id"]))
    assert "internal" not in shown


def test_dns_rebinding_cannot_swap_the_checked_address(settings: Settings, listener: Listener) -> None:
    """The name is resolved once per connection, every address is checked, and the connection goes
    to a checked address: a second answer pointing inside is refused before any connection."""
    settings = settings.model_copy(update={**FAST, **LOOPBACK_ONLY})
    target = Receiver()
    answers: dict[str, list[list[str]]] = {
        "rebind.pk.invalid": [["127.0.0.1"], ["127.0.0.2"]],
        "mixed.pk.invalid": [["127.0.0.2", "127.0.0.1"]],
        "inside.pk.invalid": [["127.0.0.2", "::1"]],
    }
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        queue = answers[host]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    setup = Database(settings)
    try:
        with setup.write_session() as session:
            project = create_project(session=session, name=DEFAULT_PROJECT)
            actor = Actor.system("test", project.id)
            policy = EgressPolicy.from_settings(settings)
            hooks = {}
            for name, port in [
                ("rebind.pk.invalid", target.port),
                ("mixed.pk.invalid", target.port),
                ("inside.pk.invalid", listener.port),
            ]:
                hook, _ = webhooks.create_webhook(
                    session=session,
                    actor=actor,
                    data=WebhookCreate(url=f"http://{name}:{port}/{name}", events=["nothing.yet"]),
                    egress=policy,
                )
                hooks[name] = hook.id
            for name, count in [("rebind.pk.invalid", 2), ("mixed.pk.invalid", 1), ("inside.pk.invalid", 1)]:
                for n in range(count):
                    session.add(
                        WebhookDelivery(
                            webhook_id=hooks[name], project_id=project.id, event="load.test", payload={"n": n}
                        )
                    )
            session.commit()
    finally:
        setup.dispose()

    async def run() -> Dispatcher:
        database = Database(settings)
        dispatcher = Dispatcher(database, settings, concurrency=1, resolver=resolve)
        try:
            await dispatcher.start()
            deadline = time.monotonic() + 20
            while dispatcher.sent + dispatcher.failed_attempts < 4:
                assert time.monotonic() < deadline, "deliveries did not finish"
                await asyncio.sleep(0.02)
        finally:
            await dispatcher.stop()
            database.dispose()
        return dispatcher

    try:
        dispatcher = asyncio.run(run())
    finally:
        target.close()
    assert (dispatcher.sent, dispatcher.failed_attempts) == (2, 2)
    assert sorted(r.path for r in target.received()) == ["/mixed.pk.invalid", "/rebind.pk.invalid"]
    assert listener.attempts() == 0
    assert sorted(asked) == sorted(["rebind.pk.invalid"] * 2 + ["mixed.pk.invalid", "inside.pk.invalid"])
    database = Database(settings)
    try:
        with database.session() as session:
            rows = session.query(WebhookDelivery).order_by(WebhookDelivery.id).all()
            outcomes = [(r.webhook_id, r.status, r.attempts) for r in rows]
            errors = [r.last_error for r in rows if r.status == "failed"]
    finally:
        database.dispose()
    assert sorted(s for _, s, _ in outcomes) == ["delivered", "delivered", "failed", "failed"]
    assert all(attempts == 1 for _, _, attempts in outcomes)  # a refusal is not retried
    assert all("egress policy" in e and "127.0.0.2" in e for e in errors)
