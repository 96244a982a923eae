"""Evaluation routes: suites and cases, runs and results, environment gates."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Path, Query, status
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from promptkeeper.api.deps import (
    Admin,
    ContextDep,
    Editor,
    IdPath,
    Limit,
    Offset,
    PromptNameDep,
    ReadDB,
    Reader,
    WriteDB,
)
from promptkeeper.api.error_responses import ERROR_RESPONSES
from promptkeeper.core.fields import ENVIRONMENT_PATTERN, MAX_INT, Page
from promptkeeper.errors import NotFound
from promptkeeper.evaluations import gates, runs, suites
from promptkeeper.evaluations.models import (
    EvalGate,
    EvalRun,
    EvalSuite,
    EvalSuiteVersion,
)
from promptkeeper.evaluations.schemas import (
    SUITE_PATTERN,
    CaseRead,
    ComparisonRead,
    GateRead,
    GateSet,
    ImportRead,
    ResultRead,
    RunCreate,
    RunRead,
    SuiteCreate,
    SuiteRead,
    SuiteVersionCreate,
)
from promptkeeper.prompts.models import Prompt
from promptkeeper.prompts.service import get_environment

router = APIRouter(prefix="/v1", tags=["evaluations"], responses=ERROR_RESPONSES)

SuiteName = Annotated[str, Path(pattern=SUITE_PATTERN)]
EnvironmentPath = Annotated[str, Path(pattern=ENVIRONMENT_PATTERN)]
RunId = IdPath
SuiteVersionQuery = Annotated[
    int | None, Query(ge=1, le=MAX_INT, description="Suite version (default: the head).")
]
Format = Annotated[Literal["jsonl", "csv"], Query(description="File format.")]


def _suite_read(session: Session, suite: EvalSuite, version: EvalSuiteVersion) -> SuiteRead:
    prompt = session.get(Prompt, suite.prompt_id) if suite.prompt_id is not None else None
    return SuiteRead.of(
        suite,
        prompt=prompt.name if prompt else None,
        version=version.number,
        scorers=version.scorers,
        case_count=version.case_count,
        message=version.message,
    )


def _run_read(session: Session, run: EvalRun) -> RunRead:
    prompt, suite = runs.run_names(session, run)
    return RunRead.of(run, prompt=prompt, suite=suite)


def _gate_read(session: Session, gate: EvalGate, environment: str) -> GateRead:
    suite = session.get(EvalSuite, gate.suite_id)
    assert suite is not None
    return GateRead.of(gate, environment=environment, suite=suite.name)


# --- suites ---------------------------------------------------------------------------------------


@router.post("/suites", status_code=status.HTTP_201_CREATED, response_model=SuiteRead)
def create_suite(body: SuiteCreate, session: WriteDB, caller: Editor) -> SuiteRead:
    """Create an evaluation suite (scorers and cases) as its version 1."""
    suite, version = suites.create_suite(session=session, actor=caller, data=body)
    session.commit()
    return _suite_read(session, suite, version)


@router.get("/suites", response_model=list[SuiteRead])
def list_suites(
    session: ReadDB,
    caller: Reader,
    prompt: Annotated[str | None, Query(max_length=128, description="Only this prompt's suites.")] = None,
) -> list[SuiteRead]:
    found = suites.list_suites(session=session, project_id=caller.project_id, prompt=prompt)
    return [_suite_read(session, s, suites.get_suite_version(session=session, suite=s)) for s in found]


@router.get("/suites/{suite}", response_model=SuiteRead)
def get_suite(
    suite: SuiteName, session: ReadDB, caller: Reader, version: SuiteVersionQuery = None
) -> SuiteRead:
    found = suites.get_suite(session=session, project_id=caller.project_id, name=suite)
    return _suite_read(session, found, suites.get_suite_version(session=session, suite=found, number=version))


@router.post("/suites/{suite}/versions", status_code=status.HTTP_201_CREATED, response_model=SuiteRead)
def create_suite_version(
    suite: SuiteName, body: SuiteVersionCreate, session: WriteDB, caller: Editor
) -> SuiteRead:
    """A new version with other scorers and/or cases (omitted: the head's, copied)."""
    found, version = suites.create_suite_version(session=session, actor=caller, name=suite, data=body)
    session.commit()
    return _suite_read(session, found, version)


@router.get("/suites/{suite}/cases", response_model=Page[CaseRead])
def list_cases(
    suite: SuiteName,
    session: ReadDB,
    caller: Reader,
    version: SuiteVersionQuery = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[CaseRead]:
    found = suites.get_suite(session=session, project_id=caller.project_id, name=suite)
    suite_version = suites.get_suite_version(session=session, suite=found, number=version)
    rows, total = suites.list_cases(
        session=session, version=suite_version, tag=tag, limit=limit, offset=offset
    )
    return Page[CaseRead](
        items=[CaseRead.model_validate(c) for c in rows], total=total, limit=limit, offset=offset
    )


@router.post("/suites/{suite}/import", status_code=status.HTTP_201_CREATED, response_model=ImportRead)
def import_cases(
    suite: SuiteName,
    session: WriteDB,
    caller: Editor,
    body: Annotated[
        str, Body(media_type="text/plain", max_length=50_000_000, description="JSONL or CSV text.")
    ],
    format: Format = "jsonl",
    mode: Annotated[
        Literal["replace", "append"], Query(description="Replace the cases or add to them.")
    ] = "replace",
    message: Annotated[str, Query(max_length=1000)] = "",
) -> ImportRead:
    """Import cases from JSONL or CSV as a new suite version (422 names the line of a bad case)."""
    found, version, count = suites.import_cases(
        session=session, actor=caller, name=suite, text=body, fmt=format, mode=mode, message=message
    )
    session.commit()
    return ImportRead(suite=_suite_read(session, found, version), imported=count)


@router.get("/suites/{suite}/export", response_class=StreamingResponse)
def export_cases(
    suite: SuiteName,
    context: ContextDep,
    caller: Reader,
    format: Format = "jsonl",
    version: SuiteVersionQuery = None,
) -> StreamingResponse:
    """The cases of a suite version as JSONL or CSV (re-importable)."""
    with context.db.session() as session:
        found = suites.get_suite(session=session, project_id=caller.project_id, name=suite)
        suite_version = suites.get_suite_version(session=session, suite=found, number=version)
        number = suite_version.number

    def lines() -> Iterator[str]:
        with context.db.session() as session:
            chosen = suites.get_suite_version(
                session=session,
                suite=suites.get_suite(session=session, project_id=caller.project_id, name=suite),
                number=number,
            )
            yield from suites.export_cases(session=session, version=chosen, fmt=format)

    media = "application/x-ndjson" if format == "jsonl" else "text/csv"
    filename = f"{suite}-v{number}.{format}"
    return StreamingResponse(
        lines(), media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


# --- runs -----------------------------------------------------------------------------------------


@router.post("/prompts/{name}/evaluations", status_code=status.HTTP_202_ACCEPTED, response_model=RunRead)
def create_run(
    name: PromptNameDep, body: RunCreate, session: WriteDB, context: ContextDep, caller: Editor
) -> RunRead:
    """Queue an evaluation run of a prompt version on a suite; a worker executes it."""
    run = runs.create_run(
        session=session,
        actor=caller,
        name=name,
        data=body,
        default_concurrency=context.settings.provider_concurrency,
    )
    session.commit()
    return _run_read(session, run)


@router.get("/prompts/{name}/evaluations", response_model=Page[RunRead])
def list_runs(
    name: PromptNameDep,
    session: ReadDB,
    caller: Reader,
    version: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    suite: Annotated[str | None, Query(pattern=SUITE_PATTERN)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[RunRead]:
    """A prompt's runs, newest first."""
    rows, total = runs.list_runs(
        session=session,
        project_id=caller.project_id,
        name=name,
        version=version,
        suite=suite,
        limit=limit,
        offset=offset,
    )
    return Page[RunRead](items=[_run_read(session, r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/evaluations/{run_id}", response_model=RunRead)
def get_run(run_id: RunId, session: ReadDB, caller: Reader) -> RunRead:
    """A run's status, progress and summary (per scorer and tag, with confidence intervals)."""
    return _run_read(session, runs.get_run(session=session, project_id=caller.project_id, run_id=run_id))


@router.get("/evaluations/{run_id}/results", response_model=Page[ResultRead])
def list_results(
    run_id: RunId,
    session: ReadDB,
    caller: Reader,
    failed_only: Annotated[bool, Query(description="Only results that did not pass.")] = False,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ResultRead]:
    """Per case and repeat: output, scores, latency, tokens."""
    run = runs.get_run(session=session, project_id=caller.project_id, run_id=run_id)
    rows, total = runs.list_results(
        session=session, run=run, failed_only=failed_only, limit=limit, offset=offset
    )
    return Page[ResultRead](
        items=[ResultRead.model_validate(r) for r in rows], total=total, limit=limit, offset=offset
    )


@router.get("/evaluations/{run_id}/compare", response_model=ComparisonRead)
def compare_runs(
    run_id: RunId,
    session: ReadDB,
    caller: Reader,
    baseline: Annotated[
        int, Query(ge=1, le=MAX_INT, description="The run to compare with (same suite version).")
    ],
) -> ComparisonRead:
    """Candidate (this run) vs baseline: per-case regressions and improvements, mean differences."""
    candidate = runs.get_run(session=session, project_id=caller.project_id, run_id=run_id)
    base = runs.get_run(session=session, project_id=caller.project_id, run_id=baseline)
    return ComparisonRead.model_validate(
        runs.compare_runs(session=session, baseline=base, candidate=candidate)
    )


# --- gates ----------------------------------------------------------------------------------------


@router.get("/environments/{environment}/gate", response_model=GateRead)
def get_gate(environment: EnvironmentPath, session: ReadDB, caller: Reader) -> GateRead:
    env = get_environment(session=session, project_id=caller.project_id, name=environment)
    gate = gates.get_gate(session=session, environment=env)
    if gate is None:
        raise NotFound(f"'{environment}' has no evaluation gate", details={"environment": environment})
    return _gate_read(session, gate, environment)


@router.put("/environments/{environment}/gate", response_model=GateRead)
def set_gate(environment: EnvironmentPath, body: GateSet, session: WriteDB, caller: Admin) -> GateRead:
    """Require a passing evaluation to deploy here: minimum scores, maximum drop, auto-promotion."""
    gate, _ = gates.set_gate(session=session, actor=caller, environment=environment, data=body)
    session.commit()
    return _gate_read(session, gate, environment)


@router.delete("/environments/{environment}/gate", status_code=status.HTTP_204_NO_CONTENT)
def delete_gate(environment: EnvironmentPath, session: WriteDB, caller: Admin) -> None:
    """Remove the environment's gate (audited as a warning)."""
    gates.delete_gate(session=session, actor=caller, environment=environment)
    session.commit()
