"""Operator commands on the database: `promptkeeper projects|keys|users ...`.

They talk to the database named by `PROMPTKEEPER_DATABASE_URL` directly (like `db upgrade`), so they
work before any key exists and across projects; each change is audited with the actor
`cli:<os user>`. Secrets go to standard output alone, everything else to standard error, so
`KEY=$(promptkeeper keys create ...)` captures just the key.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated

import typer
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from promptkeeper.access.service import Actor, Role
from promptkeeper.cli.common import fail, load_settings, open_database, safe_url, usage

projects_app = typer.Typer(help="Projects (tenants).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys of a project.", no_args_is_help=True)
users_app = typer.Typer(help="Users and their roles in a project.", no_args_is_help=True)

ProjectOption = Annotated[str, typer.Option("--project", "-p", help="Project name.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@contextmanager
def _session() -> Iterator[Session]:
    """A write session on the configured database; domain and connection errors become one line."""

    from promptkeeper.db.migrate import ensure_schema
    from promptkeeper.errors import PromptKeeperError

    settings = load_settings()
    database = open_database(settings)
    try:
        ensure_schema(database.engine, auto_migrate=settings.auto_migrate)
        with database.write_session() as session:
            yield session
    except PromptKeeperError as exc:
        raise fail(exc.message) from None
    except OperationalError as exc:
        raise fail(f"cannot reach the database {safe_url(settings)}: {exc.orig}") from None
    finally:
        database.dispose()


def _cli_actor(session: Session, project: str) -> Actor:
    from promptkeeper.access.service import get_project

    project_row = get_project(session=session, name=project)
    return Actor.system(f"cli:{getpass.getuser()}", project_row.id)


def _table(rows: list[dict[str, object]], columns: list[str], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        typer.echo("(none)", err=True)
        return
    widths = {
        c: max(len(c), *(len(str(r.get(c) if r.get(c) is not None else "-")) for r in rows)) for c in columns
    }
    typer.echo("  ".join(c.upper().ljust(widths[c]) for c in columns))
    for row in rows:
        typer.echo(
            "  ".join(str(row.get(c) if row.get(c) is not None else "-").ljust(widths[c]) for c in columns)
        )


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise usage(
            f"--role: '{value}' is not a role; use one of {', '.join(r.value for r in Role)}"
        ) from None


# --- projects -----------------------------------------------------------------------------------


@projects_app.command("create")
def projects_create(name: Annotated[str, typer.Argument(help="Project name (a-z, 0-9, '-', '_').")]) -> None:
    """Create a project with the default environments."""
    import re

    from promptkeeper.access.service import ensure_project
    from promptkeeper.prompts.service import create_default_environments

    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", name):
        raise usage(f"project name '{name}' must be 1-64 characters of a-z, 0-9, '-', '_'")
    with _session() as session:
        project, created = ensure_project(session=session, name=name)
        if not created:
            raise fail(f"project '{name}' already exists")
        create_default_environments(session=session, project_id=project.id)
        session.commit()
    typer.echo(f"created project '{name}' with environments development, staging, production", err=True)


@projects_app.command("list")
def projects_list(as_json: JsonOption = False) -> None:
    """List projects."""
    from sqlalchemy import select

    from promptkeeper.access.models import Project

    with _session() as session:
        rows: list[dict[str, object]] = [
            {"name": p.name, "created_at": p.created_at.isoformat(timespec="seconds")}
            for p in session.scalars(select(Project).order_by(Project.name))
        ]
    _table(rows, ["name", "created_at"], as_json)


# --- keys ---------------------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    project: ProjectOption,
    role: Annotated[str, typer.Option(help="viewer, runtime, editor, approver or admin.")],
    name: Annotated[str, typer.Option(help="What the key is for, e.g. app-prod.")],
    expires_in_days: Annotated[int | None, typer.Option(min=1, help="Expire after this many days.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API key; prints the secret once (on stdout)."""
    from promptkeeper.access.keys import create_key
    from promptkeeper.db.base import utcnow

    chosen = _role(role)
    expires = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
    with _session() as session:
        new = create_key(
            session=session, actor=_cli_actor(session, project), name=name, role=chosen, expires_at=expires
        )
        session.commit()
        prefix = new.key.prefix
    if as_json:
        typer.echo(json.dumps({"name": name, "role": chosen.value, "prefix": prefix, "secret": new.secret}))
        return
    typer.echo(
        f"created {chosen.value} key '{name}' (prefix {prefix}) in project '{project}'; shown once:", err=True
    )
    typer.echo(new.secret)


@keys_app.command("list")
def keys_list(
    project: ProjectOption,
    include_revoked: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List a project's API keys (never their secrets)."""
    from promptkeeper.access.keys import list_keys
    from promptkeeper.access.service import get_project

    with _session() as session:
        project_row = get_project(session=session, name=project)
        rows: list[dict[str, object]] = [
            {
                "prefix": k.prefix,
                "name": k.name,
                "role": k.role,
                "last_used_at": k.last_used_at.isoformat(timespec="seconds") if k.last_used_at else None,
                "expires_at": k.expires_at.isoformat(timespec="seconds") if k.expires_at else None,
                "revoked_at": k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else None,
            }
            for k in list_keys(session=session, project_id=project_row.id, include_revoked=include_revoked)
        ]
    _table(rows, ["prefix", "name", "role", "last_used_at", "expires_at", "revoked_at"], as_json)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key's prefix (as listed) or id.")], project: ProjectOption
) -> None:
    """Revoke an API key (servers stop accepting it within PROMPTKEEPER_AUTH_CACHE_TTL seconds)."""
    from promptkeeper.access.keys import revoke_key

    with _session() as session:
        revoked = revoke_key(session=session, actor=_cli_actor(session, project), ref=key)
        session.commit()
        typer.echo(f"revoked key '{revoked.name}' ({revoked.prefix})", err=True)


# --- users --------------------------------------------------------------------------------------


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise usage("no terminal to ask for a password: pass --password-stdin and pipe it in")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@users_app.command("add")
def users_add(
    email: Annotated[str, typer.Argument(help="The user's email (their login).")],
    project: ProjectOption,
    role: Annotated[str, typer.Option(help="viewer, runtime, editor, approver or admin.")],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a user (or reset their password) and give them a role in a project."""
    from promptkeeper.access.users import ensure_user

    chosen = _role(role)
    password = _read_password(password_stdin)
    with _session() as session:
        user = ensure_user(
            session=session, project=project, email=email, password=password, role=chosen, name=name
        )
        session.commit()
        typer.echo(f"{user.email} is {chosen.value} in project '{project}'", err=True)


@users_app.command("list")
def users_list(project: ProjectOption, as_json: JsonOption = False) -> None:
    """List a project's members."""
    from promptkeeper.access.service import get_project
    from promptkeeper.access.users import list_members

    with _session() as session:
        project_row = get_project(session=session, name=project)
        rows: list[dict[str, object]] = [
            {"id": m.user.id, "email": m.user.email, "name": m.user.name, "role": m.role.value}
            for m in list_members(session=session, project_id=project_row.id)
        ]
    _table(rows, ["id", "email", "name", "role"], as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(projects_app, name="projects")
    app.add_typer(keys_app, name="keys")
    app.add_typer(users_app, name="users")
