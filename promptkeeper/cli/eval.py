"""`promptkeeper worker` and `promptkeeper eval ...`.

`worker` runs evaluation jobs and monitor scoring against the database (like `serve`). The `eval`
commands are HTTP clients of a running server (`--url`/`PROMPTKEEPER_URL`,
`--key`/`PROMPTKEEPER_API_KEY`), so a prompt repository's CI can run a suite and fail the build
when a gate refuses the version: exit code 1 when the run fails or a gate refuses it, 2 for bad
usage.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from promptkeeper.cli.common import Key, Remote, Url, fail, load_settings, open_database, usage
from promptkeeper.core.fields import path_segment

eval_app = typer.Typer(
    help="Offline evaluation: import suites, run them, read results.", no_args_is_help=True
)

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the run as JSON.")]


def _format(path: Path, given: str | None) -> str:
    chosen = given or {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}.get(path.suffix.lower())
    if chosen not in ("jsonl", "csv"):
        raise usage(f"cannot tell the format of '{path.name}': pass --format jsonl or --format csv")
    return chosen


@eval_app.command("import")
def import_cases(
    suite: Annotated[str, typer.Argument(help="Suite name.")],
    file: Annotated[
        Path, typer.Argument(help="A .jsonl or .csv file of cases.", exists=True, dir_okay=False)
    ],
    url: Url = "",
    key: Key = "",
    format: Annotated[str | None, typer.Option(help="jsonl or csv (default: from the extension).")] = None,
    mode: Annotated[str, typer.Option(help="replace or append.")] = "replace",
    scorer: Annotated[
        list[str] | None,
        typer.Option(help="Create the suite with this scorer (repeatable) if it does not exist."),
    ] = None,
    prompt: Annotated[str | None, typer.Option(help="The prompt a new suite belongs to.")] = None,
    quiet: Quiet = False,
) -> None:
    """Import cases into a suite as a new suite version (or create the suite with --scorer)."""
    fmt = _format(file, format)
    text = file.read_text(encoding="utf-8")
    with Remote(url, key) as remote:
        result = _import(remote, suite, fmt, text, mode, scorer, prompt)
    if not quiet:
        typer.echo(
            f"imported {result['imported']} cases into '{suite}' version {result['suite']['version']} "
            f"({result['suite']['case_count']} cases)",
            err=True,
        )


def _import(
    remote: Remote, suite: str, fmt: str, text: str, mode: str, scorer: list[str] | None, prompt: str | None
) -> Any:
    if not remote.exists(f"/v1/suites/{suite}"):
        if not scorer:
            raise fail(f"suite '{suite}' does not exist: add --scorer NAME to create it")
        body: dict[str, Any] = {"name": suite, "scorers": [{"name": s} for s in scorer]}
        if prompt:
            body["prompt"] = prompt
        body["cases"] = []
        # A suite needs its scorers first; the cases come as version 2 through the import route.
        remote.call("POST", "/v1/suites", json=body)
    return remote.call(
        "POST",
        f"/v1/suites/{suite}/import",
        params={"format": fmt, "mode": mode},
        content=text.encode(),
        headers={"Content-Type": "text/plain"},
    )


@eval_app.command("export")
def export_cases(
    suite: Annotated[str, typer.Argument(help="Suite name.")],
    file: Annotated[Path, typer.Argument(help="Where to write (.jsonl or .csv).")],
    url: Url = "",
    key: Key = "",
    format: Annotated[str | None, typer.Option(help="jsonl or csv (default: from the extension).")] = None,
    version: Annotated[int | None, typer.Option(help="Suite version (default: the head).")] = None,
) -> None:
    """Write a suite's cases to a file."""
    params: dict[str, Any] = {"format": _format(file, format)}
    if version:
        params["version"] = version
    with Remote(url, key) as remote:
        file.write_text(remote.text(f"/v1/suites/{suite}/export", params=params), encoding="utf-8")


def _summary_table(run: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"run {run['id']}: {run['prompt']} v{run['version']} on {run['suite']} v{run['suite_version']}"
    )
    for column in ("scorer", "mean", "95% CI", "pass rate", "threshold"):
        table.add_column(column, justify="left" if column == "scorer" else "right")
    for name, s in sorted(run["summary"].get("scorers", {}).items()):
        table.add_row(
            name,
            f"{s['mean']:.3f}",
            f"[{s['mean_ci'][0]:.3f}, {s['mean_ci'][1]:.3f}]",
            f"{s['pass_rate']:.1%}",
            f"{s['threshold']:.2f}",
        )
    console = Console(stderr=True)
    console.print(table)
    summary = run["summary"]
    passed, total = summary.get("passed", 0), summary.get("results", 0)
    console.print(
        f"{passed}/{total} results passed, {summary.get('errors', 0)} errors, "
        f"{summary.get('cached', 0)} from cache"
    )
    for environment, verdict in summary.get("gates", {}).items():
        mark = (
            "[green]passes[/green]"
            if verdict["passed"]
            else f"[red]fails[/red]: {verdict.get('message', '')}"
        )
        console.print(f"gate of '{environment}' {mark}")
    if summary.get("auto_promoted"):
        console.print(f"auto-promoted to {', '.join(summary['auto_promoted'])}")


@eval_app.command("run")
def run_suite(
    name: Annotated[str, typer.Argument(help="Prompt name.")],
    suite: Annotated[str, typer.Option(help="Suite to run.")],
    url: Url = "",
    key: Key = "",
    version: Annotated[int | None, typer.Option(help="Prompt version (default: the head).")] = None,
    repeats: Annotated[int, typer.Option(min=1, max=20, help="Runs of each case.")] = 1,
    provider: Annotated[str, typer.Option(help="Model provider: local, openai, anthropic, ...")] = "local",
    model: Annotated[str | None, typer.Option(help="Model (default: the version's config.model).")] = None,
    gate: Annotated[
        str | None, typer.Option(help="Fail (exit 1) when this environment's gate refuses the version.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the run to finish.")] = 3600,
    quiet: Quiet = False,
    as_json: AsJson = False,
) -> None:
    """Run a suite on a prompt version; waits with a progress bar, prints a summary.

    Exit code 1 when the run fails or when a gate refuses the version (every gate on the suite, or
    only `--gate ENV`).
    """
    body: dict[str, Any] = {"suite": suite, "repeats": repeats, "provider": provider}
    if version:
        body["version"] = version
    if model:
        body["model"] = model
    with Remote(url, key) as remote:
        run = _wait(
            remote,
            remote.call("POST", f"/v1/prompts/{path_segment(name)}/evaluations", json=body),
            timeout,
            quiet or as_json,
        )
    if as_json:
        typer.echo(json.dumps(run, indent=2))
    elif not quiet:
        _summary_table(run)
    if run["status"] != "succeeded":
        raise fail(f"run {run['id']} {run['status']}: {run['error']}")
    verdicts = run["summary"].get("gates", {})
    if gate is not None and gate not in verdicts:
        raise fail(f"'{gate}' has no evaluation gate on suite '{suite}'")
    refused = [env for env, v in verdicts.items() if not v["passed"] and gate in (None, env)]
    if refused:
        raise fail("; ".join(verdicts[env]["message"] for env in refused))


def _wait(remote: Remote, run: Any, timeout: float, silent: bool) -> Any:
    """Poll the run until it ends, with a progress bar unless `silent`."""
    deadline = time.monotonic() + timeout
    if silent:
        while run["status"] in ("queued", "running"):
            if time.monotonic() > deadline:
                raise fail(f"run {run['id']} did not finish within {timeout:g} s")
            time.sleep(0.5)
            run = remote.call("GET", f"/v1/evaluations/{run['id']}")
    else:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, transient=False) as progress:
            task = progress.add_task(f"run {run['id']}", total=run["total"])
            while run["status"] in ("queued", "running"):
                if time.monotonic() > deadline:
                    raise fail(f"run {run['id']} did not finish within {timeout:g} s")
                time.sleep(0.3)
                run = remote.call("GET", f"/v1/evaluations/{run['id']}")
                progress.update(task, completed=run["done"], description=f"run {run['id']} ({run['status']})")
    return run


@eval_app.command("show")
def show_run(
    run_id: Annotated[int, typer.Argument(help="Run id.")],
    url: Url = "",
    key: Key = "",
    as_json: AsJson = False,
) -> None:
    """Print a run's summary."""
    with Remote(url, key) as remote:
        run = remote.call("GET", f"/v1/evaluations/{run_id}")
    if as_json:
        typer.echo(json.dumps(run, indent=2))
    else:
        _summary_table(run)


def worker(
    once: Annotated[bool, typer.Option("--once", help="Process the queued jobs, then exit.")] = False,
) -> None:
    """Run evaluation jobs, monitor scoring and experiment rounds (bandit weights, guardrail stops).

    Several workers share the load; a dead worker's job is resumed.
    """
    from promptkeeper import allocator
    from promptkeeper.logs import configure_logging
    from promptkeeper.worker import run_worker

    allocator.tune()  # a long-running process with a thread pool, like `serve`
    settings = load_settings()
    configure_logging(settings)
    database = open_database(settings)
    allocator.settle()
    try:
        run_worker(database, settings, once=once, say=lambda line: typer.echo(line, err=True))
    finally:
        database.dispose()


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
    app.command("worker")(worker)
