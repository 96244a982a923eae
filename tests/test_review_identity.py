"""Approvals count distinct people, and never the person who wrote the version under review.

Identity rules (docs/security.md): a user is one person however many sessions they hold; an API
key minted through the API or the UI belongs to whoever minted it (the minting user, or the
identity of the minting key), so an admin cannot mint approvers to outvote a review; a key made
by the operator (bootstrap, `promptkeeper keys create`) is its own identity.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.helpers import add_version, bearer, create_prompt, error_of

PASSWORD = "correct horse battery staple"


def _person(client: TestClient, who: str, role: str) -> dict[str, str]:
    email = f"{who}@example.com"
    created = client.post("/v1/users", json={"email": email, "role": role, "password": PASSWORD})
    assert created.status_code == 201, created.text
    login = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD}, headers={})
    assert login.status_code == 201, login.text
    return bearer(login.json()["token"])


def _protect(client: TestClient, approvals: int) -> None:
    response = client.patch(
        "/v1/environments/production", json={"protected": True, "required_approvals": approvals}
    )
    assert response.status_code == 200, response.text


def _review(client: TestClient, who: dict[str, str], version: int = 2) -> int:
    response = client.post(
        "/v1/prompts/p/reviews", json={"environment": "production", "version": version}, headers=who
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _approve(client: TestClient, who: dict[str, str], review: int) -> Any:
    return client.post(f"/v1/prompts/p/reviews/{review}/approve", json={"comment": "ok"}, headers=who)


def test_the_author_of_the_version_cannot_approve_it_when_someone_else_opened_the_review(
    client: TestClient,
) -> None:
    ada, bob, eve = (
        _person(client, "ada", "approver"),
        _person(client, "bob", "approver"),
        _person(client, "eve", "editor"),
    )
    create_prompt(client, "p", "v1")
    written = client.post(
        "/v1/prompts/p/versions", json={"content": {"type": "text", "template": "ada's v2"}}, headers=ada
    )
    assert written.status_code == 201 and written.json()["author"] == "ada@example.com"
    _protect(client, approvals=1)
    review = _review(client, eve)  # eve opens the review of ada's version
    own = _approve(client, ada, review)
    assert own.status_code == 403, own.text
    assert "wrote version 2" in error_of(own)["message"]
    state = client.get(f"/v1/prompts/p/reviews/{review}").json()
    assert state["approvals"] == [] and state["status"] == "pending"
    assert _approve(client, bob, review).json()["status"] == "approved"


def test_keys_an_admin_mints_are_that_admin_not_more_reviewers(client: TestClient) -> None:
    boss = _person(client, "boss", "admin")
    ada, eve = _person(client, "ada", "approver"), _person(client, "eve", "editor")
    create_prompt(client, "p", "v1")
    add_version(client, "p", "v2")
    _protect(client, approvals=2)
    minted = []
    for name in ("approver-1", "approver-2"):
        made = client.post("/v1/keys", json={"name": name, "role": "approver"}, headers=boss)
        assert made.status_code == 201
        minted.append(bearer(made.json()["secret"]))
    review = _review(client, eve)
    assert _approve(client, minted[0], review).json()["missing_approvals"] == 1
    second = _approve(client, minted[1], review).json()
    assert second["missing_approvals"] == 1 and second["status"] == "pending"  # the same person
    assert _approve(client, boss, review).json()["missing_approvals"] == 1  # still boss
    assert _approve(client, ada, review).json()["status"] == "approved"
    # the bootstrap admin key's minted keys (which also wrote version 1: refused there)
    first = _review(client, eve, version=1)
    boot = client.post("/v1/keys", json={"name": "k0", "role": "approver"}).json()["secret"]
    assert _approve(client, bearer(boot), first).status_code == 403
    # the bootstrap admin key's minted keys are the bootstrap key's holder, one person too
    by_eve = {"content": {"type": "text", "template": "eve's v3"}}
    assert client.post("/v1/prompts/p/versions", json=by_eve, headers=eve).status_code == 201
    third = _review(client, eve, version=3)
    keys = [
        bearer(client.post("/v1/keys", json={"name": f"k{i}", "role": "approver"}).json()["secret"])
        for i in (1, 2)
    ]
    assert _approve(client, keys[0], third).json()["missing_approvals"] == 1
    assert _approve(client, keys[1], third).json()["missing_approvals"] == 1
    # and a key minted by a user cannot approve what that user wrote, nor what it opened
    add_version(client, "p", "v4")
    mine = client.post("/v1/keys", json={"name": "boss-ci", "role": "approver"}, headers=boss).json()[
        "secret"
    ]
    own_review = _review(client, boss, version=4)
    assert _approve(client, bearer(mine), own_review).status_code == 403
