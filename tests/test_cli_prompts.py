"""`promptkeeper login`, `prompts ...`, `resolve`, `render` against a served instance."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from typer.testing import CliRunner

from promptkeeper.cli import app as cli_app
from tests.conftest import ADMIN_KEY, LiveServer
from tests.helpers import run_cli


def test_prompt_lifecycle_from_the_cli(live_server: LiveServer) -> None:
    url = live_server.url
    code, out, err = run_cli(
        url, "prompts", "create", "cli/greet", "-t", "Hello {{ name }}", "-m", "first", "--tag", "cli"
    )
    assert code == 0 and out.strip() == "created cli/greet v1", err
    code, out, _ = run_cli(url, "prompts", "version", "cli/greet", "-t", "Hi {{ name }}!", "-m", "shorter")
    assert code == 0 and out.strip() == "created cli/greet v2"
    code, _, err = run_cli(url, "prompts", "version", "cli/greet", "-t", "Hi {{ name }}!")
    assert code == 1 and err.count("\n") == 1 and "identical to version 2" in err

    code, out, _ = run_cli(url, "prompts", "diff", "cli/greet", "1", "2")
    assert code == 0 and "-Hello {{ name }}" in out and "+Hi {{ name }}!" in out
    code, out, _ = run_cli(url, "prompts", "deploy", "cli/greet", "1", "--env", "production")
    assert code == 0 and out.strip() == "production serves cli/greet v1 (revision 1)"
    assert run_cli(url, "prompts", "deploy", "cli/greet", "2", "--env", "production")[0] == 0
    code, out, _ = run_cli(url, "render", "cli/greet", "--var", "name=Ada")
    assert code == 0 and out.strip() == "Hi Ada!"
    code, out, _ = run_cli(
        url, "prompts", "rollback", "cli/greet", "--env", "production", "--reason", "too short"
    )
    assert code == 0 and out.strip() == "production rolled back to cli/greet v1"
    code, out, _ = run_cli(url, "resolve", "cli/greet", "--env", "production", "--json")
    assert code == 0 and json.loads(out)["version"] == 1

    code, out, _ = run_cli(url, "prompts", "history", "cli/greet")
    rows = out.strip().splitlines()
    assert code == 0 and len(rows) == 3 and "rollback" in rows[0] and "too short" in rows[0]
    code, out, _ = run_cli(url, "prompts", "list", "--tag", "cli")
    assert code == 0 and out.strip() == "cli/greet  v2  production=v1"
    code, out, _ = run_cli(url, "prompts", "show", "cli/greet")
    assert code == 0 and out.startswith("cli/greet v2 (text)") and out.rstrip().endswith("Hi {{ name }}!")
    code, _, err = run_cli(url, "render", "cli/greet", "--var", "oops")
    assert code == 2 and "expected NAME=VALUE" in err
    code, _, err = run_cli(url, "prompts", "show", "cli/missing")
    assert code == 1 and err.startswith("error: 404")


def test_login_saves_a_private_credentials_file(live_server: LiveServer, tmp_path: Path) -> None:
    config = tmp_path / "creds" / "credentials.json"
    env = {"PROMPTKEEPER_CONFIG": str(config), "PROMPTKEEPER_URL": "", "PROMPTKEEPER_API_KEY": ""}
    runner = CliRunner()
    refused = runner.invoke(
        cli_app, ["login", "--url", live_server.url, "--key-stdin"], input="pk_nope_nope\n", env=env
    )
    assert refused.exit_code == 1 and "401" in refused.stderr and not config.exists()
    logged = runner.invoke(
        cli_app, ["login", "--url", live_server.url, "--key-stdin"], input=ADMIN_KEY + "\n", env=env
    )
    assert logged.exit_code == 0 and "as admin (admin, project default)" in logged.stderr, logged.stderr
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    assert json.loads(config.read_text()) == {"url": live_server.url, "key": ADMIN_KEY}
    env.pop("PROMPTKEEPER_URL")
    env.pop("PROMPTKEEPER_API_KEY")
    listed = runner.invoke(cli_app, ["prompts", "list"], env=env)  # no --url, no --key: the saved login
    assert listed.exit_code == 0 and listed.stdout.strip() == "no prompts", listed.stderr


def test_demo_seeds_an_empty_database_once(tmp_path: Path) -> None:
    env = {
        "PROMPTKEEPER_DATABASE_URL": f"sqlite:///{tmp_path}/demo.db",
        "PROMPTKEEPER_ADMIN_KEY_FILE": str(tmp_path / "key"),
    }
    first = CliRunner().invoke(cli_app, ["demo"], env=env)
    assert first.exit_code == 0 and "Seeded 2 sample prompts." in first.stderr, first.stderr
    assert "sign in as admin@example.com with password " in first.stderr
    again = CliRunner().invoke(cli_app, ["demo"], env=env)
    assert again.exit_code == 0 and "Seeded" not in again.stderr and "reset its password" in again.stderr
