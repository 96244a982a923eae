"""`promptkeeper monitors ...` against a served instance: create, list, set, status; errors as one line."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import LiveServer
from tests.helpers import create_prompt, deploy, run_cli


def _cli(server: LiveServer, *args: str) -> tuple[int, str, str]:
    return run_cli(server.url, *args)


def test_monitors_from_the_cli(live_server: LiveServer, tmp_path: Path) -> None:
    with live_server.client() as client:
        create_prompt(client, "cli/mon", "A {{ q }}")
        create_prompt(client, "cli/other", "B {{ q }}")
        deploy(client, "cli/mon", "production", 1)
    safety = '{"scorer": "not_contains", "name": "safety", "params": {"values": ["UNSAFE"]}}'
    code, out, err = _cli(
        live_server,
        "monitors",
        "create",
        "cli/mon",
        "-s",
        "json_valid",
        "-s",
        safety,
        "--sample-rate",
        "0.2",
        "--json",
    )
    assert code == 0, err
    monitor = json.loads(out)
    assert [r["name"] for r in monitor["scorers"]] == ["json_valid", "safety"] and monitor[
        "sample_rate"
    ] == 0.2

    body = tmp_path / "monitor.json"
    body.write_text(json.dumps({"environment": "production", "scorers": [{"scorer": "feedback_thumbs"}]}))
    code, out, err = _cli(live_server, "monitors", "create", "cli/other", "--file", str(body))
    assert code == 0 and out.startswith("created monitor") and "cli/other@production" in out, err

    code, out, _ = _cli(live_server, "monitors", "list", "--prompt", "cli/mon")
    assert code == 0 and out.count("monitor ") == 1 and "auto rollback off" in out
    code, out, _ = _cli(live_server, "monitors", "set", str(monitor["id"]), "--auto-rollback")
    assert code == 0 and "auto rollback on" in out
    code, out, _ = _cli(live_server, "monitors", "status", str(monitor["id"]))
    assert code == 0 and out.startswith("collecting: 0 of 200 scored records") and "safety: live -" in out

    code, out, err = _cli(live_server, "monitors", "create", "cli/mon", "-s", "exact_match")
    assert code == 1 and err.count("\n") == 1 and "expected output" in err
    code, _, err = _cli(live_server, "monitors", "create", "cli/mon", "-s", "{not json")
    assert code == 2 and "not valid JSON" in err
    code, _, err = _cli(live_server, "monitors", "set", str(monitor["id"]))
    assert code == 2 and "nothing to change" in err
    code, _, err = _cli(live_server, "monitors", "status", "999")
    assert code == 1 and "404" in err and "monitor 999 not found" in err
