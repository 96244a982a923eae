"""Drafts: fork, edit, discard and three-way merge onto a moving head, alone and concurrently."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from promptkeeper.access.service import DEFAULT_PROJECT, Role, create_api_key, get_project
from promptkeeper.audit.models import AuditEntry
from promptkeeper.bootstrap import create_project
from promptkeeper.config import Settings
from promptkeeper.db.engine import Database
from tests.conftest import LiveServer
from tests.helpers import Client, add_version, chat_content, create_prompt, error_of, quote_name, text_content

LINES = "".join(f"line {n}\n" for n in range(1, 10))  # nine lines: edits two apart merge cleanly


def _edit_line(template: str, number: int, text: str) -> str:
    lines = template.splitlines(keepends=True)
    lines[number - 1] = text + "\n"
    return "".join(lines)


def _drafts_url(name: str) -> str:
    return f"/v1/prompts/{quote_name(name)}/drafts"


def _new_draft(client: Client, name: str, **body: Any) -> dict[str, Any]:
    response = client.post(_drafts_url(name), json=body)
    assert response.status_code == 201, response.text
    draft: dict[str, Any] = response.json()
    return draft


def _edit(client: Client, name: str, draft_id: int, **body: Any) -> dict[str, Any]:
    response = client.patch(f"{_drafts_url(name)}/{draft_id}", json=body)
    assert response.status_code == 200, response.text
    draft: dict[str, Any] = response.json()
    return draft


def _merge(client: Client, name: str, draft_id: int, **body: Any) -> httpx.Response:
    return client.post(f"{_drafts_url(name)}/{draft_id}/merge", json=body)


def _merged(client: Client, name: str, draft_id: int, **body: Any) -> dict[str, Any]:
    response = _merge(client, name, draft_id, **body)
    assert response.status_code == 201, response.text
    merged: dict[str, Any] = response.json()
    return merged


def _key(settings: Settings, role: Role, project: str = DEFAULT_PROJECT) -> str:
    database = Database(settings)
    try:
        with database.write_session() as session:
            found = create_project(session=session, name=project) if project != DEFAULT_PROJECT else None
            owner = found or get_project(session=session, name=project)
            secret = create_api_key(
                session=session, project=owner, name=f"{role.value}-key", role=role
            ).secret
            session.commit()
        return secret
    finally:
        database.dispose()


def _audit(settings: Settings, prefix: str) -> list[AuditEntry]:
    database = Database(settings)
    try:
        with database.session() as session:
            query = select(AuditEntry).where(AuditEntry.action.startswith(prefix)).order_by(AuditEntry.id)
            return list(session.scalars(query))
    finally:
        database.dispose()


# --- create, read, list ---------------------------------------------------------------------------


def test_draft_forks_from_the_head_by_default(client: TestClient) -> None:
    create_prompt(client, "team/greeting", "Hello {{ name }}")
    add_version(client, "team/greeting", "Hi {{ name }}")
    draft = _new_draft(client, "team/greeting", title="friendlier")
    assert draft["prompt"] == "team/greeting" and draft["title"] == "friendlier"
    assert (draft["base_version"], draft["head_version"], draft["behind"]) == (2, 2, False)
    assert (draft["status"], draft["revision"], draft["merged_version"]) == ("open", 1, None)
    assert draft["content"]["template"] == "Hi {{ name }}"
    assert draft["author"] == "admin"  # the name of the API key
    assert draft["diff"] == {"changed_fields": [], "changes": [], "unified": {}}
    one = client.get(f"{_drafts_url('team/greeting')}/{draft['id']}").json()
    assert one == draft
    listing = client.get(_drafts_url("team/greeting")).json()
    assert listing["total"] == 1 and listing["items"][0]["id"] == draft["id"]
    assert listing["items"][0]["diff"] is None  # lists stay cheap


def test_draft_without_a_body_and_with_content(client: TestClient) -> None:
    create_prompt(client, "p", "one")
    response = client.post(_drafts_url("p"))
    assert response.status_code == 201, response.text
    assert response.json()["content"]["template"] == "one"
    edited = _new_draft(client, "p", content=text_content("two {{ x }}"))
    assert edited["content"]["template"] == "two {{ x }}"
    assert edited["diff"]["changed_fields"] == ["template"]
    assert edited["diff"]["changes"] == [
        {"path": "template", "kind": "changed", "before": "one", "after": "two {{ x }}"}
    ]
    assert "-one" in edited["diff"]["unified"]["template"]
    assert "+two {{ x }}" in edited["diff"]["unified"]["template"]
    listing = client.get(_drafts_url("p"), params={"limit": 1}).json()
    assert listing["total"] == 2 and [d["id"] for d in listing["items"]] == [edited["id"]]


def test_draft_of_an_unknown_version_or_prompt_is_404(client: TestClient) -> None:
    create_prompt(client, "p")
    response = client.post(_drafts_url("p"), json={"base_version": 5})
    assert response.status_code == 404 and "no version 5" in error_of(response)["message"]
    assert client.post(_drafts_url("nope"), json={}).status_code == 404
    assert client.post(_drafts_url("p"), json={"unknown": 1}).status_code == 422


# --- merge ------------------------------------------------------------------------------------------


def test_fast_forward_merge(client: TestClient) -> None:
    create_prompt(client, "p", "one")
    draft = _new_draft(client, "p", title="say two")
    _edit(client, "p", draft["id"], content=text_content("two"))
    merged = _merged(client, "p", draft["id"])
    version = merged["version"]
    assert (version["number"], version["parent"], version["message"]) == (
        2,
        1,
        f"Merge draft #{draft['id']}: say two",
    )
    assert version["content"]["template"] == "two"
    assert version == client.get("/v1/prompts/p/versions/2").json()  # the same shape as the version route
    assert merged["draft"]["status"] == "merged" and merged["draft"]["merged_version"] == 2
    assert merged["draft"]["head_version"] == 2
    assert client.get(_drafts_url("p")).json()["total"] == 0  # no longer open
    assert client.get(_drafts_url("p"), params={"status": "merged"}).json()["total"] == 1
    again = _merge(client, "p", draft["id"])
    assert again.status_code == 409 and "is merged" in error_of(again)["message"]
    edit = client.patch(f"{_drafts_url('p')}/{draft['id']}", json={"title": "x"})
    assert edit.status_code == 409 and "only open drafts" in error_of(edit)["message"]


def test_merge_message_is_the_callers(client: TestClient) -> None:
    create_prompt(client, "p", "one")
    draft = _new_draft(client, "p", content=text_content("two"))
    merged = _merged(client, "p", draft["id"], message="shorter greeting")
    assert merged["version"]["message"] == "shorter greeting"


def test_two_drafts_of_one_base_merge_one_after_the_other(client: TestClient) -> None:
    create_prompt(client, "p", LINES)
    first = _new_draft(client, "p", content=text_content(_edit_line(LINES, 2, "first edit")))
    second = _new_draft(client, "p", content=text_content(_edit_line(LINES, 7, "second edit")))
    assert _merged(client, "p", first["id"])["version"]["number"] == 2
    behind = client.get(f"{_drafts_url('p')}/{second['id']}").json()
    assert (behind["base_version"], behind["head_version"], behind["behind"]) == (1, 2, True)
    assert behind["diff"]["changed_fields"] == ["template"]  # against its own base, not the head
    version = _merged(client, "p", second["id"])["version"]
    assert (version["number"], version["parent"]) == (3, 2)
    template = version["content"]["template"]
    assert template == _edit_line(_edit_line(LINES, 2, "first edit"), 7, "second edit")


def test_overlapping_drafts_conflict_then_resolve(client: TestClient) -> None:
    create_prompt(client, "p", LINES)
    first = _new_draft(client, "p", content=text_content(_edit_line(LINES, 3, "mine")))
    theirs = _edit_line(_edit_line(LINES, 3, "yours"), 4, "yours too")
    second = _new_draft(client, "p", content=text_content(theirs), title="second")
    _merged(client, "p", first["id"])
    conflict = _merge(client, "p", second["id"])
    assert conflict.status_code == 409
    error = error_of(conflict)
    assert error["code"] == "conflict"
    assert "conflicts in template (lines 3-4)" in error["message"], error["message"]
    details = error["details"]
    assert (details["head_version"], details["base_version"]) == (2, 1)
    assert details["conflicts"] == [
        {
            "path": "template",
            "kind": "lines",
            "base": "line 3\nline 4\n",
            "ours": "yours\nyours too\n",
            "theirs": "mine\nline 4\n",
            "base_lines": [3, 4],
            "ours_lines": [3, 4],
            "theirs_lines": [3, 4],
        }
    ]
    # the draft is kept open and unchanged; no version was created
    kept = client.get(f"{_drafts_url('p')}/{second['id']}").json()
    assert (kept["status"], kept["revision"], kept["content"]["template"]) == ("open", 1, theirs)
    assert client.get("/v1/prompts/p").json()["latest_version"] == 2
    # the author resolves against the head and says so with base_version
    resolved = _edit_line(_edit_line(LINES, 3, "mine and yours"), 4, "yours too")
    edited = _edit(
        client, "p", second["id"], content=text_content(resolved), base_version=2, expected_revision=1
    )
    assert (edited["revision"], edited["base_version"], edited["behind"]) == (2, 2, False)
    version = _merged(client, "p", second["id"], expected_revision=2)["version"]
    assert (version["number"], version["parent"], version["content"]["template"]) == (3, 2, resolved)


def test_chat_conflict_names_message_lines_and_config(client: TestClient) -> None:
    base = chat_content(
        {"role": "system", "content": "You help."},
        {"role": "user", "content": "a\nb\nc\nd\ne\n"},
        config={"temperature": 0.2, "model": "m"},
    )
    assert client.post("/v1/prompts", json={"name": "chat", "content": base}).status_code == 201
    ours = chat_content(
        base["messages"][0],
        {"role": "user", "content": "a\nb\nC\nD\ne\n"},
        config={"temperature": 0.5, "model": "m"},
    )
    theirs = chat_content(
        base["messages"][0],
        {"role": "user", "content": "a\nb\nc!\nd!\ne\n"},
        config={"temperature": 0.9, "model": "m"},
    )
    draft = _new_draft(client, "chat", content=ours)
    assert client.post("/v1/prompts/chat/versions", json={"content": theirs}).status_code == 201
    response = _merge(client, "chat", draft["id"])
    assert response.status_code == 409
    error = error_of(response)
    assert "conflicts in messages[1].content (lines 3-4), config.temperature" in error["message"]
    by_path = {c["path"]: c for c in error["details"]["conflicts"]}
    assert by_path["config.temperature"] == {
        "path": "config.temperature",
        "kind": "value",
        "base": 0.2,
        "ours": 0.5,
        "theirs": 0.9,
        "base_lines": None,
        "ours_lines": None,
        "theirs_lines": None,
    }
    assert by_path["messages[1].content"]["ours_lines"] == [3, 4]


def test_chat_drafts_edit_different_messages(client: TestClient) -> None:
    base = chat_content(
        {"role": "system", "content": "You are terse."},
        {"type": "placeholder", "name": "history"},
        {"role": "user", "content": "{{ question }}"},
        config={"temperature": 0.2},
    )
    assert client.post("/v1/prompts", json={"name": "chat", "content": base}).status_code == 201
    system = _new_draft(client, "chat")
    user = _new_draft(client, "chat")
    edited_system = dict(
        base, messages=[{"role": "system", "content": "You are kind."}, *base["messages"][1:]]
    )
    edited_user = dict(
        base,
        messages=[*base["messages"][:2], {"role": "user", "content": "{{ question }} ({{ lang }})"}],
        config={"temperature": 0.2, "max_tokens": 100},
    )
    _edit(client, "chat", system["id"], content=edited_system)
    _edit(client, "chat", user["id"], content=edited_user)
    assert _merged(client, "chat", user["id"])["version"]["number"] == 2
    version = _merged(client, "chat", system["id"])["version"]
    assert version["number"] == 3
    assert version["content"]["messages"] == [
        {"role": "system", "content": "You are kind."},
        {"type": "placeholder", "name": "history"},
        {"role": "user", "content": "{{ question }} ({{ lang }})"},
    ]
    assert version["content"]["config"] == {"temperature": 0.2, "max_tokens": 100}
    assert version["placeholders"] == ["history"]
    assert sorted(version["variables"]) == ["lang", "question"]


def test_draft_of_an_old_base_version(client: TestClient) -> None:
    create_prompt(client, "p", LINES)
    add_version(client, "p", _edit_line(LINES, 1, "v2 edit"))
    v3 = _edit_line(_edit_line(LINES, 1, "v2 edit"), 3, "v3 edit")
    add_version(client, "p", v3)
    draft = _new_draft(client, "p", base_version=1, content=text_content(_edit_line(LINES, 8, "draft edit")))
    assert (draft["base_version"], draft["head_version"], draft["behind"]) == (1, 3, True)
    assert [c["path"] for c in draft["diff"]["changes"]] == ["template"]
    assert "+draft edit" in draft["diff"]["unified"]["template"]
    version = _merged(client, "p", draft["id"])["version"]
    assert (version["number"], version["parent"]) == (4, 3)
    assert version["content"]["template"] == _edit_line(v3, 8, "draft edit")


def test_nothing_to_merge(client: TestClient) -> None:
    create_prompt(client, "p", LINES)
    unchanged = _new_draft(client, "p")
    response = _merge(client, "p", unchanged["id"])
    assert response.status_code == 409 and "nothing to merge" in error_of(response)["message"]
    # the head already made the same edit as the draft
    same = _edit_line(LINES, 5, "same")
    draft = _new_draft(client, "p", content=text_content(same))
    add_version(client, "p", same)
    response = _merge(client, "p", draft["id"])
    assert response.status_code == 409 and "nothing to merge" in error_of(response)["message"]
    assert client.get(f"{_drafts_url('p')}/{draft['id']}").json()["status"] == "open"
    assert client.get("/v1/prompts/p").json()["latest_version"] == 2


def test_merge_that_gives_invalid_content_is_a_conflict(client: TestClient) -> None:
    system, user = {"role": "system", "content": "s"}, {"role": "user", "content": "u"}
    history = {"type": "placeholder", "name": "history"}
    assert (
        client.post("/v1/prompts", json={"name": "c", "content": chat_content(system, user)}).status_code
        == 201
    )
    draft = _new_draft(client, "c", content=chat_content(system, history, user))
    assert (
        client.post(
            "/v1/prompts/c/versions", json={"content": chat_content(system, user, history)}
        ).status_code
        == 201
    )
    response = _merge(client, "c", draft["id"])
    assert response.status_code == 409
    error = error_of(response)
    assert "invalid content" in error["message"] and "placeholder names must be unique" in error["message"]
    assert error["details"]["head_version"] == 2 and error["details"]["conflicts"] == []
    assert client.get("/v1/prompts/c").json()["latest_version"] == 2


# --- edits --------------------------------------------------------------------------------------------


def test_expected_revision_guards_edits_and_merges(client: TestClient) -> None:
    create_prompt(client, "p", "one")
    draft = _new_draft(client, "p")
    url = f"{_drafts_url('p')}/{draft['id']}"
    alice = _edit(client, "p", draft["id"], content=text_content("alice"), expected_revision=1)
    assert alice["revision"] == 2
    bob = client.patch(url, json={"content": text_content("bob"), "expected_revision": 1})
    assert bob.status_code == 409
    error = error_of(bob)
    assert "at revision 2, not 1" in error["message"] and error["details"]["revision"] == 2
    assert client.get(url).json()["content"]["template"] == "alice"  # bob did not overwrite alice
    stale_merge = _merge(client, "p", draft["id"], expected_revision=1)
    assert stale_merge.status_code == 409 and error_of(stale_merge)["details"]["revision"] == 2
    # an edit that changes nothing is not an edit
    assert _edit(client, "p", draft["id"], content=text_content("alice"))["revision"] == 2
    assert _edit(client, "p", draft["id"], title="t")["revision"] == 3
    assert client.patch(url, json={"title": None}).status_code == 422
    assert client.patch(url, json={"base_version": 9}).status_code == 404


def test_invalid_templates_are_rejected_and_nothing_is_saved(client: TestClient) -> None:
    create_prompt(client, "p", "one")
    response = client.post(_drafts_url("p"), json={"content": text_content("fine\n{{ broken")})
    assert response.status_code == 422
    error = error_of(response)
    assert error["details"]["field"] == "content.template" and error["details"]["line"] == 2
    assert client.get(_drafts_url("p"), params={"status": "all"}).json()["total"] == 0
    draft = _new_draft(client, "p")
    url = f"{_drafts_url('p')}/{draft['id']}"
    bad_chat = chat_content(
        {"role": "system", "content": "ok"}, {"role": "user", "content": "a\nb\n{% if %}"}
    )
    response = client.patch(url, json={"content": bad_chat, "title": "new title"})
    assert response.status_code == 422
    error = error_of(response)
    assert error["details"]["field"] == "content.messages[1].content" and error["details"]["line"] == 3
    assert error["message"].startswith("content.messages[1].content: ")
    kept = client.get(url).json()
    assert (kept["revision"], kept["title"], kept["content"]["template"]) == (1, "", "one")
    # schema errors are 422 too
    assert client.patch(url, json={"content": {"type": "text"}}).status_code == 422


def test_another_prompts_or_projects_draft_is_404(client: TestClient, settings: Settings) -> None:
    create_prompt(client, "a")
    create_prompt(client, "b")
    draft = _new_draft(client, "a")
    other = f"{_drafts_url('b')}/{draft['id']}"
    for response in (
        client.get(other),
        client.patch(other, json={"title": "x"}),
        client.delete(other),
        _merge(client, "b", draft["id"]),
    ):
        assert response.status_code == 404
        assert error_of(response)["message"] == f"draft {draft['id']} not found"
    assert client.get(f"{_drafts_url('a')}/999").status_code == 404
    # the same prompt name in another project
    headers = {"Authorization": f"Bearer {_key(settings, Role.admin, project='other')}"}
    assert (
        client.post(
            "/v1/prompts", json={"name": "a", "content": text_content("x")}, headers=headers
        ).status_code
        == 201
    )
    response = client.get(f"{_drafts_url('a')}/{draft['id']}", headers=headers)
    assert response.status_code == 404 and error_of(response)["message"] == f"draft {draft['id']} not found"
    assert client.get(_drafts_url("a"), headers=headers).json()["total"] == 0


def test_discard_then_merge_is_409(client: TestClient) -> None:
    create_prompt(client, "p", "one")
    draft = _new_draft(client, "p", content=text_content("two"))
    url = f"{_drafts_url('p')}/{draft['id']}"
    discarded = client.delete(url)
    assert discarded.status_code == 200
    assert discarded.json()["status"] == "discarded" and discarded.json()["content"]["template"] == "two"
    merge = _merge(client, "p", draft["id"])
    assert merge.status_code == 409 and "is discarded" in error_of(merge)["message"]
    assert error_of(merge)["details"]["status"] == "discarded"
    assert client.patch(url, json={"title": "x"}).status_code == 409
    assert client.delete(url).status_code == 409
    assert client.get(url).json()["status"] == "discarded"  # kept for history
    assert client.get(_drafts_url("p")).json()["total"] == 0
    assert client.get(_drafts_url("p"), params={"status": "discarded"}).json()["total"] == 1
    assert client.get(_drafts_url("p"), params={"status": "all"}).json()["total"] == 1
    assert client.get(_drafts_url("p"), params={"status": "closed"}).status_code == 422
    assert client.get("/v1/prompts/p").json()["latest_version"] == 1


def test_viewer_reads_but_cannot_change_drafts(client: TestClient, settings: Settings) -> None:
    create_prompt(client, "p", "one")
    draft = _new_draft(client, "p")
    url = f"{_drafts_url('p')}/{draft['id']}"
    viewer = {"Authorization": f"Bearer {_key(settings, Role.viewer)}"}
    for response in (
        client.post(_drafts_url("p"), json={}, headers=viewer),
        client.patch(url, json={"title": "x"}, headers=viewer),
        client.delete(url, headers=viewer),
        client.post(f"{url}/merge", json={}, headers=viewer),
    ):
        assert response.status_code == 403
        assert error_of(response)["code"] == "permission_denied"
    assert client.get(url, headers=viewer).status_code == 200
    assert client.get(_drafts_url("p"), headers=viewer).json()["total"] == 1
    assert client.get(url).json()["revision"] == 1


def test_every_draft_change_is_audited(client: TestClient, settings: Settings) -> None:
    create_prompt(client, "p", "one")
    draft = _new_draft(client, "p", title="t")
    _edit(client, "p", draft["id"], content=text_content("two"))
    _merged(client, "p", draft["id"])
    other = _new_draft(client, "p")
    assert client.delete(f"{_drafts_url('p')}/{other['id']}").status_code == 200
    entries = _audit(settings, "draft.")
    assert [e.action for e in entries] == [
        "draft.created",
        "draft.updated",
        "draft.merged",
        "draft.created",
        "draft.discarded",
    ]
    assert all(e.prompt == "p" and e.target_type == "draft" and e.actor for e in entries)
    assert entries[0].target == f"p#{draft['id']}"
    created, updated, merged = (e.summary for e in entries[:3])
    assert created["after"]["title"] == "t" and created["after"]["base_version"] == 1
    assert updated["before"]["revision"] == 1 and updated["after"]["revision"] == 2
    assert updated["before"]["content_hash"] != updated["after"]["content_hash"]
    assert merged["after"]["version"] == 2 and merged["after"]["fast_forward"] is True
    assert entries[4].summary == {
        "before": {"status": "open", "revision": 1},
        "after": {"status": "discarded"},
    }
    assert "content" not in str([e.summary for e in entries]).replace("content_hash", "")
    # the merge also wrote the version entry that every new version gets
    assert [e.summary["after"]["version"] for e in _audit(settings, "version.created")] == [1, 2]
    listed = client.get("/v1/audit", params={"action": "draft.*"})
    if listed.status_code == 200:  # the audit route may still be arriving
        assert {item["action"] for item in listed.json()["items"]} == {
            "draft.created",
            "draft.updated",
            "draft.merged",
            "draft.discarded",
        }


# --- concurrency through a real server ----------------------------------------------------------------


def _in_parallel(server: LiveServer, requests: list[Any]) -> list[httpx.Response]:
    barrier = Barrier(len(requests))

    def one(index: int) -> httpx.Response:
        with server.client(timeout=60) as client:
            barrier.wait()
            response: httpx.Response = requests[index](client)
            return response

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(one, range(len(requests))))


@pytest.mark.parametrize("count", [2, 4])
def test_parallel_merges_of_non_overlapping_drafts(live_server: LiveServer, count: int) -> None:
    edited_lines = [1 + 2 * i for i in range(count)]  # an unchanged line between any two edits
    with live_server.client() as client:
        create_prompt(client, "p", LINES)
        ids = [
            _new_draft(client, "p", content=text_content(_edit_line(LINES, n, f"edit {n}")))["id"]
            for n in edited_lines
        ]
    responses = _in_parallel(live_server, [lambda c, i=i: _merge(c, "p", i) for i in ids])
    assert [r.status_code for r in responses] == [201] * count, [r.text for r in responses]
    numbers = sorted(r.json()["version"]["number"] for r in responses)
    assert numbers == list(range(2, count + 2))
    with live_server.client() as client:
        versions = client.get("/v1/prompts/p/versions").json()
        head = client.get(f"/v1/prompts/p/versions/{count + 1}").json()
    assert versions["total"] == count + 1
    assert all(v["parent"] == v["number"] - 1 for v in versions["items"] if v["number"] > 1)
    expected = LINES
    for n in edited_lines:
        expected = _edit_line(expected, n, f"edit {n}")
    assert head["content"]["template"] == expected


def test_parallel_merges_of_overlapping_drafts(live_server: LiveServer) -> None:
    with live_server.client() as client:
        create_prompt(client, "p", LINES)
        ids = [
            _new_draft(client, "p", content=text_content(_edit_line(LINES, 5, f"edit {i}")))["id"]
            for i in range(2)
        ]
    responses = _in_parallel(live_server, [lambda c, i=i: _merge(c, "p", i) for i in ids])
    assert sorted(r.status_code for r in responses) == [201, 409], [r.text for r in responses]
    loser = next(r for r in responses if r.status_code == 409)
    error = error_of(loser)
    assert "template (line 5)" in error["message"]
    assert error["details"]["head_version"] == 2 and error["details"]["base_version"] == 1
    with live_server.client() as client:
        assert client.get("/v1/prompts/p").json()["latest_version"] == 2
        states = sorted(client.get(f"{_drafts_url('p')}/{i}").json()["status"] for i in ids)
    assert states == ["merged", "open"]


def test_parallel_edits_of_one_draft_never_overwrite(live_server: LiveServer) -> None:
    with live_server.client() as client:
        create_prompt(client, "p", "one")
        draft_id = _new_draft(client, "p")["id"]
    url = f"{_drafts_url('p')}/{draft_id}"
    responses = _in_parallel(
        live_server,
        [
            lambda c, i=i: c.patch(url, json={"content": text_content(f"edit {i}"), "expected_revision": 1})
            for i in range(8)
        ],
    )
    assert sorted(r.status_code for r in responses) == [200] + [409] * 7, [r.text for r in responses]
    winner = next(r.json() for r in responses if r.status_code == 200)
    with live_server.client() as client:
        final = client.get(url).json()
    assert final["revision"] == 2 and final["content"] == winner["content"]
