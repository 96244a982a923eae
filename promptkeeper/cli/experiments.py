"""`promptkeeper experiments ...`: create, start, steer, read and stop experiments over HTTP.

Like the `eval` commands these are clients of a running server (`--url`/`PROMPTKEEPER_URL`,
`--key`/`PROMPTKEEPER_API_KEY`); errors are one line on stderr and exit code 1.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from promptkeeper.cli.common import AsJson, Key, Remote, Url, print_result, usage

experiments_app = typer.Typer(
    help="A/B experiments and bandits: create, start, change weights, read results, stop.",
    no_args_is_help=True,
)

ExperimentId = Annotated[int, typer.Argument(min=1, help="Experiment id.")]


def _weight_pairs(pairs: list[str], what: str) -> list[tuple[str, float]]:
    parsed = []
    for pair in pairs:
        key, sep, weight = pair.partition(":" if what == "candidate" else "=")
        try:
            parsed.append((key, float(weight) if sep else 1.0))
        except ValueError:
            raise usage(f"{what} '{pair}': the weight must be a number") from None
    return parsed


def _summary(experiment: dict[str, Any]) -> str:
    variants = ", ".join(f"{v['key']}=v{v['version']} {v['weight']:.0%}" for v in experiment["variants"])
    decision = f", decision {experiment['decision']}" if experiment.get("decision") else ""
    return (
        f"experiment {experiment['id']} '{experiment['name']}' on {experiment['prompt']}@"
        f"{experiment['environment']}: {experiment['status']}{decision}; {variants}; "
        f"{experiment['mode']}, primary {experiment['primary_metric']}, "
        f"planned {experiment['planned_sample_size']} units per variant"
    )


@experiments_app.command("create")
def create(
    prompt: Annotated[str, typer.Argument(help="Prompt name.")],
    candidate: Annotated[
        list[str],
        typer.Option("--candidate", "-c", help="VERSION[:WEIGHT], repeatable (weights are relative)."),
    ],
    metric: Annotated[str, typer.Option("--metric", help="Primary metric (e.g. completion).")],
    mde: Annotated[float, typer.Option("--mde", help="Minimum detectable effect.")],
    name: Annotated[str, typer.Option("--name", help="A name for people.")] = "experiment",
    environment: Annotated[str, typer.Option("--env", help="Environment.")] = "production",
    control_weight: Annotated[
        float, typer.Option("--control-weight", help="Relative weight of the control.")
    ] = 1.0,
    guardrail: Annotated[
        list[str] | None, typer.Option("--guardrail", help="Guardrail metric, repeatable.")
    ] = None,
    baseline: Annotated[
        float | None, typer.Option("--baseline", help="Expected control rate (binary).")
    ] = None,
    std_dev: Annotated[
        float | None, typer.Option("--std-dev", help="Expected sd per unit (continuous).")
    ] = None,
    mode: Annotated[str, typer.Option("--mode", help="fixed, thompson or ucb.")] = "fixed",
    sequential: Annotated[bool, typer.Option("--sequential", help="Always-valid analysis.")] = False,
    hypothesis: Annotated[str, typer.Option("--hypothesis")] = "",
    url: Url = "",
    key: Key = "",
    as_json: AsJson = False,
) -> None:
    """Create a draft experiment (the control is what the environment serves now)."""
    candidates = []
    for version, weight in _weight_pairs(candidate, "candidate"):
        if not (version.isascii() and version.isdigit() and len(version) <= 9):
            raise usage(f"candidate '{version}': give a version number, as VERSION[:WEIGHT]")
        candidates.append({"version": int(version), "weight": weight})
    body = {
        "prompt": prompt,
        "environment": environment,
        "name": name,
        "hypothesis": hypothesis,
        "control_weight": control_weight,
        "candidates": candidates,
        "mode": mode,
        "primary_metric": metric,
        "guardrails": guardrail or [],
        "mde": mde,
        "baseline": baseline,
        "std_dev": std_dev,
        "sequential": sequential,
    }
    with Remote(url, key) as remote:
        experiment = remote.call("POST", "/v1/experiments", json=body)
    print_result(experiment, as_json, "created " + _summary(experiment))


@experiments_app.command("list")
def list_experiments(
    prompt: Annotated[str | None, typer.Option("--prompt", help="Only this prompt's.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="draft, running or stopped.")] = None,
    url: Url = "",
    key: Key = "",
    as_json: AsJson = False,
) -> None:
    """List experiments, newest first."""
    params = {k: v for k, v in {"prompt": prompt, "status": status, "limit": 200}.items() if v is not None}
    with Remote(url, key) as remote:
        page = remote.call("GET", "/v1/experiments", params=params)
    print_result(page, as_json, "\n".join(_summary(e) for e in page["items"]) or "no experiments")


@experiments_app.command("show")
def show(experiment_id: ExperimentId, url: Url = "", key: Key = "", as_json: AsJson = False) -> None:
    """One experiment's definition and state."""
    with Remote(url, key) as remote:
        experiment = remote.call("GET", f"/v1/experiments/{experiment_id}")
    print_result(experiment, as_json, _summary(experiment))


@experiments_app.command("start")
def start(
    experiment_id: ExperimentId,
    reason: Annotated[str, typer.Option("--reason")] = "",
    url: Url = "",
    key: Key = "",
    as_json: AsJson = False,
) -> None:
    """Start serving the variants (live on every server within the propagation time)."""
    with Remote(url, key) as remote:
        experiment = remote.call("POST", f"/v1/experiments/{experiment_id}/start", json={"reason": reason})
    print_result(experiment, as_json, "started " + _summary(experiment))


@experiments_app.command("weights")
def weights(
    experiment_id: ExperimentId,
    weight: Annotated[list[str], typer.Argument(help="KEY=WEIGHT for every variant, e.g. control=9 v7=1.")],
    reason: Annotated[str, typer.Option("--reason")] = "",
    url: Url = "",
    key: Key = "",
    as_json: AsJson = False,
) -> None:
    """Change the traffic weights."""
    pairs = dict(_weight_pairs(weight, "weight"))
    with Remote(url, key) as remote:
        experiment = remote.call(
            "PUT", f"/v1/experiments/{experiment_id}/weights", json={"weights": pairs, "reason": reason}
        )
    print_result(experiment, as_json, "updated " + _summary(experiment))


@experiments_app.command("stop")
def stop(
    experiment_id: ExperimentId,
    decision: Annotated[str, typer.Option("--decision", help="ship, keep_control or inconclusive.")],
    variant: Annotated[str | None, typer.Option("--variant", help="The candidate to ship.")] = None,
    reason: Annotated[str, typer.Option("--reason")] = "",
    review: Annotated[
        int | None, typer.Option("--review", help="Approved review of the shipped version.")
    ] = None,
    url: Url = "",
    key: Key = "",
    as_json: AsJson = False,
) -> None:
    """Stop with a decision; `ship` deploys the candidate in the same change."""
    body = {"decision": decision, "variant": variant, "reason": reason, "review_id": review}
    with Remote(url, key) as remote:
        experiment = remote.call("POST", f"/v1/experiments/{experiment_id}/stop", json=body)
    print_result(experiment, as_json, "stopped " + _summary(experiment))


def _cell(value: float | None, fmt: str = "{:.4g}") -> str:
    return "" if value is None else fmt.format(value)


#: After the metric's name: the primary `*`, a guardrail `(g)`; secondary metrics (described, not
#: tested) have no mark and no p-values.
_ROLE_MARK = {"primary": " *", "guardrail": " (g)"}


@experiments_app.command("results")
def results(experiment_id: ExperimentId, url: Url = "", key: Key = "", as_json: AsJson = False) -> None:
    """Per-variant metrics with intervals, tests, the SRM check, guardrails and the winner."""
    with Remote(url, key) as remote:
        body = remote.call("GET", f"/v1/experiments/{experiment_id}/results")
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze the table to 80 columns
        console = Console(width=200)
    console.print(f"experiment {experiment_id}: {body['state']}: {body['message']}", soft_wrap=True)
    table = Table()
    for column in (
        "variant",
        "metric",
        "units",
        "n",
        "mean",
        "95% CI",
        "lift",
        "lift 95% CI",
        "p",
        "p (Holm)",
    ):
        table.add_column(column, justify="left" if column in ("variant", "metric") else "right")
    for variant in body["variants"]:
        for metric, m in variant["metrics"].items():
            ci, lift_ci = m.get("ci"), m.get("lift_ci")
            table.add_row(
                variant["key"],
                metric + _ROLE_MARK.get(body.get("metric_roles", {}).get(metric, ""), ""),
                str(variant["exposures"]),
                str(m["n"]),
                _cell(m["mean"]),
                f"[{ci['low']:.4g}, {ci['high']:.4g}]" if ci else "",
                _cell(m.get("lift"), "{:+.4g}"),
                f"[{lift_ci['low']:+.4g}, {lift_ci['high']:+.4g}]" if lift_ci else "",
                _cell(m.get("p_value")),
                _cell(m.get("adjusted_p_value")),
            )
    console.print(table)
    srm = body["srm"]
    console.print(
        f"method: {body['method']}\nSRM: p = {srm['p_value']:.3g} "
        f"({'MISMATCH' if srm['mismatch'] else 'ok'}); winner: {body['winner'] or 'none'}"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(experiments_app, name="experiments")
    # The issue and many users say `experiment`; one spelling is documented, both work.
    app.add_typer(experiments_app, name="experiment", hidden=True)
