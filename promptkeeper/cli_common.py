"""What every `promptkeeper` command shares: one-line errors, settings, the database.

Exit codes: 0 success, 1 the operation failed (one line on stderr starting with `error:`), 2 bad
usage (Typer's own).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from pydantic import ValidationError

from promptkeeper.config import Settings

if TYPE_CHECKING:
    from promptkeeper.db.engine import Database


def fail(message: str) -> typer.Exit:
    """Print one readable line (driver messages span several) and exit with code 1."""
    typer.echo("error: " + " ".join(message.split()), err=True)
    return typer.Exit(code=1)


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise fail(f"invalid setting PROMPTKEEPER_{field.upper()}: {first['msg']}") from None


def open_database(settings: Settings) -> Database:
    from promptkeeper.db.engine import Database

    try:
        return Database(settings)
    except (ValueError, ImportError) as exc:
        raise fail(str(exc)) from None


def safe_url(settings: Settings) -> str:
    """The database URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)
