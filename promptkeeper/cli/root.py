"""The root of the `promptkeeper` command line: the app, `--version`, `serve`, `demo` and `db`.

The other commands live in the sibling modules, one per area, and register themselves here.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from promptkeeper.cli.common import fail, load_settings, open_database, safe_url, use_plain_flags
from promptkeeper.config import Settings

app = typer.Typer(
    name="promptkeeper",
    help="PromptKeeper: versioned, deployable, tested, monitored prompts.",
    no_args_is_help=True,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from promptkeeper import __version__

        typer.echo(f"promptkeeper {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit."),
    ] = False,
) -> None:
    """Options of `promptkeeper` itself; each command's come after its name."""


db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default: PROMPTKEEPER_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: PROMPTKEEPER_PORT).")] = None,
    sample_data: Annotated[
        bool, typer.Option("--sample-data", help="Seed sample prompts into an empty project.")
    ] = False,
) -> None:
    """Start the server (migrates an empty database and prints a generated admin key)."""
    import uvicorn

    from promptkeeper import allocator
    from promptkeeper.app import create_app

    allocator.tune()  # before uvicorn starts the thread pool: see promptkeeper/allocator.py
    settings = load_settings(host=host, port=port)
    from promptkeeper.logs import configure_logging

    configure_logging(settings)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if sample_data:
        _seed(settings)
    typer.echo(
        f"PromptKeeper on http://{settings.host}:{settings.port} (database: {safe_url(settings)})", err=True
    )
    from promptkeeper.tracing import TracingUnavailable

    try:
        application = create_app(settings, announce=True)
    except TracingUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    allocator.settle()
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=5,  # event streams never end by themselves
        # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise, so any local
        # client could pick its address (and dodge the failed-authentication throttle): only the
        # configured proxies are believed.
        proxy_headers=settings.forwarded_allow_ips is not None,
        forwarded_allow_ips=settings.forwarded_allow_ips or "",
    )


@app.command()
def demo() -> None:
    """Seed the sample project into the configured database (an empty project only), then exit.

    The same data as `serve --sample-data`: prompts with histories and environments, a running
    experiment, an evaluation run and a monitor with production outputs (the server's worker
    executes the run and scores the outputs when it starts), and a web UI admin.
    """
    _seed(load_settings())


def _seed(settings: Settings) -> None:
    from promptkeeper import demo
    from promptkeeper.bootstrap import bootstrap, write_admin_key
    from promptkeeper.db.engine import Database

    database = Database(settings)
    try:
        generated = bootstrap(database=database, settings=settings)
        if generated is not None:  # the server finds the file and prints it
            write_admin_key(settings.admin_key_file, generated)
        created, password = demo.seed(database)
        if created:
            typer.echo(f"Seeded {created} sample prompts.", err=True)
        if password:
            typer.echo(
                f"Web UI: http://{settings.host}:{settings.port}/ui - sign in as {demo.DEMO_USER} "
                f"with password {password}",
                err=True,
            )
        else:
            reset = f"promptkeeper users add {demo.DEMO_USER} --project default --role admin"
            typer.echo(
                f"Web UI: http://{settings.host}:{settings.port}/ui (sample user {demo.DEMO_USER}; "
                f"reset its password: {reset})",
                err=True,
            )
    finally:
        database.dispose()


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply pending schema migrations."""
    from sqlalchemy.exc import OperationalError

    from promptkeeper.db import migrate

    settings = load_settings()
    database = open_database(settings)
    try:
        before = migrate.current_revision(database.engine)
        migrate.upgrade(database.engine, revision)
        after = migrate.current_revision(database.engine)
    except OperationalError as exc:
        raise fail(f"cannot reach the database {safe_url(settings)}: {exc.orig}") from None
    finally:
        database.dispose()
    if before == after:
        typer.echo(f"database already at revision {after}")
    else:
        typer.echo(f"database upgraded from {before or 'empty'} to {after}")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database."""
    from sqlalchemy.exc import OperationalError

    from promptkeeper.db import migrate

    settings = load_settings()
    database = open_database(settings)
    try:
        current = migrate.current_revision(database.engine)
    except OperationalError as exc:
        raise fail(f"cannot reach the database {safe_url(settings)}: {exc.orig}") from None
    finally:
        database.dispose()
    head = migrate.head_revision()
    typer.echo(f"{current or 'empty'} (latest: {head})")


@db_app.command("rotate-secrets")
def db_rotate_secrets() -> None:
    """Re-encrypt every stored secret with the first key of PROMPTKEEPER_SECRET_KEY.

    To rotate: set `PROMPTKEEPER_SECRET_KEY=new,old`, run this, then drop `old` from the setting.
    """
    from sqlalchemy.exc import OperationalError

    from promptkeeper.audit import webhooks
    from promptkeeper.core.secrets import SecretKeyError

    settings = load_settings()
    database = open_database(settings)
    try:
        with database.write_session() as session:
            count = webhooks.seal_secrets(session=session, box=database.secrets, reseal=True)
            session.commit()
    except OperationalError as exc:
        raise fail(f"cannot reach the database {safe_url(settings)}: {exc.orig}") from None
    except SecretKeyError as exc:
        raise fail(str(exc)) from None
    finally:
        database.dispose()
    typer.echo(f"re-encrypted {count} secret(s) with the first key")


def _register_operator_commands() -> None:
    from promptkeeper.cli import access, eval, experiments, files, mcp, monitors, prompts

    access.register(app)
    mcp.register(app)
    eval.register(app)
    experiments.register(app)
    monitors.register(app)
    files.register(app)
    prompts.register(app)


_register_operator_commands()
use_plain_flags(app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)
