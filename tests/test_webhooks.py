"""Webhooks end to end: a real HTTP receiver on 127.0.0.1, the dispatcher of a running app.

The receiver records every request and can be told to answer an error, or to hang, for the next
N requests. Waits poll with a deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text

from promptkeeper import __version__
from promptkeeper.access.service import DEFAULT_PROJECT, Actor, Role, create_api_key, get_project
from promptkeeper.app import create_app
from promptkeeper.audit import webhooks
from promptkeeper.audit.delivery import Dispatcher
from promptkeeper.audit.models import WebhookDelivery
from promptkeeper.audit.schemas import WebhookCreate
from promptkeeper.audit.signing import retry_delay, sign, verify
from promptkeeper.bootstrap import create_project
from promptkeeper.config import Settings
from promptkeeper.core.egress import EgressPolicy
from promptkeeper.core.secrets import SecretBox
from promptkeeper.db.engine import Database
from tests.conftest import ADMIN_KEY
from tests.helpers import add_version, create_prompt, deploy, error_of

T = TypeVar("T")

#: Connection refused at once: for webhooks whose deliveries do not matter to a test.
NOWHERE = "http://127.0.0.1:9/hook"
FAST = {"webhook_retry_base": 0.05, "webhook_timeout": 1.0, "webhook_max_attempts": 3}


# --- the receiver --------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data

    @property
    def event(self) -> str:
        return self.headers["x-promptkeeper-event"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeout) breaks the pipe; that is the point of those tests


class Receiver:
    """An HTTP server that records POSTs; `fail(n, status)` or `hang(n, seconds)` the next n."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._failures: list[tuple[int, float]] = []  # (status, hang seconds) for the next requests
        self._released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.requests.append(Received(self.path, headers, body, time.monotonic()))
                    status, hang = receiver._failures.pop(0) if receiver._failures else (200, 0.0)
                if hang:
                    receiver._released.wait(hang)
                self.send_response(status)
                self.send_header("Content-Length", "7")
                self.end_headers()
                self.wfile.write(b"nope!\n\n" if status >= 300 else b"thanks\n")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def fail(self, count: int, status: int = 500) -> None:
        with self._lock:
            self._failures.extend([(status, 0.0)] * count)

    def hang(self, count: int, seconds: float) -> None:
        with self._lock:
            self._failures.extend([(200, seconds)] * count)

    def received(self, path: str | None = None, event: str | None = None) -> list[Received]:
        with self._lock:
            found = list(self.requests)
        return [r for r in found if (path is None or r.path == path) and (event is None or r.event == event)]

    def close(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()


def wait_for(check: Callable[[], T | None], timeout: float = 15.0, what: str = "condition") -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


OpenApi = Callable[..., TestClient]


@pytest.fixture
def open_api(settings: Settings) -> Iterator[OpenApi]:
    """Start the app with fast webhook settings (plus overrides); closed at the end of the test."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> TestClient:
            app = create_app(settings.model_copy(update={**FAST, **overrides}))
            client = TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
            return stack.enter_context(client)

        yield start


@pytest.fixture
def api(open_api: OpenApi) -> TestClient:
    return open_api()


def new_webhook(api: TestClient, url: str, events: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    response = api.post("/v1/webhooks", json={"url": url, "events": events or ["*"], **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def deliveries(api: TestClient, hook_id: int, **params: Any) -> list[dict[str, Any]]:
    response = api.get(f"/v1/webhooks/{hook_id}/deliveries", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def settled(api: TestClient, hook_id: int) -> list[dict[str, Any]] | None:
    """The delivery log once nothing is pending any more."""
    items = deliveries(api, hook_id)
    return items if items and all(d["status"] != "pending" for d in items) else None


def make_key(settings: Settings, role: Role, project: str = DEFAULT_PROJECT, name: str | None = None) -> str:
    database = Database(settings)
    try:
        with database.write_session() as session:
            owner = (
                get_project(session=session, name=project)
                if project == DEFAULT_PROJECT
                else create_project(session=session, name=project)
            )
            secret = create_api_key(
                session=session, project=owner, name=name or f"{role.value}-key", role=role
            ).secret
            session.commit()
        return secret
    finally:
        database.dispose()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- signing (pure) ------------------------------------------------------------------------------


def test_sign_is_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    body = b'{"event":"ping"}'
    expected = hmac.new(b"s3cret-s3cret-s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("s3cret-s3cret-s3cret", 1_700_000_000, body) == f"sha256={expected}"
    assert sign("s3cret-s3cret-s3cret", "1700000000", body.decode()) == f"sha256={expected}"


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "now", "expected"),
    [
        ("right-secret-0123", "1700000000", b"{}", 1_700_000_000, True),
        ("wrong-secret-0123", "1700000000", b"{}", 1_700_000_000, False),
        ("right-secret-0123", "1700000001", b"{}", 1_700_000_000, False),  # timestamp is signed
        ("right-secret-0123", "1700000000", b"{ }", 1_700_000_000, False),  # body is signed
        ("right-secret-0123", "1700000000", b"{}", 1_700_000_299, True),  # within tolerance
        ("right-secret-0123", "1700000000", b"{}", 1_700_000_301, False),  # too old: a replay
        ("right-secret-0123", "not-a-time", b"{}", 1_700_000_000, False),
    ],
)
def test_verify(secret: str, timestamp: str, body: bytes, now: float, expected: bool) -> None:
    signature = sign("right-secret-0123", 1_700_000_000, b"{}")
    assert verify(secret, timestamp, body, signature, now=now) is expected


def test_verify_rejects_malformed_signatures() -> None:
    assert not verify("right-secret-0123", 1, b"{}", "", tolerance=None)
    assert not verify("right-secret-0123", 1, b"{}", "sha1=abc", tolerance=None)
    assert verify("right-secret-0123", 1, b"{}", sign("right-secret-0123", 1, b"{}"), tolerance=None)


@pytest.mark.parametrize(
    ("attempts", "base", "expected"),
    [(1, 2.0, 2.0), (2, 2.0, 4.0), (3, 2.0, 8.0), (8, 2.0, 256.0), (12, 2.0, 3600.0), (200, 2.0, 3600.0)],
)
def test_retry_delay_doubles_up_to_an_hour(attempts: int, base: float, expected: float) -> None:
    assert retry_delay(attempts, base) == expected


# --- managing webhooks ---------------------------------------------------------------------------


def test_secret_is_returned_once(api: TestClient, receiver: Receiver) -> None:
    created = new_webhook(api, receiver.url(), ["version.*"], description="CI")
    secret = created["secret"]
    assert len(secret) >= 32
    chosen = new_webhook(api, receiver.url(), secret="my-own-secret-of-some-length")
    assert chosen["secret"] == "my-own-secret-of-some-length"

    one = api.get(f"/v1/webhooks/{created['id']}")
    assert one.status_code == 200
    assert "secret" not in one.json()
    assert one.json() == {k: v for k, v in created.items() if k != "secret"}
    listed = api.get("/v1/webhooks").json()
    assert [w["id"] for w in listed] == [created["id"], chosen["id"]]
    assert all("secret" not in w for w in listed)
    patched = api.patch(f"/v1/webhooks/{created['id']}", json={"description": "CI builds"})
    assert patched.status_code == 200 and "secret" not in patched.json()
    assert api.post(f"/v1/webhooks/{created['id']}/ping").status_code == 202
    assert api.delete(f"/v1/webhooks/{chosen['id']}").status_code == 204

    audit = api.get("/v1/audit", params={"action": "webhook.*"}).text
    for value in (secret, "my-own-secret-of-some-length"):
        assert value not in audit
        assert value not in json.dumps(deliveries(api, created["id"]))
    actions = [e["action"] for e in api.get("/v1/audit", params={"action": "webhook.*"}).json()["items"]]
    assert actions == [
        "webhook.deleted",
        "webhook.pinged",
        "webhook.updated",
        "webhook.created",
        "webhook.created",
    ]


def test_update_and_delete(api: TestClient, receiver: Receiver) -> None:
    hook = new_webhook(api, receiver.url(), ["version.*"])
    response = api.patch(
        f"/v1/webhooks/{hook['id']}",
        json={"url": receiver.url("/other"), "events": ["deployment.*", "deployment.*"], "active": False},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["url"] == receiver.url("/other")
    assert body["events"] == ["deployment.*"]
    assert body["active"] is False
    entry = api.get("/v1/audit", params={"action": "webhook.updated"}).json()["items"][0]
    assert entry["target"] == str(hook["id"])
    assert entry["summary"]["before"] == {"url": receiver.url(), "events": ["version.*"], "active": True}
    assert entry["summary"]["after"] == {
        "url": receiver.url("/other"),
        "events": ["deployment.*"],
        "active": False,
    }

    # An inactive webhook cannot be pinged, and receives nothing.
    response = api.post(f"/v1/webhooks/{hook['id']}/ping")
    assert response.status_code == 409 and "inactive" in error_of(response)["message"]

    assert api.delete(f"/v1/webhooks/{hook['id']}").status_code == 204
    response = api.get(f"/v1/webhooks/{hook['id']}")
    assert response.status_code == 404
    assert error_of(response)["message"] == f"webhook {hook['id']} not found"
    assert api.delete(f"/v1/webhooks/{hook['id']}").status_code == 404
    deleted = api.get("/v1/audit", params={"action": "webhook.deleted"}).json()["items"]
    assert deleted[0]["summary"]["before"]["url"] == receiver.url("/other")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/hook", "events": ["*"]}, "body.url"),
        ({"url": "http://", "events": ["*"]}, "body.url"),
        ({"url": "example.com/hook", "events": ["*"]}, "body.url"),
        ({"url": "http://example.com:99999/", "events": ["*"]}, "body.url"),
        ({"url": "http://example.com/a b", "events": ["*"]}, "body.url"),
        ({"events": ["*"]}, "body.url"),
        ({"url": "https://example.com/hook", "events": []}, "body.events"),
        ({"url": "https://example.com/hook"}, "body.events"),
        ({"url": "https://example.com/hook", "events": ["Version.Created"]}, "body.events"),
        ({"url": "https://example.com/hook", "events": ["version..created"]}, "body.events"),
        ({"url": "https://example.com/hook", "events": ["*.created"]}, "body.events"),
        ({"url": "https://example.com/hook", "events": "version.created"}, "body.events"),
        ({"url": "https://example.com/hook", "events": ["*"], "secret": "short"}, "body.secret"),
        ({"url": "https://example.com/hook", "events": ["*"], "surprise": 1}, "body.surprise"),
    ],
)
def test_create_validation(client: TestClient, body: dict[str, Any], field: str) -> None:
    response = client.post("/v1/webhooks", json=body)
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["details"]["errors"][0]["field"] == field
    assert field in error["message"]


def test_update_validation(client: TestClient) -> None:
    hook = new_webhook(client, NOWHERE)
    for body, field in [
        ({"url": None}, "body.url"),
        ({"events": None}, "body.events"),
        ({"active": None}, "body.active"),
        ({"events": ["NOPE"]}, "body.events"),
        ({"secret": "0123456789abcdefXYZ"}, "body.secret"),
    ]:
        response = client.patch(f"/v1/webhooks/{hook['id']}", json=body)
        assert response.status_code == 422, (body, response.text)
        assert error_of(response)["details"]["errors"][0]["field"] == field
    response = client.get("/v1/webhooks/0")
    assert response.status_code == 422 and "path.webhook_id" in error_of(response)["message"]
    response = client.get(f"/v1/webhooks/{hook['id']}/deliveries", params={"status": "lost"})
    assert response.status_code == 422 and "query.status" in error_of(response)["message"]


def test_webhook_routes_need_admin(client: TestClient, settings: Settings) -> None:
    hook = new_webhook(client, NOWHERE)
    for role in (Role.editor, Role.approver, Role.viewer):
        headers = bearer(make_key(settings, role, name=f"{role.value}-key"))
        for method, path in [
            ("GET", "/v1/webhooks"),
            ("POST", "/v1/webhooks"),
            ("GET", f"/v1/webhooks/{hook['id']}"),
            ("PATCH", f"/v1/webhooks/{hook['id']}"),
            ("DELETE", f"/v1/webhooks/{hook['id']}"),
            ("GET", f"/v1/webhooks/{hook['id']}/deliveries"),
            ("POST", f"/v1/webhooks/{hook['id']}/ping"),
            ("POST", f"/v1/webhooks/{hook['id']}/deliveries/1/redeliver"),
        ]:
            body = {"url": "https://example.com/x", "events": ["*"]} if method in ("POST", "PATCH") else None
            response = client.request(method, path, headers=headers, json=body)
            assert response.status_code == 403, (role, method, path, response.text)
            assert error_of(response)["code"] == "permission_denied"


def test_webhooks_of_another_project_are_not_found(api: TestClient, settings: Settings) -> None:
    other = bearer(make_key(settings, Role.admin, project="other", name="other-admin"))
    theirs = api.post("/v1/webhooks", json={"url": NOWHERE, "events": ["*"]}, headers=other)
    assert theirs.status_code == 201
    hook_id = theirs.json()["id"]
    ping = api.post(f"/v1/webhooks/{hook_id}/ping", headers=other)
    assert ping.status_code == 202
    delivery_id = ping.json()["id"]
    ours = new_webhook(api, NOWHERE)

    assert [w["id"] for w in api.get("/v1/webhooks").json()] == [ours["id"]]
    for method, path in [
        ("GET", f"/v1/webhooks/{hook_id}"),
        ("PATCH", f"/v1/webhooks/{hook_id}"),
        ("DELETE", f"/v1/webhooks/{hook_id}"),
        ("GET", f"/v1/webhooks/{hook_id}/deliveries"),
        ("POST", f"/v1/webhooks/{hook_id}/ping"),
        ("POST", f"/v1/webhooks/{hook_id}/deliveries/{delivery_id}/redeliver"),
    ]:
        response = api.request(method, path, json={"description": "mine now"} if method == "PATCH" else None)
        assert response.status_code == 404, (method, path, response.text)
        assert error_of(response)["message"] == f"webhook {hook_id} not found"
    # Their delivery under our webhook's id is not found either.
    response = api.post(f"/v1/webhooks/{ours['id']}/deliveries/{delivery_id}/redeliver")
    assert response.status_code == 404
    assert error_of(response)["message"] == f"delivery {delivery_id} not found"
    # Their audit log is theirs.
    assert api.get("/v1/audit", params={"action": "webhook.*"}).json()["total"] == 1
    assert api.get("/v1/audit", params={"action": "webhook.*"}, headers=other).json()["total"] == 2


# --- delivery ------------------------------------------------------------------------------------


def test_delivery_is_signed(api: TestClient, receiver: Receiver) -> None:
    hook = new_webhook(api, receiver.url(), ["prompt.created"])
    create_prompt(api, "greeting")
    request = wait_for(lambda: receiver.received(event="prompt.created"), what="a delivery")[0]

    headers = request.headers
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == f"PromptKeeper-Webhooks/{__version__}"
    timestamp = headers["x-promptkeeper-timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    signature = headers["x-promptkeeper-signature"]
    assert signature.startswith("sha256=")
    assert verify(hook["secret"], timestamp, request.body, signature)
    assert not verify("some-other-secret-0123456789", timestamp, request.body, signature)
    assert not verify(hook["secret"], timestamp, request.body + b" ", signature)

    body = request.json
    assert body["event"] == "prompt.created"
    assert body["prompt"] == "greeting"
    assert body["actor"] == "admin"
    assert body["delivery"] == int(headers["x-promptkeeper-delivery"])
    log = wait_for(lambda: settled(api, hook["id"]), what="the delivery log")
    assert [(d["id"], d["status"], d["attempts"], d["last_status_code"]) for d in log] == [
        (body["delivery"], "delivered", 1, 200)
    ]
    assert log[0]["delivered_at"] is not None and log[0]["next_attempt_at"] is None
    assert log[0]["payload"] == {k: v for k, v in body.items() if k != "delivery"}


def test_events_filter(api: TestClient, receiver: Receiver) -> None:
    versions = new_webhook(api, receiver.url("/versions"), ["version.*"])
    everything = new_webhook(api, receiver.url("/all"), ["*"])
    create_prompt(api, "greeting")  # prompt.created, version.created
    add_version(api, "greeting", "Hi {{ name }}")  # version.created
    deploy(api, "greeting", "staging", 2)  # deployment.created

    wait_for(lambda: receiver.received("/all", "deployment.created"), what="deployment.created")
    wait_for(lambda: settled(api, versions["id"]), what="the version deliveries")
    wait_for(lambda: settled(api, everything["id"]), what="all deliveries")
    assert [r.event for r in receiver.received("/versions")] == ["version.created", "version.created"]
    assert sorted(r.event for r in receiver.received("/all")) == sorted(
        ["webhook.created", "prompt.created", "version.created", "version.created", "deployment.created"]
    )
    assert {d["event"] for d in deliveries(api, versions["id"])} == {"version.created"}


def test_ping(api: TestClient, receiver: Receiver) -> None:
    hook = new_webhook(api, receiver.url(), ["deployment.*"])
    response = api.post(f"/v1/webhooks/{hook['id']}/ping", headers={"X-Request-ID": "ping-1"})
    assert response.status_code == 202
    queued = response.json()
    assert queued["event"] == "ping" and queued["status"] == "pending" and queued["attempts"] == 0
    request = wait_for(lambda: receiver.received(event="ping"), what="the ping")[0]
    assert request.json["webhook"] == {"id": hook["id"], "url": hook["url"], "events": ["deployment.*"]}
    assert request.json["delivery"] == queued["id"]
    assert request.json["request_id"] == "ping-1"
    entry = api.get("/v1/audit", params={"request_id": "ping-1"}).json()["items"]
    assert [(e["action"], e["summary"]["after"]) for e in entry] == [
        ("webhook.pinged", {"delivery": queued["id"]})
    ]


def test_retries_with_backoff_then_succeeds(api: TestClient, receiver: Receiver) -> None:
    receiver.fail(2, status=503)
    hook = new_webhook(api, receiver.url(), ["version.created"])
    create_prompt(api, "greeting")

    log = wait_for(lambda: settled(api, hook["id"]), what="the delivery to succeed")
    assert [(d["status"], d["attempts"], d["last_status_code"], d["last_error"]) for d in log] == [
        ("delivered", 3, 200, "")
    ]
    attempts = receiver.received()
    assert len(attempts) == 3
    assert len({r.headers["x-promptkeeper-delivery"] for r in attempts}) == 1
    # base 0.05 s: the second attempt waits >= 0.05 s, the third >= 0.1 s.
    assert attempts[1].at - attempts[0].at >= 0.05 * 0.9
    assert attempts[2].at - attempts[1].at >= 0.1 * 0.9
    # Each attempt is signed afresh and verifies.
    for request in attempts:
        headers = request.headers
        assert verify(
            hook["secret"],
            headers["x-promptkeeper-timestamp"],
            request.body,
            headers["x-promptkeeper-signature"],
        )


def test_fails_after_max_attempts_then_redeliver(api: TestClient, receiver: Receiver) -> None:
    receiver.fail(3, status=500)  # max attempts is 3 in these tests
    hook = new_webhook(api, receiver.url(), ["version.created"])
    create_prompt(api, "greeting")

    log = wait_for(lambda: settled(api, hook["id"]), what="the delivery to fail")
    assert len(log) == 1
    failed = log[0]
    assert (failed["status"], failed["attempts"], failed["last_status_code"]) == ("failed", 3, 500)
    # The status, never the receiver's body (tests/test_webhook_safety.py: it may be an internal service)
    assert failed["last_error"] == "HTTP 500 Internal Server Error" and "nope!" not in failed["last_error"]
    assert len(receiver.received()) == 3
    assert deliveries(api, hook["id"], status="failed")[0]["id"] == failed["id"]
    assert deliveries(api, hook["id"], status="delivered") == []

    response = api.post(f"/v1/webhooks/{hook['id']}/deliveries/{failed['id']}/redeliver")
    assert response.status_code == 202, response.text
    assert (response.json()["status"], response.json()["attempts"]) == ("pending", 0)
    log = wait_for(
        lambda: [d for d in deliveries(api, hook["id"]) if d["status"] == "delivered"], what="the redelivery"
    )
    assert (log[0]["id"], log[0]["attempts"], log[0]["last_error"]) == (failed["id"], 1, "")
    assert len(receiver.received()) == 4
    entry = api.get("/v1/audit", params={"action": "webhook.redelivered"}).json()["items"][0]
    assert entry["summary"]["after"] == {"delivery": failed["id"], "event": "version.created"}
    response = api.post(f"/v1/webhooks/{hook['id']}/deliveries/999999/redeliver")
    assert response.status_code == 404 and error_of(response)["message"] == "delivery 999999 not found"


def test_gone_deactivates_the_webhook(api: TestClient, receiver: Receiver) -> None:
    receiver.fail(1, status=410)
    hook = new_webhook(api, receiver.url(), ["version.created"])
    create_prompt(api, "greeting")
    log = wait_for(lambda: settled(api, hook["id"]), what="the delivery to fail")
    assert [(d["status"], d["attempts"], d["last_status_code"]) for d in log] == [("failed", 1, 410)]
    assert api.get(f"/v1/webhooks/{hook['id']}").json()["active"] is False
    entry = api.get("/v1/audit", params={"action": "webhook.deactivated"}).json()["items"][0]
    assert entry["actor"] == "webhooks" and entry["severity"] == "warning"
    add_version(api, "greeting", "Hi")
    assert len(deliveries(api, hook["id"])) == 1  # an inactive webhook queues nothing


def test_hanging_receiver_does_not_slow_the_api(open_api: OpenApi, receiver: Receiver) -> None:
    api = open_api(webhook_timeout=10.0)
    receiver.hang(5, seconds=10.0)
    new_webhook(api, receiver.url(), ["*"])
    wait_for(lambda: receiver.received(event="webhook.created"), what="the first (hanging) delivery")
    started = time.monotonic()
    response = api.post("/v1/prompts", json={"name": "fast", "content": {"type": "text", "template": "x"}})
    assert response.status_code == 201
    assert time.monotonic() - started < 2.0
    wait_for(lambda: receiver.received(event="prompt.created"), what="a concurrent delivery")


def test_unreachable_receiver_is_retried(api: TestClient) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hook = new_webhook(api, f"http://127.0.0.1:{port}/hook", ["version.created"])
    started = time.monotonic()
    create_prompt(api, "greeting")
    assert time.monotonic() - started < 2.0
    log = wait_for(lambda: settled(api, hook["id"]), what="the delivery to fail")
    assert [(d["status"], d["attempts"], d["last_status_code"]) for d in log] == [("failed", 3, None)]
    assert "ConnectError" in log[0]["last_error"]


def test_timeout_counts_as_a_failed_attempt(open_api: OpenApi, receiver: Receiver) -> None:
    api = open_api(webhook_timeout=0.3, webhook_max_attempts=2)
    receiver.hang(1, seconds=10.0)
    hook = new_webhook(api, receiver.url(), ["version.created"])
    create_prompt(api, "greeting")
    log = wait_for(lambda: settled(api, hook["id"]), what="the retried delivery")
    assert [(d["status"], d["attempts"], d["last_status_code"]) for d in log] == [("delivered", 2, 200)]
    assert len(receiver.received()) == 2


def test_two_dispatchers_share_the_work(settings: Settings, receiver: Receiver) -> None:
    """Two server processes on one database: every delivery is sent once (SKIP LOCKED on PostgreSQL)."""
    settings = settings.model_copy(update=FAST)
    setup = Database(settings)
    try:
        with setup.write_session() as session:
            project = create_project(session=session, name=DEFAULT_PROJECT)
            actor = Actor.system("test", project.id)
            hook, _ = webhooks.create_webhook(
                session=session,
                actor=actor,
                data=WebhookCreate(url=receiver.url(), events=["nothing.yet"]),
                egress=EgressPolicy.from_settings(settings),
            )
            for n in range(60):
                session.add(
                    WebhookDelivery(
                        webhook_id=hook.id, project_id=project.id, event="load.test", payload={"n": n}
                    )
                )
            session.commit()
    finally:
        setup.dispose()

    async def run() -> None:
        databases = [Database(settings), Database(settings)]
        dispatchers = [Dispatcher(db, settings, concurrency=4) for db in databases]
        try:
            for dispatcher in dispatchers:
                await dispatcher.start()
            deadline = time.monotonic() + 20
            while sum(d.sent for d in dispatchers) < 60:
                assert time.monotonic() < deadline, "deliveries did not finish"
                await asyncio.sleep(0.02)
        finally:
            for dispatcher in dispatchers:
                await dispatcher.stop()
            for db in databases:
                db.dispose()

    asyncio.run(run())
    ids = [r.headers["x-promptkeeper-delivery"] for r in receiver.received()]
    assert len(ids) == len(set(ids)) == 60
    assert sorted(r.json["n"] for r in receiver.received()) == list(range(60))


def test_out_of_range_ids_are_422(client: TestClient) -> None:
    """Found by tests/test_schemathesis.py: ids past 2**63 were an OverflowError (500) on SQLite."""
    for method, path, field in [
        ("DELETE", f"/v1/webhooks/{2**63}", "path.webhook_id"),
        ("POST", f"/v1/webhooks/1/deliveries/{2**63}/redeliver", "path.delivery_id"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 422, response.text
        assert error_of(response)["details"]["errors"][0]["field"] == field


# --- secrets at rest -----------------------------------------------------------------------------


def _stored_secrets(settings: Settings) -> list[str]:
    from sqlalchemy import select

    from promptkeeper.audit.models import Webhook

    database = Database(settings)
    try:
        with database.session() as session:
            return list(session.scalars(select(Webhook.secret).order_by(Webhook.id)))
    finally:
        database.dispose()


def test_secrets_are_encrypted_at_rest_and_still_sign(
    settings: Settings, receiver: Receiver, tmp_path: Any
) -> None:
    keyed = settings.model_copy(update={"secret_key": SecretStr("k" * 40), **FAST})
    with TestClient(create_app(keyed), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as api:
        hook = new_webhook(api, receiver.url(), ["prompt.created"], secret="my-own-secret-of-some-length")
        (stored,) = _stored_secrets(keyed)
        assert stored.startswith("enc:v1:") and "my-own-secret" not in stored
        create_prompt(api, "greeting")
        request = wait_for(lambda: receiver.received(event="prompt.created"), what="a delivery")[0]
        headers = request.headers
        assert verify(
            hook["secret"],
            headers["x-promptkeeper-timestamp"],
            request.body,
            headers["x-promptkeeper-signature"],
        )
    # A database holding a plaintext secret (from before encryption): the next start encrypts it
    database = Database(keyed)
    try:
        with database.write_session() as session:
            session.execute(text("UPDATE webhooks SET secret = 'legacy-plaintext-secret-0123456789'"))
            session.commit()
    finally:
        database.dispose()
    with TestClient(create_app(keyed)):
        pass
    (stored,) = _stored_secrets(keyed)
    assert (
        stored.startswith("enc:v1:")
        and SecretBox(["k" * 40]).open(stored) == "legacy-plaintext-secret-0123456789"
    )
    # An instance with another key cannot sign: the delivery fails, saying why, and nothing is sent
    other = settings.model_copy(update={"secret_key": SecretStr("z" * 40), **FAST})
    sent = len(receiver.requests)
    with TestClient(create_app(other), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as api:
        create_prompt(api, "second")
        log = wait_for(lambda: settled(api, hook["id"]), what="the failed delivery")
        failed = [d for d in log if d["status"] == "failed"]
        assert failed and "PROMPTKEEPER_SECRET_KEY" in failed[0]["last_error"]
    assert len(receiver.requests) == sent


def test_rotate_secrets_command(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from promptkeeper.cli import app as cli_app

    old, new = "o" * 40, "n" * 40
    keyed = settings.model_copy(update={"secret_key": SecretStr(old)})
    with TestClient(create_app(keyed), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as api:
        new_webhook(api, NOWHERE, secret="rotate-me-please-0123456789")
    monkeypatch.setenv("PROMPTKEEPER_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PROMPTKEEPER_SECRET_KEY", f"{new},{old}")
    result = CliRunner().invoke(cli_app, ["db", "rotate-secrets"])
    assert result.exit_code == 0, result.output
    assert "re-encrypted 1 secret(s)" in result.output
    (stored,) = _stored_secrets(keyed)
    assert SecretBox([new]).open(stored) == "rotate-me-please-0123456789"
    monkeypatch.setenv("PROMPTKEEPER_SECRET_KEY", "x" * 40)  # a key that opens nothing: one clear line
    result = CliRunner().invoke(cli_app, ["db", "rotate-secrets"])
    assert result.exit_code != 0 and "cannot be decrypted" in result.output
