"""Experiment routes: experiments and their lifecycle, results, events ingestion, custom metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, status
from sqlalchemy.orm import Session

from promptkeeper.api.deps import Editor, IdPath, Limit, Offset, ReadDB, Reader, RuntimeCaller, WriteDB
from promptkeeper.api.error_responses import ERROR_RESPONSES
from promptkeeper.core.fields import Page
from promptkeeper.experiments import analysis, metrics, service
from promptkeeper.experiments import ingestion as events
from promptkeeper.experiments.models import Experiment
from promptkeeper.experiments.schemas import (
    EventBatch,
    EventBatchRead,
    ExperimentCreate,
    ExperimentRead,
    ExperimentStop,
    MetricCreate,
    MetricRead,
    ResultsRead,
    Status,
    WeightsUpdate,
)

router = APIRouter(prefix="/v1", tags=["experiments"], responses=ERROR_RESPONSES)

ExperimentId = IdPath
Reason = Annotated[str, Body(embed=True, max_length=10_000)]


def experiment_read(session: Session, experiment: Experiment) -> ExperimentRead:
    prompt, environment = service.names_of(session, experiment)
    return ExperimentRead.of(experiment, prompt=prompt, environment=environment)


@router.post("/experiments", status_code=status.HTTP_201_CREATED, response_model=ExperimentRead)
def create_experiment(body: ExperimentCreate, session: WriteDB, caller: Editor) -> ExperimentRead:
    """Create a draft: the control is what the environment serves; the sample size is pre-registered."""
    experiment = service.create_experiment(session=session, actor=caller, data=body)
    session.commit()
    return experiment_read(session, experiment)


@router.get("/experiments", response_model=Page[ExperimentRead])
def list_experiments(
    session: ReadDB,
    caller: Reader,
    prompt: Annotated[str | None, Query(max_length=128, description="Only this prompt's.")] = None,
    status: Annotated[Status | None, Query(description="Only experiments in this state.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ExperimentRead]:
    rows, total = service.list_experiments(
        session=session,
        project_id=caller.project_id,
        prompt=prompt,
        status=status,
        limit=limit,
        offset=offset,
    )
    return Page(items=[experiment_read(session, e) for e in rows], total=total, limit=limit, offset=offset)


@router.get("/experiments/{experiment_id}", response_model=ExperimentRead)
def get_experiment(experiment_id: ExperimentId, session: ReadDB, caller: Reader) -> ExperimentRead:
    experiment = service.get_experiment(
        session=session, project_id=caller.project_id, experiment_id=experiment_id
    )
    return experiment_read(session, experiment)


@router.post("/experiments/{experiment_id}/start", response_model=ExperimentRead)
def start_experiment(
    experiment_id: ExperimentId, session: WriteDB, caller: Editor, reason: Reason = ""
) -> ExperimentRead:
    """Start serving the variants (a deployment-history event, live everywhere like a rollback)."""
    experiment = service.start_experiment(
        session=session, actor=caller, experiment_id=experiment_id, reason=reason
    )
    session.commit()
    return experiment_read(session, experiment)


@router.put("/experiments/{experiment_id}/weights", response_model=ExperimentRead)
def set_weights(
    experiment_id: ExperimentId, body: WeightsUpdate, session: WriteDB, caller: Editor
) -> ExperimentRead:
    """Change the traffic weights (relative, one per variant key)."""
    experiment = service.set_weights(
        session=session, actor=caller, experiment_id=experiment_id, weights=body.weights, reason=body.reason
    )
    session.commit()
    return experiment_read(session, experiment)


@router.post("/experiments/{experiment_id}/stop", response_model=ExperimentRead)
def stop_experiment(
    experiment_id: ExperimentId, body: ExperimentStop, session: WriteDB, caller: Editor
) -> ExperimentRead:
    """Stop with a decision; `ship` makes the candidate the environment's version in the same change."""
    experiment = service.stop_experiment(
        session=session, actor=caller, experiment_id=experiment_id, data=body
    )
    session.commit()
    return experiment_read(session, experiment)


@router.get("/experiments/{experiment_id}/results", response_model=ResultsRead)
def experiment_results(experiment_id: ExperimentId, session: ReadDB, caller: Reader) -> ResultsRead:
    """Per-variant metrics with 95% intervals, lifts, tests, SRM check, guardrails and the winner."""
    experiment = service.get_experiment(
        session=session, project_id=caller.project_id, experiment_id=experiment_id
    )
    return analysis.results(session=session, experiment=experiment)


@router.post("/events", response_model=EventBatchRead)
def ingest_events(body: EventBatch, session: WriteDB, caller: RuntimeCaller) -> EventBatchRead:
    """Exposures and outcomes, up to 10,000 per request; all stored or (on any error) none."""
    result = events.ingest(session=session, project_id=caller.project_id, events=body.events)
    session.commit()
    return result


@router.get("/metrics", response_model=list[MetricRead])
def list_metrics(session: ReadDB, caller: Reader) -> list[MetricRead]:
    """Built-in metrics and the project's custom ones."""
    return metrics.list_metrics(session=session, project_id=caller.project_id)


@router.post("/metrics", status_code=status.HTTP_201_CREATED, response_model=MetricRead)
def create_metric(body: MetricCreate, session: WriteDB, caller: Editor) -> MetricRead:
    """A custom metric: outcome events carry its values in `metrics.<name>`."""
    metric = metrics.create_metric(session=session, actor=caller, data=body)
    session.commit()
    return MetricRead(
        name=metric.name,
        kind=body.kind,
        higher_is_better=metric.higher_is_better,
        description=metric.description,
        builtin=False,
    )
