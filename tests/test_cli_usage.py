"""How the CLI meets a user before any command runs: `--version`, `--help`, and bad usage (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import promptkeeper
from promptkeeper.cli import app as cli_app

# Nothing listens on port 9 (discard): a command that got past its own usage checks and tried the
# server would exit 1 with "cannot reach", not 2.
REMOTE = ["--url", "http://127.0.0.1:9", "--key", "pk_test_usage"]


def test_version_prints_the_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "promptkeeper.cli", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"promptkeeper {promptkeeper.__version__}"


def _all_commands(command: Any, path: list[str]) -> list[list[str]]:
    found = [path]
    for name, child in sorted((getattr(command, "commands", None) or {}).items()):
        found += _all_commands(child, [*path, name])
    return found


def test_help_shows_no_bool_type_on_flags() -> None:
    """A flag takes no value, so a `<bool>` type column beside it only suggests that it does."""
    commands = _all_commands(typer.main.get_command(cli_app), [])
    assert len(commands) > 40
    runner = CliRunner()
    for path in commands:
        result = runner.invoke(cli_app, [*path, "--help"], terminal_width=200)
        assert result.exit_code == 0, (path, result.output)
        assert "--help" in result.output and "<bool>" not in result.output, (path, result.output)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # Typer's own: an unknown option, a missing argument, a value of the wrong type.
        (["prompts", "list", "--nope"], "No such option"),
        (["prompts", "show"], "Missing argument"),
        (["serve", "--port", "eighty"], "Invalid value"),
        # Ours: the same kinds of mistake, found by the command before it does anything.
        (["serve", "--port", "70000"], "--port"),
        (["render", "greet", "--var", "oops", *REMOTE], "expected NAME=VALUE"),
        (["prompts", "create", "greet", *REMOTE], "give --template"),
        (["prompts", "version", "greet", *REMOTE], "give --template"),
        (
            [
                "experiments",
                "create",
                "greet",
                "--candidate",
                "two",
                "--metric",
                "m",
                "--mde",
                "0.1",
                *REMOTE,
            ],
            "give a version number",
        ),
        (["experiments", "weights", "1", "control=heavy", *REMOTE], "must be a number"),
        (["monitors", "create", "greet", *REMOTE], "at least one --scorer"),
        (["monitors", "create", "greet", "--scorer", "{oops", *REMOTE], "not valid JSON"),
        (["monitors", "set", "1", *REMOTE], "nothing to change"),
        (["projects", "create", "Bad Name"], "must be 1-64 characters"),
        (["keys", "create", "--project", "default", "--role", "boss", "--name", "x"], "not a role"),
    ],
)
def test_usage_errors_exit_2_in_one_line(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"PROMPTKEEPER_DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}"}
    result = CliRunner().invoke(cli_app, args, env=env)
    assert result.exit_code == 2, (args, result.exit_code, result.output)
    assert message in result.output, result.output
    if result.stderr.startswith("error:"):  # ours: one line
        assert result.stderr.count("\n") == 1, result.stderr


def test_files_that_are_not_there_are_usage_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("x")
    runner = CliRunner()
    for args in (
        ["check", "missing"],
        ["check", "a-file"],
        ["push", "missing", *REMOTE],
        ["pull", "a-file", *REMOTE],
        ["prompts", "create", "greet", "--file", "missing.json", *REMOTE],
        ["eval", "import", "suite", "a-file", *REMOTE],
    ):
        result = runner.invoke(cli_app, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.startswith("error:") and result.stderr.count("\n") == 1, result.stderr


def test_no_key_anywhere_is_a_usage_error_that_says_where_keys_come_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {
        "PROMPTKEEPER_CONFIG": str(tmp_path / "no-login.json"),
        "PROMPTKEEPER_URL": "",
        "PROMPTKEEPER_API_KEY": "",
    }
    result = CliRunner().invoke(cli_app, ["prompts", "list"], env=env)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: no API key") and "promptkeeper login" in result.stderr
    assert result.stderr.count("\n") == 1


def test_runtime_failures_still_exit_1() -> None:
    result = CliRunner().invoke(cli_app, ["prompts", "list", *REMOTE])
    assert result.exit_code == 1 and result.stderr.startswith("error: cannot reach"), result.output
