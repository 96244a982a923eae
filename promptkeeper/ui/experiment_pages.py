"""Experiment pages: list, create (with the sample size it will need), start, live results with
intervals, a chart of the primary metric over time per variant, bandit weights over time, SRM
warning, and stop with a decision (ship a candidate, keep the control, inconclusive)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from promptkeeper.errors import ValidationFailed
from promptkeeper.experiments import analysis, metrics, service
from promptkeeper.experiments.models import Experiment, experiment_units
from promptkeeper.experiments.schemas import ExperimentCreate, ExperimentStop
from promptkeeper.ui import charts
from promptkeeper.ui.web import (
    SignedIn,
    actor_of,
    first,
    form_of,
    is_count,
    page,
    pydantic_message,
    read,
    redirect,
    require_editor,
    ui_page,
    write,
)

router = APIRouter(include_in_schema=False)
#: Points on the "primary metric over time" chart per variant.
CHART_POINTS = 40


def _create_body(fields: dict[str, list[str]]) -> dict[str, Any]:
    def number(name: str) -> float | None:
        value = first(fields, name).strip()
        if not value:
            return None
        try:
            return float(value)
        except ValueError:
            raise ValidationFailed(f"{name}: '{value}' is not a number", details={"field": name}) from None

    candidates = []
    for version in first(fields, "candidates").replace(" ", "").split(","):
        if version:
            if not is_count(version):
                raise ValidationFailed(
                    "candidates: version numbers separated by commas", details={"field": "candidates"}
                )
            candidates.append({"version": int(version), "weight": 1.0})
    body: dict[str, Any] = {
        "prompt": first(fields, "prompt").strip(),
        "environment": first(fields, "environment", "production").strip(),
        "name": first(fields, "name").strip(),
        "hypothesis": first(fields, "hypothesis"),
        "candidates": candidates,
        "mode": first(fields, "mode", "fixed"),
        "primary_metric": first(fields, "primary_metric", "completion"),
        "mde": number("mde"),
        "baseline": number("baseline"),
        "std_dev": number("std_dev"),
        "sequential": first(fields, "sequential") == "on",
    }
    for name in ("alpha", "power", "control_weight"):
        value = number(name)
        if value is not None:
            body[name] = value
    return {key: value for key, value in body.items() if value is not None}


@router.get("/ui/experiments")
@ui_page
async def experiments(request: Request, user: SignedIn) -> Response:

    def load(session: Session) -> dict[str, Any]:
        rows, _ = service.list_experiments(session=session, project_id=user.principal.project_id, limit=200)
        return {"experiments": [(e, *service.names_of(session, e)) for e in rows]}

    return page(request, "experiments.html", user, **(await read(request, load)))


@router.get("/ui/experiments/new")
@ui_page
async def new_experiment(request: Request, user: SignedIn, prompt: str = "") -> Response:
    require_editor(user)
    return page(
        request,
        "new_experiment.html",
        user,
        values={"prompt": prompt},
        error=None,
        planned=None,
        metrics=metrics.BUILTIN,
    )


@router.post("/ui/experiments")
@ui_page
async def create_experiment(request: Request, user: SignedIn) -> Response:
    """`intent=calculate` shows the sample size the design needs; `intent=create` saves a draft."""
    fields = await form_of(request, user)
    require_editor(user)
    values = {name: first(fields, name) for name in fields}
    try:
        data = ExperimentCreate.model_validate(_create_body(fields))
        if first(fields, "intent") == "calculate":
            spec = metrics.BUILTIN.get(data.primary_metric)
            if spec is None:
                raise ValidationFailed("primary_metric: pick a built-in metric to calculate here")
            planned = service.planned_sample_size(spec, data)
            return page(
                request,
                "new_experiment.html",
                user,
                values=values,
                error=None,
                planned=planned,
                metrics=metrics.BUILTIN,
            )
        experiment = await write(
            request,
            lambda session: service.create_experiment(
                session=session, actor=actor_of(request, user), data=data
            ),
        )
    except (ValidationFailed, ValueError) as exc:
        message = exc.message if isinstance(exc, ValidationFailed) else pydantic_message(exc)
        return page(
            request, "new_experiment.html", user, status_code=422, values=values, error=message, planned=None,
            metrics=metrics.BUILTIN,
        )  # fmt: skip
    return redirect(f"/ui/experiments/{experiment.id}")


def metric_over_time(session: Session, experiment: Experiment) -> dict[str, list[tuple[float, float]]]:
    """The primary metric's running value per variant, by units in order of first exposure
    (built-in metrics; custom ones live in the events' JSON and are left out)."""
    spec = metrics.BUILTIN.get(experiment.primary_metric)
    if spec is None or spec.column is None:
        return {}
    units = experiment_units.c
    if spec.kind == "binary":
        value = units[f"{spec.column}_max"]
        count = None
    else:
        value, count = units[f"{spec.column}_sum"], units[f"{spec.column}_n"]
    rows = session.execute(
        select(units.variant_min, value, *([count] if count is not None else []))
        .where(
            units.experiment_id == experiment.id,
            units.variant_min == units.variant_max,
            units.first_exposure_at.is_not(None),
        )
        .order_by(units.first_exposure_at)
    ).all()
    keys = [v["key"] for v in experiment.variants]
    totals: dict[int, list[float]] = {}
    series: dict[str, list[tuple[float, float]]] = {}
    per_variant: dict[int, int] = {}
    for row in rows:
        per_variant[row[0]] = per_variant.get(row[0], 0) + 1
    step = {variant: max(1, n // CHART_POINTS) for variant, n in per_variant.items()}
    for row in rows:
        variant = row[0]
        total = totals.setdefault(variant, [0.0, 0.0])
        if spec.kind == "binary":
            if row[1] is None and spec.missing == "exclude":
                continue
            total[0] += float(row[1] or 0)
            total[1] += 1
        else:
            if not row[2]:
                continue
            total[0] += float(row[1]) / float(row[2])
            total[1] += 1
        if total[1] % step[variant] == 0:
            series.setdefault(keys[variant], []).append((total[1], total[0] / total[1]))
    return series


@router.get("/ui/experiments/{experiment_id}")
@ui_page
async def experiment_page(request: Request, user: SignedIn, experiment_id: int) -> Response:

    def load(session: Session) -> dict[str, Any]:
        experiment = service.get_experiment(
            session=session, project_id=user.principal.project_id, experiment_id=experiment_id
        )
        prompt, environment = service.names_of(session, experiment)
        results = (
            analysis.results(session=session, experiment=experiment) if experiment.status != "draft" else None
        )
        return {
            "experiment": experiment,
            "prompt": prompt,
            "environment": environment,
            "results": results,
            "over_time": metric_over_time(session, experiment),
        }

    data = await read(request, load)
    experiment = data["experiment"]
    keys = [v["key"] for v in experiment.variants]
    weights: dict[str, list[tuple[float, float]]] = {key: [] for key in keys}
    for index, entry in enumerate(experiment.weight_history):
        for key, weight in zip(keys, entry["weights"], strict=False):
            weights[key].append((float(index + 1), float(weight)))
    chart = charts.line_chart(
        f"{experiment.primary_metric} per variant, by units exposed",
        data["over_time"],
        x_label="units exposed",
    )
    weight_chart = charts.line_chart(
        "Traffic weights at each change", weights, y_min=0.0, y_max=1.0, x_label="weight changes"
    )
    return page(request, "experiment.html", user, chart=chart, weight_chart=weight_chart, **data)


@router.post("/ui/experiments/{experiment_id}/start")
@ui_page
async def start(request: Request, user: SignedIn, experiment_id: int) -> Response:
    await form_of(request, user)
    require_editor(user)
    await write(
        request,
        lambda session: service.start_experiment(
            session=session,
            actor=actor_of(request, user),
            experiment_id=experiment_id,
            reason="started in the web UI",
        ),
    )
    return redirect(f"/ui/experiments/{experiment_id}")


@router.post("/ui/experiments/{experiment_id}/stop")
@ui_page
async def stop(request: Request, user: SignedIn, experiment_id: int) -> Response:
    fields = await form_of(request, user)
    require_editor(user)
    decision = first(fields, "decision")
    try:
        data = ExperimentStop.model_validate(
            {
                "decision": decision,
                "variant": first(fields, "variant") or None if decision == "ship" else None,
                "reason": first(fields, "reason"),
            }
        )
    except ValueError as exc:
        raise ValidationFailed(pydantic_message(exc)) from None
    await write(
        request,
        lambda session: service.stop_experiment(
            session=session, actor=actor_of(request, user), experiment_id=experiment_id, data=data
        ),
    )
    return redirect(f"/ui/experiments/{experiment_id}")
