"""Prompts as files: pull, push (idempotent, conflict-checked, all or nothing), check with file and
line, against a served instance."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.conftest import LiveServer
from tests.helpers import run_cli

CHAT = {
    "type": "chat",
    "messages": [
        {"role": "system", "content": "You help with {{ product }}.\nBe brief."},
        {"type": "placeholder", "name": "history"},
        {"role": "user", "content": "{{ question }}"},
    ],
    "examples": [{"question": "hi", "answer": "hello"}],
    "config": {"model": "gpt-4o-mini", "temperature": 0.2},
    "response_schema": {"type": "object"},
}


def _seed(http: httpx.Client) -> None:
    http.post(
        "/v1/prompts",
        json={
            "name": "support/reply",
            "content": CHAT,
            "tags": ["support"],
            "owner": "team-a",
            "description": "d",
        },
    ).raise_for_status()
    http.post(
        "/v1/prompts", json={"name": "greet", "content": {"type": "text", "template": "Hi {{ n }}\nBye"}}
    ).raise_for_status()
    http.post(
        "/v1/prompts/greet/versions", json={"content": {"type": "text", "template": "Hello {{ n }}\nBye"}}
    ).raise_for_status()
    http.post(
        "/v1/prompts/greet/deployments", json={"environment": "production", "version": 1}
    ).raise_for_status()


def test_pull_push_round_trip_is_lossless_and_idempotent(live_server: LiveServer, tmp_path: Path) -> None:
    with live_server.client() as http:
        _seed(http)
    repo = tmp_path / "prompts"
    code, _, err = run_cli(live_server.url, "pull", str(repo), "--quiet")
    assert code == 0 and "pulled 2 prompt(s)" in err, err
    reply = (repo / "support" / "reply.yaml").read_text()
    assert "  content: |-\n    You help with {{ product }}.\n    Be brief." in reply  # readable blocks
    assert "- placeholder: history" in reply and "base_version: 1" in reply and "owner: team-a" in reply

    code, out, err = run_cli(live_server.url, "push", str(repo), "--quiet")
    assert code == 0 and "pushed: 0 new, 0 changed, 0 metadata only, 2 unchanged" in err, (out, err)
    with live_server.client() as http:
        assert http.get("/v1/prompts/support%2Freply/versions/1").json()["content"] == CHAT  # lossless

    greet = repo / "greet.yaml"
    greet.write_text(greet.read_text().replace("Hello {{ n }}", "Hello there, {{ n }}"))
    code, out, err = run_cli(live_server.url, "push", str(repo), "--dry-run", "--quiet")
    assert code == 0 and "update    greet: template" in out and "would push: 0 new, 1 changed" in err
    with live_server.client() as http:
        assert http.get("/v1/prompts/greet/versions").json()["total"] == 2  # a dry run changes nothing
    code, out, err = run_cli(
        live_server.url, "push", str(repo), "-m", "friendlier", "--deploy", "staging", "--quiet"
    )
    assert code == 0 and "pushed: 0 new, 1 changed" in err and "deployed to staging" in err, err
    assert "base_version: 3" in greet.read_text()
    with live_server.client() as http:
        v3 = http.get("/v1/prompts/greet/versions/3").json()
        assert v3["content"]["template"] == "Hello there, {{ n }}\nBye" and v3["message"] == "friendlier"
        assert http.get("/v1/resolve/greet", params={"environment": "staging"}).json()["version"] == 3
    code, _, err = run_cli(live_server.url, "push", str(repo), "--quiet")
    assert code == 0 and "0 changed" in err  # a second push does nothing

    new = repo / "faq.yaml"
    new.write_text("name: faq\ntags: [help]\ntype: text\ntemplate: |\n  Q: {{ q }}\n  A:\n")
    code, out, err = run_cli(live_server.url, "push", str(repo), "--json")
    summary = json.loads(out)
    assert code == 0 and summary["counts"]["create"] == 1 and summary["versions"] == {"faq": 1}, (out, err)
    with live_server.client() as http:
        faq = http.get("/v1/prompts/faq").json()
        assert faq["tags"] == ["help"]


def test_push_refuses_a_newer_remote_head_and_applies_nothing(
    live_server: LiveServer, tmp_path: Path
) -> None:
    with live_server.client() as http:
        _seed(http)
    repo = tmp_path / "prompts"
    assert run_cli(live_server.url, "pull", str(repo), "--quiet")[0] == 0
    with live_server.client() as http:  # someone else moves greet on
        http.post(
            "/v1/prompts/greet/versions", json={"content": {"type": "text", "template": "Hey {{ n }}"}}
        ).raise_for_status()
    (repo / "greet.yaml").write_text((repo / "greet.yaml").read_text().replace("Hello", "Howdy"))
    reply = repo / "support" / "reply.yaml"
    reply.write_text(reply.read_text().replace("Be brief.", "Be very brief."))
    code, _, err = run_cli(live_server.url, "push", str(repo), "--quiet")
    assert code == 1 and "'greet' is at v3 remotely but this file was pulled at v2" in err
    assert "nothing was pushed" in err
    with live_server.client() as http:
        assert (
            http.get("/v1/prompts/support%2Freply/versions").json()["total"] == 1
        )  # the other file waited too
    code, _, err = run_cli(live_server.url, "push", str(repo), "--force", "--quiet")
    assert code == 0 and "2 changed" in err
    with live_server.client() as http:
        assert http.get("/v1/prompts/greet/versions/4").json()["content"]["template"].startswith("Howdy")


def test_check_finds_a_broken_template_with_file_and_line(tmp_path: Path, live_server: LiveServer) -> None:
    repo = tmp_path / "prompts"
    (repo / "team").mkdir(parents=True)
    (repo / "ok.yaml").write_text("name: ok\ntype: text\ntemplate: Hi {{ n }}\n")
    broken = "name: team/broken\ntype: chat\nmessages:\n  - role: system\n    content: |\n      line one\n"
    (repo / "team" / "broken.yaml").write_text(broken + "      {% if %}\n")
    (repo / "misplaced.yaml").write_text("name: elsewhere\ntype: text\ntemplate: x\n")
    (repo / "typo.yaml").write_text("name: typo\ntype: text\ntemplat: x\n")
    code, _, err = run_cli(live_server.url, "check", str(repo))
    assert code == 1
    lines = err.strip().splitlines()
    assert any(
        f"{repo / 'team' / 'broken.yaml'}:7: template error in messages[0].content" in line for line in lines
    ), err
    assert any("misplaced.yaml:1: the prompt 'elsewhere' belongs in" in line for line in lines), err
    assert any("typo.yaml:3: unknown key(s) templat" in line for line in lines), err
    code, _, err = run_cli(live_server.url, "push", str(repo), "--quiet")
    assert code == 1  # push checks every file first and applies nothing
    with live_server.client() as http:
        assert http.get("/v1/prompts/ok").status_code == 404
    for path in (repo / "team" / "broken.yaml", repo / "misplaced.yaml", repo / "typo.yaml"):
        path.unlink()
    code, _, err = run_cli(live_server.url, "check", str(repo))
    assert code == 0 and "1 prompt file(s) OK" in err


def test_push_creates_an_included_prompt_before_the_files_that_include_it(
    live_server: LiveServer, tmp_path: Path
) -> None:
    repo = tmp_path / "prompts"
    repo.mkdir()
    (repo / "a-outer.yaml").write_text(
        "name: a-outer\ntype: text\ntemplate: 'Start. @@@prompt:name=z-base|label=staging@@@'\n"
    )
    (repo / "z-base.yaml").write_text("name: z-base\ntype: text\ntemplate: Base {{ n }}.\n")
    code, out, err = run_cli(live_server.url, "push", str(repo), "--deploy", "staging", "--quiet")
    assert code == 0 and "pushed: 2 new" in err, (out, err)
    with live_server.client() as http:
        served = http.get("/v1/resolve/a-outer", params={"environment": "staging"}).json()
    assert served["content"]["template"] == "Start. Base {{ n }}."
