"""Composition through the API, on SQLite and PostgreSQL: what is served, what is refused at save
and at deploy, time travel, the includes and dependants routes, and the audit log."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from promptkeeper import AsyncClient, Client
from promptkeeper.config import Settings
from promptkeeper.core.content import MAX_TEMPLATE_CHARS, content_hash
from promptkeeper.db.engine import Database
from promptkeeper.prompts.models import Prompt, PromptVersion, Release
from tests.conftest import ADMIN_KEY, LiveServer
from tests.helpers import add_version, chat_content, create_prompt, deploy, error_of, text_content

TAG = "@@@prompt:name=base|label=production@@@"


def _resolve(client: TestClient, name: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/v1/resolve/{name}", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _base(client: TestClient, *templates: str) -> None:
    create_prompt(client, "base", templates[0] if templates else "Be kind, {{ tone }}.")
    for template in templates[1:]:
        add_version(client, "base", template)
    deploy(client, "base", "production", 1)


def _refused(response: Any, reason: str, path: str, field: str = "content.template") -> str:
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["details"]["reason"] == reason, error
    assert error["details"]["path"] == path, error
    assert error["details"]["field"] == field, error
    message: str = error["message"]
    assert path in message, message
    return message


def test_resolve_serves_the_composed_text_and_raw_on_request(client: TestClient) -> None:
    _base(client)
    create_prompt(client, "outer", f"{TAG} Now answer {{{{ question }}}}.")
    deploy(client, "outer", "production", 1)

    served = _resolve(client, "outer")
    assert served["content"]["template"] == "Be kind, {{ tone }}. Now answer {{ question }}."
    assert served["variables"] == ["tone", "question"]
    assert served["includes"] == [{"name": "base", "label": "production", "version": 1, "revision": 1}]
    raw = _resolve(client, "outer", resolve="false")
    assert raw["content"]["template"] == f"{TAG} Now answer {{{{ question }}}}."
    assert raw["variables"] == ["question"] and raw["raw"] is True and "includes" not in raw
    assert "includes" not in _resolve(client, "base")  # a prompt without includes is served as before

    pinned = client.get("/v1/resolve/outer", params={"version": 1})
    assert pinned.json()["content"]["template"] == served["content"]["template"]
    assert "immutable" not in pinned.headers["Cache-Control"]  # it follows base's label
    rendered = client.post(
        "/v1/render", json={"name": "outer", "variables": {"tone": "please", "question": "Q"}}
    )
    assert rendered.status_code == 200, rendered.text
    assert rendered.json()["text"] == "Be kind, please. Now answer Q."
    by_version = client.post(
        "/v1/render", json={"name": "outer", "version": 1, "variables": {"tone": "now", "question": "Q"}}
    )
    assert by_version.status_code == 200 and by_version.json()["text"] == "Be kind, now. Now answer Q."
    listed = client.get("/v1/catalogue").json()["items"]
    entry = next(item for item in listed if item["name"] == "outer")
    assert entry["variables"] == ["tone", "question"] and entry["required"] == ["tone", "question"]
    bad = client.get("/v1/resolve/outer", params={"resolve": "maybe"})
    assert bad.status_code == 422 and error_of(bad)["details"]["field"] == "query.resolve"


def test_chat_messages_include_text_prompts_nested_and_by_version(client: TestClient) -> None:
    create_prompt(client, "inner", "inner v1")
    add_version(client, "inner", "inner v2")
    create_prompt(client, "base", "base sees @@@langfusePrompt:name=inner|version=1@@@")
    deploy(client, "base", "production", 1)
    content = chat_content(
        {"role": "system", "content": f"System: {TAG}"},
        {"role": "user", "content": "{{ question }}"},
    )
    created = client.post("/v1/prompts", json={"name": "chatty", "content": content})
    assert created.status_code == 201, created.text
    deploy(client, "chatty", "production", 1)
    served = _resolve(client, "chatty")
    assert served["content"]["messages"][0]["content"] == "System: base sees inner v1"
    assert served["content"]["messages"][1]["content"] == "{{ question }}"
    assert {(i["name"], i["label"], i["version"]) for i in served["includes"]} == {
        ("base", "production", 1),
        ("inner", None, 1),
    }


@pytest.mark.parametrize(
    ("tag", "reason", "message"),
    [
        ("@@@prompt:name=nowhere|label=production@@@", "missing_prompt", "prompt 'nowhere' does not exist"),
        (
            "@@@prompt:name=base|label=staging@@@",
            "missing_label",
            "'base' has no version deployed to 'staging'",
        ),
        ("@@@prompt:name=base|label=moon@@@", "missing_label", "label 'moon' is not an environment"),
        ("@@@prompt:name=base|version=9@@@", "missing_version", "prompt 'base' has no version 9"),
    ],
)
def test_a_reference_to_nothing_is_refused_at_save(
    client: TestClient, tag: str, reason: str, message: str
) -> None:
    _base(client)
    create_prompt(client, "outer", "plain")
    response = client.post("/v1/prompts/outer/versions", json={"content": text_content(f"x {tag}")})
    target = tag.split("name=")[1].split("@@@")[0]
    name, _, selector = target.partition("|")
    shown = (
        f"{name}@{selector.split('=')[1]}"
        if selector.startswith("label")
        else f"{name}#{selector.split('=')[1]}"
    )
    assert message in _refused(response, reason, f"outer → {shown}")
    assert client.get("/v1/prompts/outer").json()["latest_version"] == 1  # nothing half-written
    fresh = client.post("/v1/prompts", json={"name": "fresh", "content": text_content(tag)})
    _refused(fresh, reason, f"fresh → {shown}")
    assert client.get("/v1/prompts/fresh").status_code == 404


@pytest.mark.parametrize(
    ("tag", "problem"),
    [
        ("@@@prompt:name=base@@@", "either label=<environment> or version=<number>"),
        ("@@@prompt:name=base|label=production|version=1@@@", "either label"),
        ("@@@prompt:name=base|label=latest@@@", "label=latest is not supported"),
        ("@@@prompt:name=base|colour=red@@@", "is not name=…, label=… or version=…"),
        ("@@@prompt:name=base|version=x@@@", "'x' is not a version number"),
    ],
)
def test_a_malformed_reference_is_refused_naming_the_problem(
    client: TestClient, tag: str, problem: str
) -> None:
    _base(client)
    response = client.post("/v1/prompts", json={"name": "outer", "content": text_content(tag)})
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert problem in error["message"] and error["details"]["field"] == "content.template", error


def test_cycles_are_refused_at_save_and_at_deploy(client: TestClient) -> None:
    create_prompt(client, "a", "a plain")
    deploy(client, "a", "production", 1)
    create_prompt(client, "b", "b includes @@@prompt:name=a|label=production@@@")
    deploy(client, "b", "production", 1)
    # a → b → a: a new version of a may come to serve a@production
    response = client.post(
        "/v1/prompts/a/versions",
        json={"content": text_content("a includes @@@prompt:name=b|label=production@@@")},
    )
    _refused(response, "cycle", "a → b@production → a@production")
    itself = client.post(
        "/v1/prompts/a/versions", json={"content": text_content("@@@prompt:name=a|label=production@@@")}
    )
    _refused(itself, "cycle", "a → a@production")
    # an older version of itself is fixed text: no cycle
    add_version(client, "a", "a v2 keeps @@@prompt:name=a|version=1@@@")
    assert _resolve(client, "a", version="2")["content"]["template"] == "a v2 keeps a plain"

    # A cycle only deploys close: d v2 includes c@production, c v2 includes d@staging; each is
    # fine alone, and deploying both closes c@production → d@staging → c@production
    create_prompt(client, "c", "c plain")
    deploy(client, "c", "production", 1)
    create_prompt(client, "d", "d plain")
    deploy(client, "d", "staging", 1)
    add_version(client, "d", "d + @@@prompt:name=c|label=production@@@")
    add_version(client, "c", "c + @@@prompt:name=d|label=staging@@@")
    deploy(client, "d", "staging", 2)
    response = client.post("/v1/prompts/c/deployments", json={"environment": "production", "version": 2})
    message = _refused(response, "cycle", "c@production → d@staging → c@production")
    assert "deploying version 2 of 'c' to 'production' is refused" in message
    assert _resolve(client, "c")["version"] == 1  # nothing changed
    assert _resolve(client, "d", environment="staging")["content"]["template"] == "d + c plain"


def test_depth_and_composed_size_are_bounded(client: TestClient) -> None:
    create_prompt(client, "p0", "bottom")
    for level in range(1, 10):
        response = client.post(
            "/v1/prompts",
            json={"name": f"p{level}", "content": text_content(f"@@@prompt:name=p{level - 1}|version=1@@@")},
        )
        if response.status_code != 201:
            break
    assert response.status_code == 422, response.text
    assert error_of(response)["details"]["reason"] == "too_deep"
    assert level == 9  # eight levels of includes are allowed, the ninth is refused

    half = "x" * (MAX_TEMPLATE_CHARS // 2 + 10)
    create_prompt(client, "big", half)
    response = client.post(
        "/v1/prompts",
        json={"name": "twice", "content": text_content("@@@prompt:name=big|version=1@@@" * 2)},
    )
    assert response.status_code == 422, response.text
    assert error_of(response)["details"]["reason"] == "too_large"


def test_a_chat_prompt_cannot_be_included(client: TestClient) -> None:
    created = client.post(
        "/v1/prompts", json={"name": "talk", "content": chat_content({"role": "user", "content": "hi"})}
    )
    assert created.status_code == 201
    response = client.post(
        "/v1/prompts", json={"name": "outer", "content": text_content("@@@prompt:name=talk|version=1@@@")}
    )
    assert "only text prompts can be included" in _refused(response, "not_text", "outer → talk#1")


def test_time_travel_resolves_each_include_as_it_was(client: TestClient) -> None:
    _base(client, "base one", "base two")
    create_prompt(client, "outer", f"[{TAG}]")
    deploy(client, "outer", "production", 1)
    time.sleep(0.05)
    between = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    deploy(client, "base", "production", 2)
    assert _resolve(client, "outer")["content"]["template"] == "[base two]"
    then = _resolve(client, "outer", at=between)
    assert then["content"]["template"] == "[base one]"
    assert then["includes"][0]["version"] == 1
    assert _resolve(client, "outer", at=between, resolve="false")["content"]["template"] == f"[{TAG}]"


def test_includes_dependants_and_the_audit_log(client: TestClient) -> None:
    _base(client, "base one", "base two")
    create_prompt(client, "outer", f"[{TAG}]")
    deploy(client, "outer", "production", 1)
    deploy(client, "outer", "staging", 1)
    create_prompt(client, "pinned", "@@@prompt:name=base|version=1@@@")
    create_prompt(client, "top", "top @@@prompt:name=outer|label=staging@@@")
    deploy(client, "top", "production", 1)

    includes = client.get("/v1/prompts/outer/versions/1/includes")
    assert includes.status_code == 200, includes.text
    assert includes.json()["includes"] == [
        {
            "name": "base",
            "label": "production",
            "version": None,
            "field": "template",
            "resolves_to": 1,
            "error": None,
        }
    ]
    dependants = client.get("/v1/prompts/base/dependants")
    assert dependants.status_code == 200, dependants.text
    assert dependants.json()["dependants"] == [
        {
            "prompt": "outer",
            "version": 1,
            "label": "production",
            "target_version": None,
            "environments": ["staging", "production"],
        },
        {"prompt": "pinned", "version": 1, "label": None, "target_version": 1, "environments": []},
    ]
    live = client.get("/v1/prompts/base/dependants", params={"live": "true"}).json()["dependants"]
    assert [d["prompt"] for d in live] == ["outer"]
    assert client.get("/v1/prompts/nothing/dependants").status_code == 404

    deploy(client, "base", "production", 2)
    entries = client.get("/v1/audit", params={"prompt": "base", "action": "deployment.created"}).json()[
        "items"
    ]
    assert entries[0]["summary"]["after"]["version"] == 2
    # outer follows base@production in both environments; top follows outer@staging
    assert entries[0]["summary"]["after"]["dependants"] == [
        "outer@staging",
        "outer@production",
        "top@production",
    ]
    created = client.get("/v1/audit", params={"prompt": "outer", "action": "version.created"}).json()["items"]
    assert created[0]["summary"]["after"]["includes"] == [
        {"name": "base", "label": "production", "version": 1, "revision": 1}
    ]


def test_both_sdk_clients_get_composed_and_raw_prompts(live_server: LiveServer, tmp_path: Path) -> None:
    with live_server.client() as http:
        _base(http)
        create_prompt(http, "outer", f"{TAG} Q: {{{{ q }}}}")
        deploy(http, "outer", "production", 1)
    snapshot = tmp_path / "snapshot.json"
    with Client(live_server.url, ADMIN_KEY, snapshot_path=snapshot) as sdk:
        prompt = sdk.get("outer")
        assert prompt.render(tone="gently", q="why") == "Be kind, gently. Q: why"
        assert [i["name"] for i in prompt.includes] == ["base"]
        raw = sdk.get("outer", raw=True)
        assert raw.template == f"{TAG} Q: {{{{ q }}}}" and raw.includes == ()
        assert sdk.get("outer").template == "Be kind, {{ tone }}. Q: {{ q }}"  # raw did not replace it
    assert "Be kind" in snapshot.read_text() and "@@@" not in snapshot.read_text()

    async def run() -> tuple[str | None, str | None]:
        async with AsyncClient(live_server.url, ADMIN_KEY) as client:
            composed = await client.get("outer")
            stored = await client.get("outer", version=1, raw=True)
            return composed.template, stored.template

    assert asyncio.run(run()) == ("Be kind, {{ tone }}. Q: {{ q }}", f"{TAG} Q: {{{{ q }}}}")


def test_raw_reads_fail_over_like_every_read(live_server: LiveServer) -> None:
    """The first URL refuses connections (a server down): `raw=True` asks the next, as `get` does."""
    with live_server.client() as http:
        _base(http)
        create_prompt(http, "outer", f"{TAG} Q: {{{{ q }}}}")
        deploy(http, "outer", "production", 1)
    urls = ["http://127.0.0.1:9", live_server.url]  # nothing listens on port 9
    with Client(urls, ADMIN_KEY, stream=False) as sdk:
        assert sdk.get("outer", raw=True).template == f"{TAG} Q: {{{{ q }}}}"

    async def run() -> str | None:
        async with AsyncClient(urls, ADMIN_KEY, stream=False) as client:
            return (await client.get("outer", version=1, raw=True)).template

    assert asyncio.run(run()) == f"{TAG} Q: {{{{ q }}}}"
    with (
        Client(["http://127.0.0.1:9"], ADMIN_KEY, stream=False, retries=0) as down,
        pytest.raises(httpx.ConnectError),
    ):
        down.get("outer", raw=True)  # no server answers: the network error, not a stale answer


def test_a_broken_reference_in_older_text_fails_the_resolve_clearly(
    settings: Settings, client: TestClient
) -> None:
    create_prompt(client, "legacy", "plain")
    deploy(client, "legacy", "production", 1)
    database = Database(settings)
    try:  # text stored before composition existed: written past the checks, as an old import was
        with database.write_session() as session:
            prompt = session.scalar(select(Prompt).where(Prompt.name == "legacy"))
            assert prompt is not None
            content = text_content("@@@langfusePrompt:name=gone|label=production@@@")
            session.add(
                PromptVersion(
                    prompt_id=prompt.id,
                    number=2,
                    content=content,
                    variables=[],
                    placeholders=[],
                    content_hash=content_hash(content),
                    author="import",
                )
            )
            prompt.head_version = 2
            session.flush()
            release = session.scalar(select(Release).where(Release.prompt_id == prompt.id))
            assert release is not None
            release.version_number, release.revision = 2, release.revision + 1
            session.commit()
    finally:
        database.dispose()
    response = client.get("/v1/resolve/legacy")
    assert response.status_code == 409, response.text
    error = error_of(response)
    assert (
        error["details"]["path"] == "legacy → gone@production"
        and error["details"]["reason"] == "missing_prompt"
    )
    assert "prompt 'gone' does not exist" in error["message"]
    assert _resolve(client, "legacy", resolve="false")["content"]["template"].startswith("@@@langfusePrompt")
    includes = client.get("/v1/prompts/legacy/versions/2/includes").json()["includes"]
    assert includes[0]["resolves_to"] is None and "does not exist" in includes[0]["error"]


def test_experiment_variants_are_served_composed_and_follow_their_includes(client: TestClient) -> None:
    _base(client, "base one", "base two")
    create_prompt(client, "outer", f"A {TAG}")
    add_version(client, "outer", f"B {TAG}")
    deploy(client, "outer", "production", 1)
    body = {
        "prompt": "outer",
        "environment": "production",
        "name": "composed variants",
        "candidates": [{"version": 2, "weight": 1, "key": "treatment"}],
        "primary_metric": "completion",
        "baseline": 0.5,
        "mde": 0.07,
    }
    created = client.post("/v1/experiments", json=body)
    assert created.status_code == 201, created.text
    started = client.post(f"/v1/experiments/{created.json()['id']}/start", json={})
    assert started.status_code == 200, started.text

    def served() -> set[str]:
        plan = _resolve(client, "outer")["experiment"]
        texts = {v["content"]["template"] for v in plan["variants"]}
        for unit in ("u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8"):
            texts.add(_resolve(client, "outer", unit=unit)["content"]["template"])
        return texts

    assert served() == {"A base one", "B base one"}
    deploy(client, "base", "production", 2)
    assert served() == {"A base two", "B base two"}
