"""The `promptkeeper` command line.

Exit codes: 0 success, 1 the operation failed (message on stderr), 2 bad usage.

`app` (the Typer application) and `main` (the console script's entry point) are what other code
names: `pyproject.toml`, `python -m promptkeeper`, `scripts/cli_reference.py` and the tests.
"""

from promptkeeper.cli.root import app, main

__all__ = ["app", "main"]
