"""Evaluation pages: a prompt's runs with a chart of scores per version, "run a suite on a
version", a run's progress, summary and per-case results, and the comparison with a baseline run."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from promptkeeper.core.fields import path_segment
from promptkeeper.errors import ValidationFailed
from promptkeeper.evaluations import runs, suites
from promptkeeper.evaluations.schemas import RunCreate
from promptkeeper.prompts import service
from promptkeeper.ui import charts
from promptkeeper.ui.web import (
    SignedIn,
    actor_of,
    context_of,
    first,
    form_of,
    is_count,
    page,
    prompt_name_of,
    pydantic_message,
    read,
    redirect,
    require_editor,
    ui_page,
    write,
)

router = APIRouter(include_in_schema=False)


def score_history(rows: list[Any]) -> dict[str, list[tuple[float, float]]]:
    """Per scorer, the mean score of the latest finished run of each prompt version."""
    latest: dict[int, Any] = {}
    for run in sorted(rows, key=lambda r: r.id):
        if run.status == "succeeded" and run.summary:
            latest[run.prompt_version] = run
    series: dict[str, list[tuple[float, float]]] = {}
    for version in sorted(latest):
        for scorer, block in (latest[version].summary.get("scorers") or {}).items():
            series.setdefault(scorer, []).append((float(version), float(block["mean"])))
    return series


@router.get("/ui/prompts/{name}/evaluations")
@ui_page
async def evaluations(request: Request, user: SignedIn, name: str) -> Response:
    prompt_name = prompt_name_of(name)

    def load(session: Session) -> dict[str, Any]:
        prompt = service.get_prompt(session=session, project_id=user.principal.project_id, name=prompt_name)
        rows, _ = runs.list_runs(
            session=session, project_id=user.principal.project_id, name=prompt_name, limit=200
        )
        names = {run.id: runs.run_names(session, run)[1] for run in rows}
        available = suites.list_suites(session=session, project_id=user.principal.project_id, prompt=None)
        return {"prompt": prompt, "runs": rows, "suite_of": names, "suites": [s.name for s in available]}

    data = await read(request, load)
    history = score_history(data["runs"])
    title = "Mean score per prompt version (latest finished run)"
    chart = charts.line_chart(title, history, y_min=0.0, y_max=1.0, x_label="prompt version")
    return page(request, "evaluations.html", user, chart=chart, segment=path_segment(prompt_name), **data)


@router.post("/ui/prompts/{name}/evaluations")
@ui_page
async def run_suite(request: Request, user: SignedIn, name: str) -> Response:
    fields = await form_of(request, user)
    require_editor(user)
    prompt_name = prompt_name_of(name)
    version = first(fields, "version")
    try:
        data = RunCreate.model_validate(
            {
                "suite": first(fields, "suite"),
                "version": int(version) if is_count(version) else None,
                "provider": first(fields, "provider") or "local",
                "model": first(fields, "model") or None,
            }
        )
    except ValueError as exc:
        raise ValidationFailed(pydantic_message(exc)) from None
    concurrency = context_of(request).settings.provider_concurrency
    run = await write(
        request,
        lambda session: runs.create_run(
            session=session,
            actor=actor_of(request, user),
            name=prompt_name,
            data=data,
            default_concurrency=concurrency,
        ),
    )
    return redirect(f"/ui/evaluations/{run.id}")


@router.get("/ui/evaluations/{run_id}")
@ui_page
async def run_page(request: Request, user: SignedIn, run_id: int, baseline: int | None = None) -> Response:

    def load(session: Session) -> dict[str, Any]:
        run = runs.get_run(session=session, project_id=user.principal.project_id, run_id=run_id)
        prompt, suite = runs.run_names(session, run)
        results, total = runs.list_results(session=session, run=run, limit=500)
        others, _ = runs.list_runs(
            session=session, project_id=user.principal.project_id, name=prompt, suite=suite, limit=50
        )
        comparable = [r for r in others if r.id != run.id and r.suite_version == run.suite_version]
        comparison = None
        if baseline is not None:
            base = runs.get_run(session=session, project_id=user.principal.project_id, run_id=baseline)
            comparison = runs.compare_runs(session=session, baseline=base, candidate=run)
        return {
            "run": run,
            "prompt_name": prompt,
            "suite": suite,
            "results": results,
            "total_results": total,
            "comparable": comparable,
            "comparison": comparison,
        }

    data = await read(request, load)
    return page(
        request, "run.html", user, baseline=baseline, segment=path_segment(data["prompt_name"]), **data
    )


@router.get("/ui/suites")
@ui_page
async def suites_page(request: Request, user: SignedIn) -> Response:

    def load(session: Session) -> dict[str, Any]:
        found = suites.list_suites(session=session, project_id=user.principal.project_id)
        return {"suites": [(s, suites.get_suite_version(session=session, suite=s)) for s in found]}

    return page(request, "suites.html", user, **(await read(request, load)))


@router.get("/ui/suites/{name}")
@ui_page
async def suite_page(request: Request, user: SignedIn, name: str, tag: str = "") -> Response:

    def load(session: Session) -> dict[str, Any]:
        suite = suites.get_suite(session=session, project_id=user.principal.project_id, name=name)
        version = suites.get_suite_version(session=session, suite=suite)
        cases, total = suites.list_cases(session=session, version=version, tag=tag or None, limit=500)
        return {"suite": suite, "version": version, "cases": cases, "total": total}

    return page(request, "suite.html", user, tag=tag, **(await read(request, load)))
