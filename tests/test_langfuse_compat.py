"""The Langfuse-compatible prompt API, driven by the real `langfuse` package (tracing off).

Each test creates its own API keys: the Langfuse client keeps one set of resources per public
key, so a key shared across tests would talk to the first test's server.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from langfuse import Langfuse
from langfuse.api.core.http_client import _should_retry

from promptkeeper.compat.langfuse import public_key
from tests.conftest import LiveServer
from tests.helpers import quote_name


def _key(http: httpx.Client, role: str) -> str:
    created = http.post("/v1/keys", json={"name": f"langfuse-{role}", "role": role})
    assert created.status_code == 201, created.text
    secret: str = created.json()["secret"]
    return secret


def _langfuse(server: LiveServer, secret: str) -> Langfuse:
    return Langfuse(
        public_key=public_key(secret),
        secret_key=secret,
        host=server.url,
        tracing_enabled=False,
    )


def _basic(secret: str, public: str | None = None) -> dict[str, str]:
    token = base64.b64encode(f"{public or public_key(secret)}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with live_server.client() as client:
        yield client


def test_create_get_compile_and_move_labels_with_the_langfuse_client(
    live_server: LiveServer, http: httpx.Client
) -> None:
    editor = _key(http, "editor")
    langfuse = _langfuse(live_server, editor)
    created = langfuse.create_prompt(
        name="movies/critic",
        prompt="As a {{criticLevel}} critic, rate {{movie}}.",
        labels=["staging"],
        tags=["movies"],
        config={"model": "gpt-4o-mini", "temperature": 0.3},
        commit_message="first cut",
    )
    assert (created.version, created.labels, created.tags) == (1, ["latest", "staging"], ["movies"])
    assert created.commit_message == "first cut"

    fetched = langfuse.get_prompt("movies/critic", label="staging", cache_ttl_seconds=0)
    assert fetched.version == 1 and fetched.config == {"model": "gpt-4o-mini", "temperature": 0.3}
    assert fetched.compile(criticLevel="expert", movie="Dune") == "As a expert critic, rate Dune."
    assert sorted(fetched.variables) == ["criticLevel", "movie"]

    second = langfuse.create_prompt(name="movies/critic", prompt="Rate {{movie}} like a {{criticLevel}}.")
    assert (second.version, second.labels) == (2, ["latest"])
    assert langfuse.get_prompt("movies/critic", label="latest", cache_ttl_seconds=0).version == 2
    with pytest.raises(Exception, match="Prompt not found"):
        langfuse.get_prompt("movies/critic", cache_ttl_seconds=0, max_retries=0)  # no production label yet

    langfuse.update_prompt(name="movies/critic", version=2, new_labels=["production", "staging"])
    assert langfuse.get_prompt("movies/critic", cache_ttl_seconds=0).version == 2  # default: production
    assert langfuse.get_prompt("movies/critic", version=1, cache_ttl_seconds=0).labels == []

    # the label moves are PromptKeeper deployments: history, audit, and /v1/resolve agree
    served = http.get(f"/v1/resolve/{quote_name('movies/critic')}", params={"environment": "production"})
    assert served.json()["version"] == 2
    history = http.get(f"/v1/prompts/{quote_name('movies/critic')}/deployments").json()["items"]
    assert [(h["environment"], h["version"]) for h in history[:2]] == [("staging", 2), ("production", 2)] or [
        (h["environment"], h["version"]) for h in history[:2]
    ] == [("production", 2), ("staging", 2)]
    assert all(h["reason"] == "label moved through the Langfuse-compatible API" for h in history)
    actions = [e["action"] for e in http.get("/v1/audit", params={"prompt": "movies/critic"}).json()["items"]]
    assert actions.count("deployment.created") == 3 and actions.count("version.created") == 2

    listed = langfuse.api.prompts.list(tag="movies")
    assert [(p.name, p.versions, p.labels) for p in listed.data] == [
        ("movies/critic", [1, 2], ["latest", "production", "staging"])
    ]
    assert listed.meta.total_items == 1


def test_chat_prompts_with_placeholders_round_trip(live_server: LiveServer, http: httpx.Client) -> None:
    langfuse = _langfuse(live_server, _key(http, "editor"))
    langfuse.create_prompt(
        name="support-chat",
        type="chat",
        prompt=[
            {"role": "system", "content": "You help with {{product}}."},
            {"type": "placeholder", "name": "history"},
            {"role": "user", "content": "{{question}}"},
        ],
        labels=["production"],
    )
    prompt = langfuse.get_prompt("support-chat", type="chat", cache_ttl_seconds=0)
    messages = prompt.compile(
        product="Acme", question="Where is my order?", history=[{"role": "user", "content": "hi"}]
    )
    assert messages == [
        {"role": "system", "content": "You help with Acme."},
        {"role": "user", "content": "hi"},
        {"role": "user", "content": "Where is my order?"},
    ]
    ours = http.get("/v1/prompts/support-chat/versions/1").json()["content"]
    assert ours["messages"][1] == {"type": "placeholder", "name": "history"}


def test_langfuse_cache_and_fallback_survive_a_server_outage(
    live_server: LiveServer, http: httpx.Client
) -> None:
    langfuse = _langfuse(live_server, _key(http, "runtime"))
    http.post(
        "/v1/prompts", json={"name": "greeting", "content": {"type": "text", "template": "Hi {{name}}"}}
    ).raise_for_status()
    http.post(
        "/v1/prompts/greeting/deployments", json={"environment": "production", "version": 1}
    ).raise_for_status()
    assert langfuse.get_prompt("greeting").compile(name="Ada") == "Hi Ada"  # cached for 60 s
    live_server.stop()
    assert langfuse.get_prompt("greeting").compile(name="Ada") == "Hi Ada"
    fallback = langfuse.get_prompt(
        "missing", fallback="Hello {{name}}", max_retries=0, fetch_timeout_seconds=1
    )
    assert fallback.is_fallback and fallback.compile(name="Ada") == "Hello Ada"


def test_protected_environments_and_roles_hold_for_api_clients(
    live_server: LiveServer, http: httpx.Client
) -> None:
    patched = http.patch("/v1/environments/production", json={"protected": True})
    assert patched.status_code == 200, patched.text
    editor = _langfuse(live_server, _key(http, "editor"))
    with pytest.raises(Exception) as refused:
        editor.create_prompt(name="guarded", prompt="x {{a}}", labels=["production"])
    assert "review" in str(refused.value) or "approv" in str(refused.value)
    assert http.get("/v1/prompts/guarded").status_code == 404  # nothing half-written

    viewer = _key(http, "viewer")
    response = httpx.post(
        f"{live_server.url}/api/public/v2/prompts", json={"name": "x", "prompt": "y"}, headers=_basic(viewer)
    )
    assert response.status_code == 403
    assert response.json() == {"error": "AccessDeniedError", "message": response.json()["message"]}
    assert "viewer" in response.json()["message"]

    unknown_label = editor_http = httpx.post(
        f"{live_server.url}/api/public/v2/prompts",
        json={"name": "labelled", "prompt": "y", "labels": ["canary"]},
        headers=_basic(_key(http, "editor")),
    )
    assert editor_http.status_code == 400 and "not an environment" in unknown_label.json()["message"]
    assert http.get("/v1/prompts/labelled").status_code == 404


def test_errors_have_langfuse_shapes(live_server: LiveServer, http: httpx.Client) -> None:
    secret = _key(http, "editor")
    base = f"{live_server.url}/api/public/v2/prompts"
    http.post(
        "/v1/prompts", json={"name": "one", "content": {"type": "text", "template": "1"}}
    ).raise_for_status()

    missing = httpx.get(f"{base}/nope", headers=_basic(secret))
    assert missing.status_code == 404
    assert (
        missing.json()["error"] == "LangfuseNotFoundError" and "Prompt not found" in missing.json()["message"]
    )
    both = httpx.get(f"{base}/one", params={"version": 1, "label": "production"}, headers=_basic(secret))
    assert both.status_code == 400 and both.json()["error"] == "InvalidRequestError"
    wrong_public = httpx.get(f"{base}/one", params={"version": 1}, headers=_basic(secret, "pk_someoneelse"))
    assert wrong_public.status_code == 401 and wrong_public.json()["error"] == "UnauthorizedError"
    no_auth = httpx.get(f"{base}/one")
    assert no_auth.status_code == 401 and "Basic" in no_auth.json()["message"]
    bearer = httpx.get(f"{base}/one", params={"version": 1}, headers={"Authorization": f"Bearer {secret}"})
    assert bearer.status_code == 200 and bearer.json()["prompt"] == "1"
    bad_body = httpx.post(base, json={"name": "two"}, headers=_basic(secret))
    assert bad_body.status_code == 400 and "prompt" in bad_body.json()["message"]
    reserved = httpx.patch(f"{base}/one/versions/1", json={"newLabels": ["latest"]}, headers=_basic(secret))
    assert reserved.status_code == 400 and "reserved" in reserved.json()["message"]
    deleted = httpx.delete(f"{base}/one", params={"version": 1}, headers=_basic(secret))
    assert deleted.status_code == 403 and deleted.json()["error"] == "AccessDeniedError"
    assert http.get("/v1/prompts/one/versions/1").status_code == 200


def test_an_experiment_serves_the_control_unless_a_unit_is_named(
    live_server: LiveServer, http: httpx.Client
) -> None:
    secret = _key(http, "runtime")
    http.post(
        "/v1/prompts", json={"name": "ab", "content": {"type": "text", "template": "A"}}
    ).raise_for_status()
    http.post(
        "/v1/prompts/ab/versions", json={"content": {"type": "text", "template": "B"}}
    ).raise_for_status()
    http.post(
        "/v1/prompts/ab/deployments", json={"environment": "production", "version": 1}
    ).raise_for_status()
    experiment: dict[str, Any] = http.post(
        "/v1/experiments",
        json={
            "prompt": "ab",
            "name": "all to B",
            "control_weight": 0.0001,
            "candidates": [{"version": 2, "weight": 1, "key": "b"}],
            "primary_metric": "completion",
            "baseline": 0.5,
            "mde": 0.1,
        },
    ).json()
    http.post(f"/v1/experiments/{experiment['id']}/start", json={}).raise_for_status()
    url = f"{live_server.url}/api/public/v2/prompts/ab"
    plain = httpx.get(url, headers=_basic(secret)).json()
    assert (plain["version"], plain["prompt"]) == (1, "A")  # Langfuse clients send no unit: the control
    with_unit = httpx.get(url, headers={**_basic(secret), "X-PromptKeeper-Unit": "user-42"}).json()
    assert (with_unit["version"], with_unit["prompt"]) == (2, "B")


def test_auth_check_and_the_keys_project(live_server: LiveServer, http: httpx.Client) -> None:
    langfuse = _langfuse(live_server, _key(http, "runtime"))
    assert langfuse.auth_check() is True
    projects = langfuse.api.projects.get()
    assert [p.name for p in projects.data] == ["default"]
    refused = httpx.get(f"{live_server.url}/api/public/projects", headers=_basic("pk_nope"))
    assert refused.status_code == 401 and refused.json()["error"] == "UnauthorizedError"


def test_refusals_are_answers_the_langfuse_client_does_not_retry(
    live_server: LiveServer, http: httpx.Client
) -> None:
    """langfuse retries 408, 409, 429 and 5xx: a refusal answered 409 was sent three times."""
    secret = _key(http, "editor")
    base = f"{live_server.url}/api/public/v2/prompts"
    http.post(
        "/v1/prompts", json={"name": "t", "content": {"type": "text", "template": "1"}}
    ).raise_for_status()
    type_change = httpx.post(base, json={"name": "t", "type": "chat", "prompt": []}, headers=_basic(secret))
    assert type_change.status_code == 400 and type_change.json()["error"] == "InvalidRequestError"
    assert "text prompt" in type_change.json()["message"]
    assert http.get("/v1/prompts/t").json()["latest_version"] == 1
    http.patch("/v1/environments/production", json={"protected": True}).raise_for_status()
    blocked = httpx.patch(f"{base}/t/versions/1", json={"newLabels": ["production"]}, headers=_basic(secret))
    assert blocked.status_code == 403 and blocked.json()["error"] == "AccessDeniedError"
    deleted = httpx.delete(f"{base}/t", headers=_basic(secret))
    assert deleted.status_code == 403 and "keeps every version" in deleted.json()["message"]
    for response in (type_change, blocked, deleted):
        assert not _should_retry(response), response.status_code


def test_list_filters_versions_by_update_time(live_server: LiveServer, http: httpx.Client) -> None:
    langfuse = _langfuse(live_server, _key(http, "editor"))
    langfuse.create_prompt(name="old", prompt="1")
    langfuse.create_prompt(name="both", prompt="1")
    middle = datetime.now(UTC)
    time.sleep(0.05)
    langfuse.create_prompt(name="both", prompt="2", config={"v": 2})
    langfuse.create_prompt(name="new", prompt="1")
    later = langfuse.api.prompts.list(from_updated_at=middle)
    assert [(p.name, p.versions) for p in later.data] == [("both", [2]), ("new", [1])]
    assert later.data[0].last_config == {"v": 2}
    earlier = langfuse.api.prompts.list(to_updated_at=middle)
    assert [(p.name, p.versions) for p in earlier.data] == [("both", [1]), ("old", [1])]
    named = langfuse.api.prompts.list(
        filter=json.dumps(
            [
                {"type": "string", "column": "name", "operator": "starts with", "value": "b"},
                {"type": "number", "column": "version", "operator": ">=", "value": 2},
            ]
        )
    )
    assert [(p.name, p.versions) for p in named.data] == [("both", [2])]
    labelled = langfuse.api.prompts.list(
        filter=json.dumps(
            [{"type": "arrayOptions", "column": "labels", "operator": "any of", "value": ["latest"]}]
        )
    )
    assert [(p.name, p.versions) for p in labelled.data] == [("both", [2]), ("new", [1]), ("old", [1])]
    bad = httpx.get(
        f"{live_server.url}/api/public/v2/prompts",
        params={"filter": '[{"type": "string", "column": "nope", "operator": "=", "value": "x"}]'},
        headers=_basic(_key(http, "viewer")),
    )
    assert bad.status_code == 400 and "filter[0].column" in bad.json()["message"]


def test_any_chat_role_and_unescaped_folder_names(live_server: LiveServer, http: httpx.Client) -> None:
    secret = _key(http, "editor")
    langfuse = _langfuse(live_server, secret)
    created = langfuse.create_prompt(
        name="team/critic",
        type="chat",
        prompt=[{"role": "critic", "content": "Judge {{x}}"}, {"role": "user", "content": "go"}],
        labels=["production"],
    )
    assert created.version == 1
    base = f"{live_server.url}/api/public/v2/prompts"
    # the 2.x SDK sends folder names unescaped; Langfuse's route is a catch-all
    raw = httpx.get(f"{base}/team/critic", headers=_basic(secret))
    assert raw.status_code == 200 and raw.json()["prompt"][0]["role"] == "critic"
    moved = httpx.patch(
        f"{base}/team/critic/versions/1", json={"newLabels": ["staging"]}, headers=_basic(secret)
    )
    assert moved.status_code == 200 and "staging" in moved.json()["labels"]
    compiled = langfuse.get_prompt("team/critic", type="chat", cache_ttl_seconds=0).compile(x="it")
    assert compiled[0] == {"role": "critic", "content": "Judge it"}
