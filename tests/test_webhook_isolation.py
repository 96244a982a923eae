"""One project's slow receivers must not hold up another project's webhooks.

Ordering, not a stopwatch: project B's delivery must arrive while every one of project A's attempts
is still waiting for an answer (none has answered or timed out yet). bench/webhook_isolation.py
measures the times.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from fastapi.testclient import TestClient

from promptkeeper.access.service import Role
from promptkeeper.app import create_app
from promptkeeper.config import Settings
from tests.conftest import ADMIN_KEY
from tests.helpers import text_content
from tests.test_webhooks import (
    FAST,
    OpenApi,
    Receiver,
    bearer,
    deliveries,
    make_key,
    new_webhook,
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


SLOW_RECEIVERS = 16


def _prompt(api: TestClient, name: str, headers: dict[str, str] | None = None) -> None:
    response = api.post("/v1/prompts", json={"name": name, "content": text_content("x")}, headers=headers)
    assert response.status_code == 201, response.text


def test_slow_receivers_of_one_project_do_not_delay_another_project(
    open_api: OpenApi, receiver: Receiver, settings: Settings
) -> None:
    api = open_api(webhook_timeout=4.0, webhook_max_attempts=1, webhook_allow=["127.0.0.1/32"])
    other = bearer(make_key(settings, Role.admin, project="other", name="other-admin"))
    slow = Receiver()
    try:
        slow.hang(SLOW_RECEIVERS, seconds=60.0)  # released when the test ends
        hooks = [new_webhook(api, slow.url(f"/a{n}"), ["prompt.created"]) for n in range(SLOW_RECEIVERS)]
        response = api.post(
            "/v1/webhooks", json={"url": receiver.url("/b"), "events": ["prompt.created"]}, headers=other
        )
        assert response.status_code == 201, response.text
        theirs = response.json()

        _prompt(api, "busy")  # project A: one delivery to each slow receiver
        wait_for(lambda: slow.received(), what="project A's first delivery to be in flight")
        _prompt(api, "quick", headers=other)
        wait_for(lambda: receiver.received("/b"), timeout=30.0, what="project B's delivery")

        # At this point not one of A's attempts has been answered or has timed out.
        a_log: list[dict[str, Any]] = [d for hook in hooks for d in deliveries(api, hook["id"])]
        assert len(a_log) == SLOW_RECEIVERS
        assert [(d["status"], d["last_error"]) for d in a_log] == [("pending", "")] * SLOW_RECEIVERS

        def delivered() -> list[dict[str, Any]]:
            answer = api.get(f"/v1/webhooks/{theirs['id']}/deliveries", headers=other)
            return [d for d in answer.json()["items"] if d["status"] == "delivered"]

        assert wait_for(delivered, what="B's delivery log")[0]["attempts"] == 1
    finally:
        slow.close()
