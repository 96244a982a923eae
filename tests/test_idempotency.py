"""`Idempotency-Key`: a retried write is applied once and answered with the first answer."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from promptkeeper.db.base import utcnow
from promptkeeper.idempotency import service
from promptkeeper.idempotency.models import IdempotencyRecord
from promptkeeper.worker import schedule as jobs
from tests.conftest import ADMIN_KEY, LiveServer
from tests.helpers import bearer, create_prompt, error_of, text_content

KEY = {"Idempotency-Key": "8d7c2f0e-retry-1"}


def _versions(client: TestClient, name: str) -> list[int]:
    body = client.get(f"/v1/prompts/{name}/versions").json()
    return sorted(v["number"] for v in body["items"])


def _new_version(client: TestClient, text: str, headers: dict[str, str]) -> object:
    return client.post("/v1/prompts/p/versions", json={"content": text_content(text)}, headers=headers)


def test_retried_create_is_applied_once_and_answered_again(client: TestClient) -> None:
    create_prompt(client, "p", "v1")
    first = _new_version(client, "v2", KEY)
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers  # type: ignore[attr-defined]
    again = _new_version(client, "v2", KEY)
    assert again.status_code == 201  # type: ignore[attr-defined]
    assert again.headers["idempotent-replayed"] == "true"  # type: ignore[attr-defined]
    assert again.json() == first.json()  # type: ignore[attr-defined]
    assert _versions(client, "p") == [1, 2]
    # without the header the same body is a new request (and an unchanged content: refused)
    assert _new_version(client, "v3", {}).status_code == 201  # type: ignore[attr-defined]
    assert _versions(client, "p") == [1, 2, 3]


def test_key_reused_for_another_request_is_refused(client: TestClient) -> None:
    create_prompt(client, "p", "v1")
    assert _new_version(client, "v2", KEY).status_code == 201  # type: ignore[attr-defined]
    other = _new_version(client, "something else", KEY)
    assert other.status_code == 422  # type: ignore[attr-defined]
    error = error_of(other)  # type: ignore[arg-type]
    assert error["code"] == "idempotency_key_reused" and "Idempotency-Key" in error["message"]
    assert error["details"]["field"] == "header.Idempotency-Key"
    assert _versions(client, "p") == [1, 2]  # nothing stored


@pytest.mark.parametrize("bad", ["", "a" * 256, "with space", "caf\u00e9"])
def test_malformed_key_is_refused(client: TestClient, bad: str) -> None:
    create_prompt(client, "p", "v1")
    response = client.post(
        "/v1/prompts/p/versions",
        json={"content": text_content("v2")},
        headers={"Idempotency-Key": bad.encode("utf-8")},  # type: ignore[dict-item]
    )
    assert response.status_code == 400
    assert error_of(response)["details"]["field"] == "header.Idempotency-Key"
    assert _versions(client, "p") == [1]


def test_keys_belong_to_their_caller(client: TestClient) -> None:
    create_prompt(client, "p", "v1")
    editor = client.post("/v1/keys", json={"name": "ci", "role": "editor"}).json()["secret"]
    assert _new_version(client, "v2", KEY).status_code == 201  # type: ignore[attr-defined]
    theirs = client.post(
        "/v1/prompts/p/versions", json={"content": text_content("v3")}, headers={**KEY, **bearer(editor)}
    )
    assert theirs.status_code == 201 and "idempotent-replayed" not in theirs.headers
    assert _versions(client, "p") == [1, 2, 3]


def test_a_refused_write_is_not_remembered(client: TestClient) -> None:
    create_prompt(client, "p", "v1")
    stale = {"content": text_content("v2"), "base_version": 7}
    first = client.post("/v1/prompts/p/versions", json=stale, headers=KEY)
    assert first.status_code in (409, 422)
    # the write did not happen, so a retry runs again (and is refused again, by the same rule)
    again = client.post("/v1/prompts/p/versions", json=stale, headers=KEY)
    assert again.status_code == first.status_code and "idempotent-replayed" not in again.headers
    with client.app.state.context.db.session() as session:  # type: ignore[attr-defined]
        assert session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0
    assert _versions(client, "p") == [1]


def test_event_batches_are_not_counted_twice(client: TestClient) -> None:
    batch = {"events": [{"type": "outcome", "request_id": f"r{i}", "completed": True} for i in range(5)]}
    first = client.post("/v1/events", json=batch, headers=KEY)
    again = client.post("/v1/events", json=batch, headers=KEY)
    assert first.status_code == again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()


def test_claimed_key_without_a_response(client: TestClient) -> None:
    """What a retry sees when the first attempt committed but its process stopped before storing the
    answer: "in progress" at first, then "applied, response lost"; never a second write."""
    create_prompt(client, "p", "v1")
    scope = service.digest(b"authorization:" + f"Bearer {ADMIN_KEY}".encode())
    body = b'{"content":{"type":"text","template":"v2"}}'
    fingerprint = service.digest(b"POST", b"/v1/prompts/p/versions", b"", body)
    database = client.app.state.context.db  # type: ignore[attr-defined]
    with database.write_session() as session:
        session.add(IdempotencyRecord(scope=scope, key="k1", fingerprint=fingerprint))
        session.add(
            IdempotencyRecord(
                scope=scope, key="k2", fingerprint=fingerprint, created_at=utcnow() - timedelta(minutes=5)
            )
        )
        session.commit()
    headers = {"Content-Type": "application/json"}
    busy = client.post("/v1/prompts/p/versions", content=body, headers={**headers, "Idempotency-Key": "k1"})
    assert busy.status_code == 409 and error_of(busy)["code"] == "idempotency_in_progress"
    assert busy.headers["retry-after"] == "1"
    lost = client.post("/v1/prompts/p/versions", content=body, headers={**headers, "Idempotency-Key": "k2"})
    assert lost.status_code == 409 and error_of(lost)["code"] == "idempotency_response_lost"
    assert _versions(client, "p") == [1]


def test_old_keys_are_purged(client: TestClient) -> None:
    create_prompt(client, "p", "v1")
    assert _new_version(client, "v2", KEY).status_code == 201  # type: ignore[attr-defined]
    database = client.app.state.context.db  # type: ignore[attr-defined]
    with database.write_session() as session:
        assert service.purge(session=session) == 0
        assert service.purge(session=session, now=utcnow() + timedelta(hours=25)) == 1
        session.rollback()
        old = utcnow() - timedelta(hours=25)
        session.add(IdempotencyRecord(scope="s", key="old", fingerprint="f", created_at=old))
        session.commit()
    jobs.tick(database, 300)  # the scheduler's periodic housekeeping forgets expired keys
    with database.session() as session:
        keys = session.scalars(select(IdempotencyRecord.key)).all()
    assert keys == [KEY["Idempotency-Key"]]


def test_concurrent_attempts_write_once(live_server: LiveServer) -> None:
    with live_server.client() as http:
        assert http.post("/v1/prompts", json={"name": "p", "content": text_content("v1")}).status_code == 201
    key = {"Idempotency-Key": str(uuid.uuid4())}
    answers: list[tuple[int, dict[str, object]]] = []
    barrier = threading.Barrier(6)

    def attempt() -> None:
        with live_server.client(timeout=30) as http:
            barrier.wait()
            response = http.post("/v1/prompts/p/versions", json={"content": text_content("v2")}, headers=key)
            answers.append((response.status_code, response.json()))

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    created = [body for status, body in answers if status == 201]
    busy = [body for status, body in answers if status == 409]
    assert len(created) + len(busy) == 6 and created, answers
    assert all(body == created[0] for body in created)  # replays carry the first answer
    assert all(b["error"]["code"] == "idempotency_in_progress" for b in busy)  # type: ignore[index]
    with live_server.client() as http:
        numbers = [v["number"] for v in http.get("/v1/prompts/p/versions").json()["items"]]
    assert sorted(numbers) == [1, 2]
