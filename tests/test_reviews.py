"""Reviews, protected environments, emergency override, promotion path, promote and rollback rules."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from promptkeeper.access.service import Role
from promptkeeper.config import Settings
from tests.helpers import add_version, bearer, create_prompt, deploy, error_of
from tests.route_catalog import PASSWORD, new_key


@pytest.fixture
def team(client: TestClient, settings: Settings) -> dict[str, dict[str, str]]:
    """An editor (the author), two approvers (users with sessions), an admin, and more keys."""
    people: dict[str, dict[str, str]] = {"admin": dict(client.headers)}
    for who, role in (("eve", "editor"), ("ada", "approver"), ("bob", "approver"), ("vic", "viewer")):
        email = f"{who}@example.com"
        created = client.post("/v1/users", json={"email": email, "role": role, "password": PASSWORD})
        assert created.status_code == 201, created.text
        login = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD}, headers={})
        assert login.status_code == 201, login.text
        people[who] = bearer(login.json()["token"])
    people["approver_key"] = bearer(new_key(settings, "default", Role.approver, name="ci-approver"))
    return people


def _protect(client: TestClient, environment: str = "production", approvals: int = 2, **extra: Any) -> None:
    response = client.patch(
        f"/v1/environments/{environment}", json={"protected": True, "required_approvals": approvals, **extra}
    )
    assert response.status_code == 200, response.text


def _review(
    client: TestClient, who: dict[str, str], name: str = "p", version: int = 2, env: str = "production"
) -> int:
    response = client.post(
        f"/v1/prompts/{name}/reviews",
        json={"environment": env, "version": version, "description": "tone fix"},
        headers=who,
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _verdict(client: TestClient, who: dict[str, str], review: int, kind: str, comment: str = "") -> Any:
    return client.post(f"/v1/prompts/p/reviews/{review}/{kind}", json={"comment": comment}, headers=who)


def test_protected_environment_needs_distinct_approvers(
    client: TestClient, team: dict[str, dict[str, str]]
) -> None:
    create_prompt(client, "p")
    add_version(client, "p", "Hi {{ name }}")
    _protect(client, approvals=2)
    eve, ada, bob = team["eve"], team["ada"], team["bob"]

    # An editor may not deploy to a protected environment at all.
    refused = client.post(
        "/v1/prompts/p/deployments", json={"environment": "production", "version": 2}, headers=eve
    )
    assert refused.status_code == 403 and "protected" in error_of(refused)["message"]
    # An approver may, but not without a review.
    refused = client.post(
        "/v1/prompts/p/deployments", json={"environment": "production", "version": 2}, headers=ada
    )
    assert refused.status_code == 409
    assert "none was requested" in error_of(refused)["message"]
    assert error_of(refused)["details"]["required_approvals"] == 2

    review = _review(client, eve)
    # The author cannot approve their own review, even with approver rights elsewhere.
    own = _review(client, ada, version=1)
    assert _verdict(client, ada, own, "approve").status_code == 403
    # Viewers and editors cannot decide.
    assert _verdict(client, team["vic"], review, "approve").status_code == 403
    assert _verdict(client, eve, review, "approve").status_code == 403

    approved_once = _verdict(client, ada, review, "approve", "lgtm")
    assert approved_once.status_code == 200
    body = approved_once.json()
    assert body["status"] == "pending" and body["approvals"] == ["ada@example.com"]
    assert body["missing_approvals"] == 1
    # The same person approving again (another session) still counts once.
    again = client.post("/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}, headers={})
    second_session = bearer(again.json()["token"])
    assert _verdict(client, second_session, review, "approve").json()["missing_approvals"] == 1

    refused = client.post(
        "/v1/prompts/p/deployments", json={"environment": "production", "version": 2}, headers=bob
    )
    assert refused.status_code == 409
    error = error_of(refused)
    assert error["details"]["missing_approvals"] == 1 and error["details"]["review"] == review
    assert "1 missing" in error["message"]

    assert _verdict(client, bob, review, "approve").json()["status"] == "approved"
    deployed = client.post(
        "/v1/prompts/p/deployments", json={"environment": "production", "version": 2}, headers=bob
    )
    assert deployed.status_code == 201, deployed.text
    closed = client.get(f"/v1/prompts/p/reviews/{review}").json()
    assert closed["status"] == "deployed" and closed["deployment_id"] == deployed.json()["id"]
    assert [e["kind"] for e in closed["events"]] == ["approve", "approve", "approve", "deploy"]
    assert closed["live_version"] == 2
    # A deployed review cannot be decided any more.
    assert _verdict(client, ada, review, "approve").status_code == 409


def test_request_changes_blocks_until_that_approver_approves(
    client: TestClient, team: dict[str, dict[str, str]]
) -> None:
    create_prompt(client, "p")
    add_version(client, "p", "Hi {{ name }}")
    _protect(client, approvals=1)
    review = _review(client, team["eve"])
    assert _verdict(client, team["ada"], review, "approve").json()["status"] == "approved"
    assert _verdict(client, team["bob"], review, "request-changes").status_code == 422  # needs a comment
    blocked = _verdict(client, team["bob"], review, "request-changes", "too long")
    assert blocked.json()["status"] == "changes_requested"
    assert blocked.json()["changes_requested_by"] == ["bob@example.com"]
    refused = client.post(f"/v1/prompts/p/reviews/{review}/deploy", json={}, headers=team["ada"])
    assert (
        refused.status_code == 409 and "changes requested by bob@example.com" in error_of(refused)["message"]
    )
    comment = client.post(
        f"/v1/prompts/p/reviews/{review}/comments", json={"body": "fixed?"}, headers=team["eve"]
    )
    assert comment.status_code == 201
    assert _verdict(client, team["bob"], review, "approve").json()["status"] == "approved"
    deployed = client.post(
        f"/v1/prompts/p/reviews/{review}/deploy", json={"reason": "ship"}, headers=team["ada"]
    )
    assert deployed.status_code == 201 and deployed.json()["version"] == 2


def test_withdraw_and_review_rules(client: TestClient, team: dict[str, dict[str, str]]) -> None:
    create_prompt(client, "p")
    add_version(client, "p", "Hi {{ name }}")
    _protect(client, approvals=1)
    review = _review(client, team["eve"])
    duplicate = client.post(
        "/v1/prompts/p/reviews", json={"environment": "production", "version": 2}, headers=team["eve"]
    )
    assert duplicate.status_code == 409 and error_of(duplicate)["details"]["review"] == review
    # Another editor cannot withdraw someone else's review; the author and admins can.
    other = client.post(
        "/v1/users", json={"email": "zed@example.com", "role": "editor", "password": PASSWORD}
    )
    assert other.status_code == 201
    zed = client.post("/v1/auth/login", json={"email": "zed@example.com", "password": PASSWORD}, headers={})
    assert (
        client.post(
            f"/v1/prompts/p/reviews/{review}/withdraw", headers=bearer(zed.json()["token"])
        ).status_code
        == 403
    )
    withdrawn = client.post(f"/v1/prompts/p/reviews/{review}/withdraw", headers=team["eve"])
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    assert _verdict(client, team["ada"], review, "approve").status_code == 409
    # A withdrawn review does not allow a deploy.
    refused = client.post(
        "/v1/prompts/p/deployments",
        json={"environment": "production", "version": 2, "review_id": review},
        headers=team["ada"],
    )
    assert refused.status_code == 409
    # A review of another version or environment cannot be used either.
    staging_review = _review(client, team["eve"], env="staging")
    refused = client.post(
        "/v1/prompts/p/deployments",
        json={"environment": "production", "version": 2, "review_id": staging_review},
        headers=team["ada"],
    )
    assert refused.status_code == 409 and "not an open review" in error_of(refused)["message"]
    # Bad input names the field.
    bad = client.post(
        "/v1/prompts/p/reviews", json={"environment": "production", "version": 0}, headers=team["eve"]
    )
    assert bad.status_code == 422 and "body.version" in error_of(bad)["message"]
    missing = client.post(
        "/v1/prompts/p/reviews", json={"environment": "production", "version": 9}, headers=team["eve"]
    )
    assert missing.status_code == 404
    listed = client.get("/v1/reviews", params={"status": "all"}).json()
    assert {item["id"] for item in listed["items"]} == {review, staging_review}
    inbox = client.get("/v1/reviews").json()
    assert [item["id"] for item in inbox["items"]] == [staging_review]


def test_emergency_override_is_admin_only_and_loudly_audited(
    client: TestClient, team: dict[str, dict[str, str]]
) -> None:
    create_prompt(client, "p")
    _protect(client, approvals=2)
    body = {"environment": "production", "version": 1, "override": True, "reason": "outage"}
    refused = client.post("/v1/prompts/p/deployments", json=body)
    assert refused.status_code == 403 and "not enabled" in error_of(refused)["message"]
    _protect(client, approvals=2, allow_override=True)
    assert client.post("/v1/prompts/p/deployments", json=body, headers=team["ada"]).status_code == 403
    no_reason = client.post("/v1/prompts/p/deployments", json={**body, "reason": " "})
    assert no_reason.status_code == 422 and "body.reason" in error_of(no_reason)["message"]
    done = client.post("/v1/prompts/p/deployments", json=body)
    assert done.status_code == 201 and done.json()["action"] == "override"
    entries = client.get("/v1/audit", params={"action": "deployment.*", "prompt": "p"}).json()["items"]
    assert entries[0]["severity"] == "warning"
    assert entries[0]["summary"]["after"]["action"] == "override"
    assert entries[0]["summary"]["after"]["reason"] == "outage"
    policy = client.get("/v1/audit", params={"action": "environment.updated"}).json()["items"]
    assert policy[0]["summary"]["after"] == {"allow_override": True}
    # An override of an unprotected environment is a mistake, not a silent deploy.
    wrong = client.post("/v1/prompts/p/deployments", json={**body, "environment": "staging"})
    assert wrong.status_code == 422 and "not protected" in error_of(wrong)["message"]


def test_promotion_path_requires_staging_first(client: TestClient, team: dict[str, dict[str, str]]) -> None:
    create_prompt(client, "p")
    add_version(client, "p", "Hi {{ name }}")
    response = client.patch("/v1/environments/production", json={"requires_environment": "staging"})
    assert response.status_code == 200 and response.json()["requires_environment"] == "staging"
    refused = client.post("/v1/prompts/p/deployments", json={"environment": "production", "version": 2})
    assert refused.status_code == 409 and "never been deployed to 'staging'" in error_of(refused)["message"]
    deploy(client, "p", "staging", 2)
    promoted = client.post(
        "/v1/prompts/p/promote", json={"from": "staging", "to": "production"}, headers=team["eve"]
    )
    assert promoted.status_code == 201, promoted.text
    assert promoted.json()["action"] == "promote" and promoted.json()["version"] == 2
    status = client.get("/v1/prompts/p/versions/2").json()
    assert status["status"] == "production" and status["environments"] == ["staging", "production"]
    # Policy errors name the field.
    self_ref = client.patch("/v1/environments/staging", json={"requires_environment": "staging"})
    assert self_ref.status_code == 422
    unknown = client.patch("/v1/environments/staging", json={"requires_environment": "nope"})
    assert unknown.status_code == 404
    nulls = client.patch("/v1/environments/staging", json={"protected": None})
    assert nulls.status_code == 422 and "protected" in error_of(nulls)["message"]
    assert (
        client.patch("/v1/environments/staging", json={"protected": True}, headers=team["ada"]).status_code
        == 403
    )
    nothing = client.post("/v1/prompts/p/promote", json={"from": "development", "to": "staging"})
    assert nothing.status_code == 409 and "nothing to promote" in error_of(nothing)["message"]


def test_rollback_on_protected_environment(client: TestClient, team: dict[str, dict[str, str]]) -> None:
    create_prompt(client, "p")
    add_version(client, "p", "Hi {{ name }}")
    add_version(client, "p", "Hey {{ name }}")
    deploy(client, "p", "production", 1)
    deploy(client, "p", "production", 2)
    _protect(client, approvals=1)
    # An editor cannot roll back a protected environment; an approver can, to what was live before.
    assert (
        client.post(
            "/v1/prompts/p/rollback", json={"environment": "production"}, headers=team["eve"]
        ).status_code
        == 403
    )
    back = client.post(
        "/v1/prompts/p/rollback", json={"environment": "production", "reason": "bad"}, headers=team["ada"]
    )
    assert back.status_code == 201 and back.json()["version"] == 1
    never = client.post(
        "/v1/prompts/p/rollback", json={"environment": "production", "version": 3}, headers=team["ada"]
    )
    assert never.status_code == 409 and "needs an approved review" in error_of(never)["message"]
    again = client.post(
        "/v1/prompts/p/rollback", json={"environment": "production", "version": 2}, headers=team["ada"]
    )
    assert again.status_code == 201 and again.json()["version"] == 2


def test_protected_required_approvals_at_least_one(client: TestClient) -> None:
    response = client.patch("/v1/environments/production", json={"protected": True, "required_approvals": 0})
    assert response.status_code == 200 and response.json()["required_approvals"] == 1
    assert client.patch("/v1/environments/production", json={"required_approvals": 11}).status_code == 422
