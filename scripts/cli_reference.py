#!/usr/bin/env python3
"""Write docs/cli-reference.md from the CLI itself (every command, its arguments and options).

`tests/test_docs.py` regenerates it and fails when the file differs, so the reference cannot drift
from the code: run `python scripts/cli_reference.py` after changing a command.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from promptkeeper.cli import app  # noqa: E402

TARGET = ROOT / "docs" / "cli-reference.md"


def _commands(command: Any, path: str) -> list[tuple[str, Any]]:
    """Typer's commands may come from its own copy of click: walk them by shape, not by class."""
    found: list[tuple[str, Any]] = []
    children = getattr(command, "commands", None)
    if children:
        for name in sorted(children):
            if getattr(children[name], "hidden", False):  # aliases are documented once
                continue
            found += _commands(children[name], f"{path} {name}")
    else:
        found.append((path, command))
    return found


def _param(param: Any) -> str:
    if getattr(param, "param_type_name", "") == "argument":
        required = "" if param.required else " (optional)"
        return f"- `{param.name.upper()}`{required}"
    names = ", ".join(f"`{opt}`" for opt in [*param.opts, *param.secondary_opts])
    help_text = " ".join((param.help or "").split())
    default: Any = param.default
    shown = (
        ""
        if default in (None, False, "", ()) or param.is_flag and not default
        else f" (default: `{default}`)"
    )
    env = f" [env `{param.envvar}`]" if isinstance(param.envvar, str) else ""
    return f"- {names}: {help_text}{shown}{env}".rstrip(": ")


def render() -> str:
    root = typer.main.get_command(app)
    lines = [
        "# CLI reference",
        "",
        "Generated from the code by `python scripts/cli_reference.py` (a test checks it is current).",
        "[cli.md](cli.md) explains the commands; this page lists every argument and option.",
    ]
    for path, command in _commands(root, "promptkeeper"):
        lines += ["", f"## `{path}`", ""]
        summary = (command.help or "").strip().split("\n\n")[0]
        if summary:
            lines += [" ".join(summary.split()), ""]
        params = [p for p in command.params if p.name != "help"]
        lines += [_param(p) for p in params] or ["No arguments."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    TARGET.write_text(render())
    print(f"wrote {TARGET}")
