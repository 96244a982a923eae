"""`promptkeeper eval ...` against a served instance: import, run with a gate (exit codes), export, show."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from promptkeeper.cli import app as cli_app
from tests.conftest import ADMIN_KEY, LiveServer
from tests.helpers import add_version, create_prompt, run_cli


def _cli(server: LiveServer, *args: str) -> tuple[int, str, str]:
    return run_cli(server.url, *args)


def test_eval_cli_round_trip_and_gate_exit_codes(live_server: LiveServer, tmp_path: Path) -> None:
    with live_server.client() as client:
        create_prompt(client, "geo", "Capital of {{ country }}?")
        add_version(client, "geo", "The capital of {{ country }}?")
    cases = tmp_path / "capitals.jsonl"
    cases.write_text(
        "\n".join(
            json.dumps({"key": k, "variables": {"country": c}, "expected": e})
            for k, c, e in (("fr", "France", "Capital of France?"), ("it", "Italy", "Capital of Italy?"))
        )
        + "\n"
    )
    code, _, err = _cli(live_server, "eval", "import", "capitals", str(cases))
    assert code == 1 and "add --scorer" in err
    code, _, err = _cli(
        live_server, "eval", "import", "capitals", str(cases), "--scorer", "exact_match", "--prompt", "geo"
    )
    assert code == 0, err
    assert "imported 2 cases" in err
    with live_server.client() as client:
        gate = client.put(
            "/v1/environments/production/gate", json={"suite": "capitals", "min_scores": {"exact_match": 0.9}}
        )
        assert gate.status_code == 200
    # The local provider echoes the prompt: version 1 matches the expected outputs, version 2 does not.
    code, _, err = _cli(
        live_server, "eval", "run", "geo", "--suite", "capitals", "--version", "1", "--gate", "production"
    )
    assert code == 0, err
    assert "exact_match" in err and "gate of 'production' passes" in err
    code, out, err = _cli(
        live_server, "eval", "run", "geo", "--suite", "capitals", "--version", "2", "--json"
    )
    assert code == 1
    run = json.loads(out)
    assert run["summary"]["gates"]["production"]["passed"] is False
    assert err.startswith("error:") and "exact_match 0.000 < minimum 0.900" in err and err.count("\n") == 1
    code, out, _ = _cli(live_server, "eval", "show", str(run["id"]), "--json")
    assert code == 0 and json.loads(out)["id"] == run["id"]
    exported = tmp_path / "out.csv"
    code, _, err = _cli(live_server, "eval", "export", "capitals", str(exported))
    assert code == 0, err
    assert exported.read_text().splitlines()[0] == "key,country,expected,tags,scorers"
    # Errors are one line with a non-zero exit code.
    code, _, err = _cli(live_server, "eval", "run", "nope", "--suite", "capitals")
    assert code == 1 and "404" in err and err.count("\n") == 1
    result = CliRunner().invoke(
        cli_app, ["eval", "show", "1"], env={"PROMPTKEEPER_URL": live_server.url, "PROMPTKEEPER_API_KEY": ""}
    )
    assert result.exit_code == 2 and "no API key" in result.stderr
    unreachable = CliRunner().invoke(
        cli_app, ["eval", "show", "1", "--url", "http://127.0.0.1:9", "--key", ADMIN_KEY]
    )
    assert unreachable.exit_code == 1 and "cannot reach" in unreachable.stderr
