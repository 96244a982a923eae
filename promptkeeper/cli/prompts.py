"""`promptkeeper login`, `prompts ...`, `resolve`, `render`: the registry from a terminal.

HTTP clients of a running server like the other remote commands. `login` checks a key against
the server and stores the URL and key in a file only you can read (mode 0600; `PROMPTKEEPER_CONFIG`
or `~/.config/promptkeeper/credentials.json`); later commands use them when neither `--url`/`--key`
nor `PROMPTKEEPER_URL`/`PROMPTKEEPER_API_KEY` is given. `--json` prints the server's answer.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from promptkeeper.cli.common import (
    DEFAULT_URL,
    AsJson,
    Key,
    Remote,
    Url,
    config_path,
    fail,
    print_result,
    usage,
)
from promptkeeper.core.fields import path_segment

prompts_app = typer.Typer(
    help="Prompts: list, show, create, version, diff, deploy, roll back, history.", no_args_is_help=True
)
Name = Annotated[str, typer.Argument(help="Prompt name (e.g. support/reply).")]
Environment = Annotated[str, typer.Option("--env", "-e", help="Environment.")]


def login(
    url: Annotated[str, typer.Option("--url", help="Server URL.")] = DEFAULT_URL,
    key_stdin: Annotated[
        bool, typer.Option("--key-stdin", help="Read the API key from standard input.")
    ] = False,
) -> None:
    """Check an API key against the server and remember URL and key for later commands."""
    if key_stdin:
        key = sys.stdin.readline().strip()
    elif sys.stdin.isatty():
        key = str(typer.prompt("API key", hide_input=True)).strip()
    else:
        raise usage("no terminal to ask for the key: pass --key-stdin and pipe it in")
    if not key:
        raise usage("the API key is empty")
    with Remote(url, key) as remote:
        me = remote.call("GET", "/v1/auth/me")
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(json.dumps({"url": url.rstrip("/"), "key": key}))
    typer.echo(
        f"logged in to {url} as {me['name']} ({me['role']}, project {me['project']}); saved in {path}",
        err=True,
    )


@prompts_app.command("list")
def list_prompts(
    tag: Annotated[str | None, typer.Option("--tag", help="Only prompts with this tag.")] = None,
    search: Annotated[str | None, typer.Option("--search", help="Substring of name or description.")] = None,
    url: Url = "",
    key: Key = "",
    as_json: AsJson = False,
) -> None:
    """Prompts with their latest version and what each environment serves."""
    params = {k: v for k, v in {"tag": tag, "search": search, "limit": 500}.items() if v is not None}
    with Remote(url, key) as remote:
        page = remote.call("GET", "/v1/prompts", params=params)
    lines = []
    for p in page["items"]:
        live = ", ".join(f"{env}=v{r['version']}" for env, r in p["environments"].items() if r)
        lines.append(f"{p['name']}  v{p['latest_version']}  {live or 'not deployed'}")
    print_result(page, as_json, "\n".join(lines) or "no prompts")


@prompts_app.command("show")
def show(
    name: Name,
    version: Annotated[int | None, typer.Option("--version", "-v")] = None,
    url: Url = "",
    key: Key = "",
    as_json: AsJson = False,
) -> None:
    """A prompt's metadata and the content of its latest (or a given) version."""
    with Remote(url, key) as remote:
        prompt = remote.call("GET", f"/v1/prompts/{path_segment(name)}")
        row = remote.call(
            "GET", f"/v1/prompts/{path_segment(name)}/versions/{version or prompt['latest_version']}"
        )
    if as_json:
        print_result({"prompt": prompt, "version": row}, True, "")
        return
    content = row["content"]
    body = (
        content.get("template")
        if content["type"] == "text"
        else "\n".join(
            f"[{m['role']}] {m['content']}"
            if m.get("type") != "placeholder"
            else f"[placeholder {m['name']}]"
            for m in content["messages"]
        )
    )
    live = (
        ", ".join(f"{env}=v{r['version']}" for env, r in prompt["environments"].items() if r)
        or "not deployed"
    )
    header = f"{prompt['name']} v{row['number']} ({content['type']}) by {row['author']}: {row['message']}"
    typer.echo(f"{header}\nlive: {live}\n\n{body}")


NO_CONTENT = "give --template TEXT (text prompts) or --file CONTENT.json"


def _content(template: str | None, file: Path | None, kind: str) -> dict[str, Any]:
    if file is not None:
        try:
            loaded = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise usage(f"--file {file}: {exc}") from None
        if not isinstance(loaded, dict):
            raise usage(f"--file {file}: expected a JSON content object")
        return loaded
    if template is None:
        raise usage(NO_CONTENT)
    if kind == "chat":
        return {"type": "chat", "messages": [{"role": "system", "content": template}]}
    return {"type": "text", "template": template}


Template = Annotated[str | None, typer.Option("--template", "-t", help="The template text.")]
ContentFile = Annotated[Path | None, typer.Option("--file", "-f", help="A JSON content object instead.")]
Message = Annotated[str, typer.Option("--message", "-m", help="Commit message.")]


@prompts_app.command("create")
def create(
    name: Name,
    template: Template = None,
    file: ContentFile = None,
    kind: Annotated[
        str, typer.Option("--type", help="text, or chat (--template is the system message).")
    ] = "text",
    message: Message = "",
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag (repeatable).")] = None,
    url: Url = "",
    key: Key = "",
    as_json: AsJson = False,
) -> None:
    """Create a prompt with its version 1."""
    body = {"name": name, "content": _content(template, file, kind), "message": message, "tags": tag or []}
    with Remote(url, key) as remote:
        created = remote.call("POST", "/v1/prompts", json=body)
    print_result(created, as_json, f"created {name} v1")


@prompts_app.command("version")
def new_version(
    name: Name,
    template: Template = None,
    file: ContentFile = None,
    message: Message = "",
    url: Url = "",
    key: Key = "",
    as_json: AsJson = False,
) -> None:
    """Append a version (refused when identical to the latest)."""
    if template is None and file is None:
        raise usage(NO_CONTENT)
    with Remote(url, key) as remote:
        kind = remote.call("GET", f"/v1/prompts/{path_segment(name)}/versions", params={"limit": 1})["items"][
            0
        ]["content"]["type"]
        version = remote.call(
            "POST",
            f"/v1/prompts/{path_segment(name)}/versions",
            json={"content": _content(template, file, kind), "message": message},
        )
    print_result(version, as_json, f"created {name} v{version['number']}")


@prompts_app.command("diff")
def diff(
    name: Name,
    old: Annotated[int, typer.Argument(help="From version.")],
    new: Annotated[int, typer.Argument(help="To version.")],
    url: Url = "",
    key: Key = "",
    as_json: AsJson = False,
) -> None:
    """What changed between two versions (unified diff per field)."""
    with Remote(url, key) as remote:
        body = remote.call("GET", f"/v1/prompts/{path_segment(name)}/diff", params={"from": old, "to": new})
    text = "\n".join(f"--- {field}\n{patch}" for field, patch in (body.get("unified") or {}).items())
    print_result(body, as_json, text or "no changes")


def _pending_line(name: str, row: dict[str, Any]) -> str:
    runs = f"run {row['run']} ({row['run_status']})" if row["run"] else ""
    if row["baseline_run"]:
        runs += f"{', ' if runs else ''}baseline run {row['baseline_run']} ({row['baseline_run_status']})"
    line = f"pending deploy #{row['id']} of {name} v{row['version']} to {row['environment']}: {row['status']}"
    if row["status"] == "waiting":
        return f"{line}, waiting for evaluation {runs}"
    if row["status"] == "deployed":
        return f"{line} (history row {row['deployment']})"
    return f"{line}: {row['message']}"


def _wait_pending(remote: Remote, name: str, row: dict[str, Any], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while row["status"] == "waiting":
        if time.monotonic() > deadline:
            raise fail(f"{_pending_line(name, row)}; still waiting after {timeout:g} s")
        time.sleep(1.0)
        row = remote.call("GET", f"/v1/prompts/{path_segment(name)}/pending-deployments/{row['id']}")
    return row


@prompts_app.command("deploy")
def deploy(
    name: Name,
    version: Annotated[int, typer.Argument(help="Version to deploy.")],
    environment: Environment = "production",
    reason: Annotated[str, typer.Option("--reason")] = "",
    wait: Annotated[
        bool, typer.Option("--wait", help="If the gate runs the evaluation first, wait for the outcome.")
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds --wait waits at most.")] = 1800,
    url: Url = "",
    key: Key = "",
    as_json: AsJson = False,
) -> None:
    """Deploy a version to an environment (under its policy: path, gate, reviews).

    A gate with `auto_run` may start the evaluation first: the command prints the pending deploy
    (and with --wait, its outcome); it exits with 1 when that deploy is refused or cancelled.
    """
    with Remote(url, key) as remote:
        row = remote.call(
            "POST",
            f"/v1/prompts/{path_segment(name)}/deployments",
            json={"environment": environment, "version": version, "reason": reason},
        )
        if "status" in row and wait:
            row = _wait_pending(remote, name, row, timeout)
    if "status" not in row:
        print_result(
            row, as_json, f"{environment} serves {name} v{row['version']} (revision {row['revision']})"
        )
        return
    print_result(row, as_json, _pending_line(name, row))
    if row["status"] in ("refused", "cancelled"):
        raise typer.Exit(code=1)


@prompts_app.command("pending")
def pending(
    name: Name,
    pending_id: Annotated[int | None, typer.Argument(help="One pending deploy (default: all).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it is no longer waiting.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds --wait waits at most.")] = 1800,
    url: Url = "",
    key: Key = "",
    as_json: AsJson = False,
) -> None:
    """Deploys that wait (or waited) for the evaluation their gate runs, newest first."""
    with Remote(url, key) as remote:
        if pending_id is None:
            rows = remote.call("GET", f"/v1/prompts/{path_segment(name)}/pending-deployments")
            print_result(rows, as_json, "\n".join(_pending_line(name, r) for r in rows) or "none")
            return
        row = remote.call("GET", f"/v1/prompts/{path_segment(name)}/pending-deployments/{pending_id}")
        if wait:
            row = _wait_pending(remote, name, row, timeout)
    print_result(row, as_json, _pending_line(name, row))
    if row["status"] in ("refused", "cancelled"):
        raise typer.Exit(code=1)


@prompts_app.command("rollback")
def rollback(
    name: Name,
    environment: Environment = "production",
    version: Annotated[
        int | None, typer.Option("--version", "-v", help="Default: the previous version.")
    ] = None,
    reason: Annotated[str, typer.Option("--reason")] = "",
    url: Url = "",
    key: Key = "",
    as_json: AsJson = False,
) -> None:
    """Roll an environment back to the previous (or a named) version."""
    body: dict[str, Any] = {"environment": environment, "reason": reason}
    if version is not None:
        body["version"] = version
    with Remote(url, key) as remote:
        row = remote.call("POST", f"/v1/prompts/{path_segment(name)}/rollback", json=body)
    print_result(row, as_json, f"{environment} rolled back to {name} v{row['version']}")


@prompts_app.command("history")
def history(
    name: Name,
    environment: Annotated[str | None, typer.Option("--env", "-e", help="Only this environment.")] = None,
    url: Url = "",
    key: Key = "",
    as_json: AsJson = False,
) -> None:
    """The deployment history, newest first."""
    params: dict[str, Any] = {"limit": 200, **({"environment": environment} if environment else {})}
    with Remote(url, key) as remote:
        page = remote.call("GET", f"/v1/prompts/{path_segment(name)}/deployments", params=params)
    lines = [
        f"{d['at']}  {d['environment']:12} v{d['version']}  {d['action']:16} {d['actor']}  {d['reason']}"
        for d in page["items"]
    ]
    print_result(page, as_json, "\n".join(lines) or "never deployed")


def resolve(
    name: Name,
    environment: Environment = "production",
    at: Annotated[str | None, typer.Option("--at", help="What ran at this instant (ISO 8601).")] = None,
    url: Url = "",
    key: Key = "",
    as_json: AsJson = False,
) -> None:
    """The version an environment serves now, or served at --at."""
    params = {"environment": environment, **({"at": at} if at else {})}
    with Remote(url, key) as remote:
        body = remote.call("GET", f"/v1/resolve/{path_segment(name)}", params=params)
    print_result(body, as_json, f"{name} v{body['version']} in {environment}" + (f" at {at}" if at else ""))


def render(
    name: Name,
    var: Annotated[list[str] | None, typer.Option("--var", help="NAME=VALUE (repeatable).")] = None,
    environment: Environment = "production",
    url: Url = "",
    key: Key = "",
    as_json: AsJson = False,
) -> None:
    """Render what an environment serves with the given variables."""
    variables: dict[str, str] = {}
    for pair in var or []:
        variable, separator, value = pair.partition("=")
        if not separator or not variable:
            raise usage(f"--var '{pair}': expected NAME=VALUE")
        variables[variable] = value
    with Remote(url, key) as remote:
        body = remote.call(
            "POST", "/v1/render", json={"name": name, "environment": environment, "variables": variables}
        )
    if body.get("text") is not None:
        text = body["text"]
    else:
        text = "\n".join(f"[{m['role']}] {m['content']}" for m in body["messages"])
    print_result(body, as_json, text)


def register(app: typer.Typer) -> None:
    app.command("login")(login)
    app.add_typer(prompts_app, name="prompts")
    app.command("resolve")(resolve)
    app.command("render")(render)
