"""What every `promptkeeper` command shares: one-line errors, settings, the database.

Exit codes: 0 success, 1 the operation failed (one line on stderr starting with `error:`), 2 bad
usage (Typer's own).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer
from pydantic import ValidationError
from typer.core import TyperCommand, TyperGroup

from promptkeeper.config import Settings

if TYPE_CHECKING:
    from promptkeeper.db.engine import Database


def fail(message: str) -> typer.Exit:
    """Print one readable line (driver messages span several) and exit with code 1."""
    typer.echo("error: " + " ".join(message.split()), err=True)
    return typer.Exit(code=1)


def usage(message: str) -> typer.Exit:
    """Like `fail`, with code 2: the command line itself is wrong (as Typer's own usage errors)."""
    typer.echo("error: " + " ".join(message.split()), err=True)
    return typer.Exit(code=2)


def _hide_flag_types(command: TyperCommand | TyperGroup, ctx: Any) -> None:
    """Typer's help prints a type beside every option, `<bool>` beside flags too, which suggests
    that `--json` takes a value. An empty metavar leaves the type column of flags blank."""
    for param in [*command.params, command.get_help_option(ctx)]:
        if param is not None and getattr(param, "is_flag", False):
            param.metavar = ""


class Command(TyperCommand):
    def format_help(self, ctx: Any, formatter: Any) -> None:
        _hide_flag_types(self, ctx)
        super().format_help(ctx, formatter)


class Group(TyperGroup):
    def format_help(self, ctx: Any, formatter: Any) -> None:
        _hide_flag_types(self, ctx)
        super().format_help(ctx, formatter)


def use_plain_flags(app: typer.Typer) -> None:
    """Build every command and group of `app` (and of its sub-apps) with the classes above."""
    app.info.cls = Group
    for command in app.registered_commands:
        command.cls = Command
    for group in app.registered_groups:
        group.cls = Group
        if group.typer_instance is not None:
            use_plain_flags(group.typer_instance)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with a command's options (`serve --port`) on top.

    A bad option value is bad usage (exit 2) and is named as the option; a bad environment
    variable is a configuration failure (exit 1) and is named as the variable."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        if field in given:
            raise usage(f"--{field.replace('_', '-')} {given[field]}: {first['msg']}") from None
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


# -- HTTP clients of a running server (`eval`, `experiments`) ---------------------------------------

Url = Annotated[
    str,
    typer.Option(
        "--url",
        envvar="PROMPTKEEPER_URL",
        help="Server URL (else the saved login's, else the server started in this folder, else "
        "http://127.0.0.1:8700).",
    ),
]
Key = Annotated[str, typer.Option("--key", envvar="PROMPTKEEPER_API_KEY", help="API key (editor or above).")]


DEFAULT_URL = "http://127.0.0.1:8700"
AsJson = Annotated[bool, typer.Option("--json", help="Print the server's JSON answer.")]


def print_result(body: Any, as_json: bool, summary: str) -> None:
    """The server's JSON answer with --json, else the one-line summary."""
    typer.echo(json.dumps(body, indent=2) if as_json else summary)


def config_path() -> Path:
    """Where `promptkeeper login` keeps the URL and key (mode 0600)."""
    explicit = os.environ.get("PROMPTKEEPER_CONFIG")
    if explicit:
        return Path(explicit)
    return (
        Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        / "promptkeeper"
        / "credentials.json"
    )


def saved_credentials() -> dict[str, str]:
    path = config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise fail(f"{path}: cannot read the saved login ({exc}); run promptkeeper login again") from None
    return {k: str(v) for k, v in data.items() if k in ("url", "key")} if isinstance(data, dict) else {}


# -- the server `promptkeeper serve` started in this folder (`make run`) ------------------------------


@dataclass(frozen=True)
class LocalServer:
    url: str
    key: str  # "" when the server's admin key is not in a file (PROMPTKEEPER_ADMIN_KEY)
    path: Path


def local_server() -> LocalServer | None:
    """The server `promptkeeper serve` started here: its file is beside the admin key file, which
    `PROMPTKEEPER_ADMIN_KEY_FILE` may move (default `.promptkeeper/` in the current folder)."""
    try:
        path = Settings().local_server_file()
    except ValidationError:  # a bad server setting is no reason to fail a client command
        path = Settings.model_construct().local_server_file()
    try:
        state = json.loads(path.read_text())
        url = str(state["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    key = ""
    if isinstance(state.get("key_file"), str):
        try:
            key = Path(state["key_file"]).read_text().strip()
        except OSError:
            pass
    return LocalServer(url=url.rstrip("/"), key=key, path=path)


def locate(url: str, key: str) -> tuple[str, str, LocalServer | None]:
    """The server and key to use: flags, then environment variables (Typer has merged both into
    `url` and `key`), then the saved login, then the server started in this folder.

    The local admin key goes only to the local server: with another `--url` it is not sent."""
    local = None
    if not (url and key):
        saved = saved_credentials()
        url, key = url or saved.get("url", ""), key or saved.get("key", "")
    if not (url and key):
        found = local_server()
        if found is not None and (not url or url.rstrip("/") == found.url):
            url, key, local = url or found.url, key or found.key, found
    if not key:
        where = f" for {url}" if url else ""
        raise usage(
            f"no API key{where}: pass --key, set PROMPTKEEPER_API_KEY, run promptkeeper login, "
            "or run it in the folder where promptkeeper serve (make run) runs"
        )
    return (url or DEFAULT_URL).rstrip("/"), key, local


class Remote:
    """A thin HTTP client that turns every error into one readable line; `locate` finds the server."""

    def __init__(self, url: str, key: str) -> None:
        url, key, local = locate(url, key)
        # an address read from a file may be a server that has since stopped: say where it came from
        self._origin = f" (the address in {local.path}: is promptkeeper serve running?)" if local else ""
        self._client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._client.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise fail(f"cannot reach {self._client.base_url}: {exc}{self._origin}") from None
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:200]
            raise fail(f"{response.status_code}: {message}")
        return response.json() if response.content else None

    def exists(self, path: str) -> bool:
        try:
            return self._client.get(path).status_code == 200
        except httpx.TransportError as exc:
            raise fail(f"cannot reach {self._client.base_url}: {exc}{self._origin}") from None

    def get_or_missing(self, path: str) -> tuple[Any, dict[str, Any] | None]:
        """`(body, None)` for a 200, `(None, error details)` for a 404; anything else fails."""
        try:
            response = self._client.get(path)
        except httpx.TransportError as exc:
            raise fail(f"cannot reach {self._client.base_url}: {exc}{self._origin}") from None
        if response.status_code == 404:
            try:
                details = response.json()["error"]["details"]
            except (ValueError, KeyError, TypeError):
                details = {}
            return None, details if isinstance(details, dict) else {}
        if response.status_code >= 400:
            raise fail(f"{response.status_code}: {response.text[:200]}")
        return response.json(), None

    def text(self, path: str, **kwargs: Any) -> str:
        try:
            response = self._client.get(path, **kwargs)
        except httpx.TransportError as exc:
            raise fail(f"cannot reach {self._client.base_url}: {exc}{self._origin}") from None
        if response.status_code >= 400:
            raise fail(f"{response.status_code}: {response.text[:200]}")
        return response.text
