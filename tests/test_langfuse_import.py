"""scripts/langfuse_import.py: a Langfuse project (here served by a PromptKeeper's compatible API)
into an empty PromptKeeper, versions and labels preserved; a second run changes nothing."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from promptkeeper.compat.langfuse import public_key
from tests.conftest import ADMIN_KEY, Backend, LiveServer, make_settings

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "langfuse_import.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("langfuse_import", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _seed(http: httpx.Client) -> None:
    lf = "/api/public/v2/prompts"
    for body in (
        {"name": "faq/answer", "prompt": "Answer {{q}}", "tags": ["faq"], "commitMessage": "one"},
        {
            "name": "faq/answer",
            "prompt": "Answer briefly: {{q}}",
            "labels": ["production"],
            "commitMessage": "two",
        },
        {"name": "faq/answer", "prompt": "Answer in one line: {{q}}", "labels": ["staging"]},
        {
            "name": "chat",
            "type": "chat",
            "prompt": [{"role": "system", "content": "Be kind"}, {"type": "placeholder", "name": "history"}],
            "labels": ["production"],
            "config": {"temperature": 0},
        },
    ):
        response = http.post(lf, json=body)
        assert response.status_code == 201, response.text


def test_import_from_the_api_then_again(
    live_server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = LiveServer(make_settings(Backend("sqlite", f"sqlite:///{tmp_path}/target.db"), tmp_path)).start()
    try:
        with live_server.client() as source_http:
            _seed(source_http)
        script = _script()
        args = ["--source", live_server.url, "--public-key", public_key(ADMIN_KEY), "--secret-key", ADMIN_KEY]
        args += ["--target", target.url, "--target-key", ADMIN_KEY]
        assert script.main(args) == 0
        out = capsys.readouterr().out
        assert "2 prompt(s) imported, 0 skipped, 0 error(s)" in out

        with target.client() as http:
            base = "/api/public/v2/prompts/faq%2Fanswer"
            versions = [http.get(base, params={"version": v}).json() for v in (1, 2, 3)]
            assert [v["prompt"] for v in versions] == [
                "Answer {{q}}",
                "Answer briefly: {{q}}",
                "Answer in one line: {{q}}",
            ]
            assert [v["labels"] for v in versions] == [[], ["production"], ["latest", "staging"]]
            assert [v["commitMessage"] for v in versions] == ["one", "two", None] and versions[0]["tags"] == [
                "faq"
            ]
            chat = http.get("/api/public/v2/prompts/chat").json()
            assert chat["prompt"][1] == {"type": "placeholder", "name": "history"} and chat["config"] == {
                "temperature": 0
            }

        assert script.main(args) == 0  # idempotent
        assert "0 prompt(s) imported, 2 skipped, 0 error(s)" in capsys.readouterr().out
    finally:
        target.stop()


def test_import_from_an_export_file_reports_unknown_labels(
    live_server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "prompts.json"
    export.write_text(
        json.dumps(
            [
                {
                    "name": "greet",
                    "version": 2,
                    "type": "text",
                    "prompt": "Hello {{n}}!",
                    "labels": ["canary"],
                    "tags": [],
                    "config": {},
                },
                {
                    "name": "greet",
                    "version": 1,
                    "type": "text",
                    "prompt": "Hi {{n}}",
                    "labels": ["production"],
                    "tags": [],
                    "config": {},
                },
            ]
        )
    )
    script = _script()
    assert (
        script.main(
            ["--from-file", str(export), "--target", live_server.url, "--target-key", ADMIN_KEY, "--dry-run"]
        )
        == 0
    )
    with live_server.client() as http:
        assert http.get("/v1/prompts/greet").status_code == 404  # a dry run changes nothing
    assert (
        script.main(["--from-file", str(export), "--target", live_server.url, "--target-key", ADMIN_KEY]) == 0
    )
    captured = capsys.readouterr()
    assert "label 'canary' is not an environment" in captured.err
    with live_server.client() as http:
        served = http.get("/v1/resolve/greet", params={"environment": "production"}).json()
        assert served["version"] == 1
        assert (
            script.main(
                [
                    "--from-file",
                    str(tmp_path / "missing.json"),
                    "--target",
                    live_server.url,
                    "--target-key",
                    ADMIN_KEY,
                ]
            )
            == 1
        )


def test_an_export_with_upper_case_names_imports_whole(
    live_server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 22: 1 of 4 prompts of an export failed, on its upper-case name."""
    export = tmp_path / "prompts.json"
    rows = [
        ("movieCritic", 1, "Rate {{movie}}", ["production"]),
        ("movieCritic", 2, "Rate {{movie}} in a line", []),
        ("Support/ReplyDraft", 1, "Draft a reply to {{ticket}}", ["production"]),
        ("faq", 1, "Answer {{q}}", []),
        ("moviecritic", 1, "a second spelling", []),
    ]
    export.write_text(
        json.dumps(
            [
                {"name": n, "version": v, "type": "text", "prompt": p, "labels": lb, "tags": [], "config": {}}
                for n, v, p, lb in rows
            ]
        )
    )
    args = ["--from-file", str(export), "--target", live_server.url, "--target-key", ADMIN_KEY]
    assert _script().main(args) == 1  # the second spelling is the one error, and it says why
    captured = capsys.readouterr()
    assert "3 prompt(s) imported, 0 skipped, 1 error(s)" in captured.out, captured
    assert "moviecritic: the export also has 'movieCritic'" in captured.err, captured.err
    with live_server.client() as http:
        served = http.get("/v1/resolve/Support%2FReplyDraft", params={"environment": "production"}).json()
        assert served["name"] == "Support/ReplyDraft" and served["version"] == 1
        assert http.get("/v1/prompts/movieCritic").json()["latest_version"] == 2
        assert http.get("/v1/prompts", params={"search": "moviecritic"}).json()["total"] == 1
        assert (
            http.get("/v1/resolve/movieCritic", params={"environment": "production"}).json()["version"] == 1
        )


def test_import_keeps_composition_tags_and_creates_what_they_include_first(
    live_server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = LiveServer(make_settings(Backend("sqlite", f"sqlite:///{tmp_path}/target.db"), tmp_path)).start()
    tag = "@@@langfusePrompt:name=z/base|label=production@@@"
    try:
        with live_server.client() as source_http:
            for body in (
                {"name": "z/base", "prompt": "Be brief.", "labels": ["production"]},
                {"name": "a-outer", "prompt": f"{tag} Answer {{{{q}}}}", "labels": ["production"]},
            ):
                response = source_http.post("/api/public/v2/prompts", json=body)
                assert response.status_code == 201, response.text
        script = _script()
        args = ["--source", live_server.url, "--public-key", public_key(ADMIN_KEY), "--secret-key", ADMIN_KEY]
        args += ["--target", target.url, "--target-key", ADMIN_KEY]
        assert script.main(args) == 0, capsys.readouterr()
        assert "2 prompt(s) imported, 0 skipped, 0 error(s)" in capsys.readouterr().out
        with target.client() as http:
            raw = http.get("/v1/resolve/a-outer", params={"resolve": "false"}).json()
            assert raw["content"]["template"] == f"{tag} Answer {{{{q}}}}"  # the tag, not its expansion
            assert http.get("/v1/resolve/a-outer").json()["content"]["template"] == "Be brief. Answer {{q}}"
    finally:
        target.stop()
