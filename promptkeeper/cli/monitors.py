"""`promptkeeper monitors ...`: create, list, read and change monitors over HTTP.

Clients of a running server (`--url`/`PROMPTKEEPER_URL`, `--key`/`PROMPTKEEPER_API_KEY`), like the
`eval` and `experiments` commands; errors are one line on stderr and exit code 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from promptkeeper.cli.common import AsJson, Key, Remote, Url, print_result, usage

monitors_app = typer.Typer(
    help="Online monitors: score production outputs, alert on regressions, roll back.", no_args_is_help=True
)

MonitorId = Annotated[int, typer.Argument(min=1, help="Monitor id.")]


def _summary(monitor: dict[str, Any]) -> str:
    rules = ", ".join(rule["name"] for rule in monitor["scorers"])
    return (
        f"monitor {monitor['id']} on {monitor['prompt']}@{monitor['environment']}: "
        f"{'enabled' if monitor['enabled'] else 'disabled'}, sample {monitor['sample_rate']:.0%}, "
        f"rules {rules}, window {monitor['window_size']}, "
        f"auto rollback {'on' if monitor['auto_rollback'] else 'off'}"
    )


def _scorer(spec: str) -> dict[str, Any]:
    """`NAME` or a JSON rule object."""
    if spec.lstrip().startswith("{"):
        try:
            rule: dict[str, Any] = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise usage(f"--scorer {spec[:40]!r}: not valid JSON ({exc.msg})") from None
        return rule
    return {"scorer": spec}


@monitors_app.command("create")
def create(
    prompt: Annotated[str, typer.Argument(help="Prompt name.")],
    scorer: Annotated[
        list[str] | None,
        typer.Option("--scorer", "-s", help='Scorer name, or a JSON rule ({"scorer": ..., "params": ...}).'),
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="A JSON body of POST /v1/monitors instead.")
    ] = None,
    environment: Annotated[str, typer.Option("--env", help="Environment.")] = "production",
    sample_rate: Annotated[float, typer.Option("--sample-rate", help="Share of outputs scored.")] = 0.1,
    auto_rollback: Annotated[bool, typer.Option("--auto-rollback", help="Roll back on critical.")] = False,
    url: Url = "",
    key: Key = "",
    as_json: AsJson = False,
) -> None:
    """Create a monitor for a prompt in one environment."""
    if file is not None:
        try:
            body = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise usage(f"--file {file}: {exc}") from None
        if not isinstance(body, dict):
            raise usage(f"--file {file}: expected a JSON object")
        body.setdefault("prompt", prompt)
    else:
        if not scorer:
            raise usage("name at least one --scorer (or give --file)")
        body = {
            "prompt": prompt,
            "environment": environment,
            "sample_rate": sample_rate,
            "auto_rollback": auto_rollback,
            "scorers": [_scorer(s) for s in scorer],
        }
    with Remote(url, key) as remote:
        monitor = remote.call("POST", "/v1/monitors", json=body)
    print_result(monitor, as_json, "created " + _summary(monitor))


@monitors_app.command("list")
def list_monitors(
    prompt: Annotated[str | None, typer.Option("--prompt", help="Only this prompt's.")] = None,
    url: Url = "",
    key: Key = "",
    as_json: AsJson = False,
) -> None:
    """List monitors."""
    params = {k: v for k, v in {"prompt": prompt, "limit": 200}.items() if v is not None}
    with Remote(url, key) as remote:
        page = remote.call("GET", "/v1/monitors", params=params)
    print_result(page, as_json, "\n".join(_summary(m) for m in page["items"]) or "no monitors")


@monitors_app.command("set")
def update(
    monitor_id: MonitorId,
    auto_rollback: Annotated[
        bool | None, typer.Option("--auto-rollback/--no-auto-rollback", help="Roll back on critical, or not.")
    ] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Score outputs, or pause.")
    ] = None,
    sample_rate: Annotated[float | None, typer.Option("--sample-rate")] = None,
    url: Url = "",
    key: Key = "",
    as_json: AsJson = False,
) -> None:
    """Change a monitor's switches and sample rate."""
    body = {
        k: v
        for k, v in {"auto_rollback": auto_rollback, "enabled": enabled, "sample_rate": sample_rate}.items()
        if v is not None
    }
    if not body:
        raise usage("nothing to change: give --auto-rollback, --enable/--disable or --sample-rate")
    with Remote(url, key) as remote:
        monitor = remote.call("PATCH", f"/v1/monitors/{monitor_id}", json=body)
    print_result(monitor, as_json, "updated " + _summary(monitor))


@monitors_app.command("status")
def status(monitor_id: MonitorId, url: Url = "", key: Key = "", as_json: AsJson = False) -> None:
    """Live and baseline windows per rule, the latest decision and alerts."""
    with Remote(url, key) as remote:
        body = remote.call("GET", f"/v1/monitors/{monitor_id}/status")
    if as_json:
        print_result(body, True, "")
        return
    live, baseline_version = body["live_version"], body["baseline_version"]
    lines = [f"{body['state']}: {body['message']} (live v{live}, baseline v{baseline_version})"]
    for rule in body["scorers"]:
        live_window, baseline_window = _level(rule["current"]), _level(rule["baseline"])
        lines.append(
            f"  {rule['name']}: live {live_window}, baseline {baseline_window}, look {rule['level'] or '-'}"
        )
    lines.append(f"pending {body['pending']}, judge cost ${body['judge_cost_usd']:.4f}")
    for alert in body["alerts"][:5]:
        rollback = f", rolled back to v{alert['rollback_to']}" if alert["rollback_to"] else ""
        what = f"{alert['level']} {alert['scorer']} {alert['reason']} on v{alert['version']}"
        lines.append(f"  alert {alert['id']} {what}{rollback}")
    typer.echo("\n".join(lines))


def _level(window: dict[str, Any] | None) -> str:
    if not window or window["level"] is None:
        return "-"
    return f"{window['level']:.3f} (n {window['n']})"


def register(app: typer.Typer) -> None:
    app.add_typer(monitors_app, name="monitors")
