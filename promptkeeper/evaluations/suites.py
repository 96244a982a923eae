"""Evaluation suites: create, version, read, import and export cases (JSONL and CSV).

A suite version is immutable: changing scorers or cases appends version `head + 1` with a full
copy of its cases, so a run's results always refer to exactly the cases it ran. Scorer
configurations are checked when they are saved (unknown scorer, bad parameters), so a broken suite
is a 422 at save time rather than a failure in the middle of a run.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from promptkeeper.access.service import Actor
from promptkeeper.audit.service import record
from promptkeeper.core import scorers as scoring
from promptkeeper.core import storable
from promptkeeper.db.base import utcnow
from promptkeeper.errors import Conflict, NotFound, ValidationFailed, field_errors
from promptkeeper.evaluations.models import EvalCase, EvalSuite, EvalSuiteVersion
from promptkeeper.evaluations.schemas import CaseIn, ScorerConfig, SuiteCreate, SuiteVersionCreate
from promptkeeper.prompts.service import get_prompt

#: CSV columns with a meaning of their own; every other column is a variable.
CSV_RESERVED = ("key", "expected", "tags", "scorers")


def check_scorers(scorers: Sequence[ScorerConfig], where: str) -> list[dict[str, Any]]:
    """Validate scorer configurations up front; the stored, JSON-ready form."""
    stored = []
    for index, config in enumerate(scorers):
        field = f"{where}[{index}]"
        try:
            spec = scoring.get_scorer(config.name)
            spec.check_params(config.params)
        except scoring.ScorerError as exc:
            raise ValidationFailed(f"{field}: {exc}", details={"field": field}) from None
        stored.append(config.model_dump(exclude_none=True))
    return stored


def _cases(cases: Sequence[CaseIn]) -> list[EvalCase]:
    rows: list[EvalCase] = []
    seen: set[str] = set()
    for position, case in enumerate(cases):
        key = case.key or f"case-{position + 1}"
        if key in seen:
            raise ValidationFailed(
                f"body.cases[{position}].key: '{key}' is used by another case",
                details={"field": f"cases[{position}]"},
            )
        seen.add(key)
        rows.append(
            EvalCase(
                position=position,
                key=key,
                variables=case.variables,
                expected=case.expected,
                tags=list(dict.fromkeys(case.tags)),
                scorers=check_scorers(case.scorers, f"body.cases[{position}].scorers")
                if case.scorers
                else None,
            )
        )
    return rows


def get_suite(*, session: Session, project_id: int, name: str, lock: bool = False) -> EvalSuite:
    query = select(EvalSuite).where(EvalSuite.project_id == project_id, EvalSuite.name == name)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    suite = session.scalar(query)
    if suite is None:
        raise NotFound(f"evaluation suite '{name}' not found", details={"suite": name})
    return suite


def get_suite_version(*, session: Session, suite: EvalSuite, number: int | None = None) -> EvalSuiteVersion:
    number = number or suite.head_version
    version = session.scalar(
        select(EvalSuiteVersion).where(
            EvalSuiteVersion.suite_id == suite.id, EvalSuiteVersion.number == number
        )
    )
    if version is None:
        raise NotFound(
            f"suite '{suite.name}' has no version {number} (latest is {suite.head_version})",
            details={"suite": suite.name, "version": number},
        )
    return version


def _append_version(
    session: Session,
    suite: EvalSuite,
    number: int,
    scorers: list[dict[str, Any]],
    cases: list[EvalCase],
    actor: Actor,
    message: str,
) -> EvalSuiteVersion:
    version = EvalSuiteVersion(
        suite_id=suite.id,
        number=number,
        scorers=scorers,
        case_count=len(cases),
        message=message,
        author=actor.name,
    )
    session.add(version)
    session.flush()
    for case in cases:
        case.suite_version_id = version.id
    session.add_all(cases)
    suite.head_version = number
    suite.updated_at = utcnow()
    session.flush()
    record(
        session=session,
        actor=actor,
        action="suite.version_created" if number > 1 else "suite.created",
        target_type="suite",
        target=f"{suite.name}@{number}",
        after={"suite": suite.name, "version": number, "cases": len(cases), "message": message},
    )
    return version


def create_suite(*, session: Session, actor: Actor, data: SuiteCreate) -> tuple[EvalSuite, EvalSuiteVersion]:
    prompt_id = None
    if data.prompt is not None:
        prompt_id = get_prompt(session=session, project_id=actor.project_id, name=data.prompt).id
    taken = session.scalar(
        select(EvalSuite.id).where(EvalSuite.project_id == actor.project_id, EvalSuite.name == data.name)
    )
    if taken is not None:
        raise Conflict(f"evaluation suite '{data.name}' already exists", details={"suite": data.name})
    scorers = check_scorers(data.scorers, "body.scorers")
    cases = _cases(data.cases)
    suite = EvalSuite(
        project_id=actor.project_id,
        prompt_id=prompt_id,
        name=data.name,
        description=data.description,
        head_version=0,
        created_by=actor.name,
    )
    session.add(suite)
    session.flush()
    version = _append_version(session, suite, 1, scorers, cases, actor, data.message)
    return suite, version


def _copy_cases(session: Session, version: EvalSuiteVersion) -> list[EvalCase]:
    return [
        EvalCase(
            position=case.position,
            key=case.key,
            variables=case.variables,
            expected=case.expected,
            tags=case.tags,
            scorers=case.scorers,
        )
        for case in iter_cases(session=session, version=version)
    ]


def create_suite_version(
    *, session: Session, actor: Actor, name: str, data: SuiteVersionCreate
) -> tuple[EvalSuite, EvalSuiteVersion]:
    suite = get_suite(session=session, project_id=actor.project_id, name=name, lock=True)
    head = get_suite_version(session=session, suite=suite)
    if data.scorers is None and data.cases is None:
        raise ValidationFailed("body: give scorers, cases or both", details={"field": "body"})
    scorers = check_scorers(data.scorers, "body.scorers") if data.scorers is not None else head.scorers
    cases = _cases(data.cases) if data.cases is not None else _copy_cases(session, head)
    version = _append_version(session, suite, head.number + 1, scorers, cases, actor, data.message)
    return suite, version


def list_suites(*, session: Session, project_id: int, prompt: str | None = None) -> list[EvalSuite]:
    query = select(EvalSuite).where(EvalSuite.project_id == project_id)
    if prompt is not None:
        query = query.where(
            EvalSuite.prompt_id == get_prompt(session=session, project_id=project_id, name=prompt).id
        )
    return list(session.scalars(query.order_by(EvalSuite.name)))


def iter_cases(*, session: Session, version: EvalSuiteVersion, batch: int = 500) -> Iterator[EvalCase]:
    """All cases of a version in order, fetched in batches (suites can be large)."""
    position = -1
    while True:
        rows = list(
            session.scalars(
                select(EvalCase)
                .where(EvalCase.suite_version_id == version.id, EvalCase.position > position)
                .order_by(EvalCase.position)
                .limit(batch)
            )
        )
        yield from rows
        if len(rows) < batch:
            return
        position = rows[-1].position


def list_cases(
    *, session: Session, version: EvalSuiteVersion, tag: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[EvalCase], int]:
    query = select(EvalCase).where(EvalCase.suite_version_id == version.id)
    if tag is not None:
        rows = [c for c in iter_cases(session=session, version=version) if tag in c.tags]
        return rows[offset : offset + limit], len(rows)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    return list(session.scalars(query.order_by(EvalCase.position).limit(limit).offset(offset))), total


# --- import and export ----------------------------------------------------------------------------


def _storable(value: Any, line: int) -> Any:
    """A decoded JSON value, refused when it holds text no database stores (a lone surrogate)."""
    found = storable.find(value)
    if found:
        message, errors = field_errors(storable.errors(found))
        raise ValidationFailed(f"line {line}: {message}", details={"line": line, "errors": errors})
    return value


def parse_cases(text: str, fmt: str) -> list[CaseIn]:
    """Cases from JSONL (one case object a line) or CSV (reserved columns + one column a variable)."""
    cases: list[CaseIn] = []
    if fmt == "jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                cases.append(CaseIn.model_validate(_storable(json.loads(line), number)))
            except json.JSONDecodeError as exc:
                raise ValidationFailed(
                    f"line {number}: not JSON ({exc.msg})", details={"line": number}
                ) from None
            except ValidationError as exc:
                message, errors = field_errors(list(exc.errors()))
                raise ValidationFailed(
                    f"line {number}: {message}", details={"line": number, "errors": errors}
                ) from None
        return cases
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise ValidationFailed("the CSV has no header row", details={"line": 1})
    for number, row in enumerate(reader, start=2):
        try:
            scorers = _storable(json.loads(row["scorers"]), number) if row.get("scorers") else None
            cases.append(
                CaseIn.model_validate(
                    {
                        "key": row.get("key") or None,
                        "expected": row.get("expected") or None,
                        "tags": [t.strip() for t in (row.get("tags") or "").split("|") if t.strip()],
                        "scorers": scorers,
                        "variables": {
                            k: v for k, v in row.items() if k not in CSV_RESERVED and k is not None
                        },
                    }
                )
            )
        except json.JSONDecodeError:
            raise ValidationFailed(
                f"line {number}: column 'scorers' is not JSON", details={"line": number}
            ) from None
        except ValidationError as exc:
            message, errors = field_errors(list(exc.errors()))
            raise ValidationFailed(
                f"line {number}: {message}", details={"line": number, "errors": errors}
            ) from None
    return cases


def import_cases(
    *, session: Session, actor: Actor, name: str, text: str, fmt: str, mode: str, message: str = ""
) -> tuple[EvalSuite, EvalSuiteVersion, int]:
    """A new suite version with the imported cases replacing (or appended to) the head's."""
    incoming = parse_cases(text, fmt)
    if not incoming:
        raise ValidationFailed("the file has no cases", details={"field": "body"})
    suite = get_suite(session=session, project_id=actor.project_id, name=name, lock=True)
    head = get_suite_version(session=session, suite=suite)
    cases = incoming
    if mode == "append":
        existing = [
            CaseIn(key=c.key, variables=c.variables, expected=c.expected, tags=c.tags, scorers=c.scorers)
            for c in iter_cases(session=session, version=head)
        ]
        cases = existing + incoming
    version = _append_version(
        session,
        suite,
        head.number + 1,
        head.scorers,
        _cases(cases),
        actor,
        message or f"import ({fmt}, {mode})",
    )
    return suite, version, len(incoming)


def export_cases(*, session: Session, version: EvalSuiteVersion, fmt: str) -> Iterator[str]:
    """The cases as JSONL or CSV, streamed."""
    if fmt == "jsonl":
        for case in iter_cases(session=session, version=version):
            item: dict[str, Any] = {"key": case.key, "variables": case.variables}
            if case.expected is not None:
                item["expected"] = case.expected
            if case.tags:
                item["tags"] = case.tags
            if case.scorers:
                item["scorers"] = case.scorers
            yield json.dumps(item, ensure_ascii=False) + "\n"
        return
    cases = list(iter_cases(session=session, version=version))
    variables = list(dict.fromkeys(name for case in cases for name in case.variables))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["key", *variables, "expected", "tags", "scorers"])
    for case in cases:
        writer.writerow(
            [
                case.key,
                *[_cell(case.variables.get(name)) for name in variables],
                case.expected or "",
                "|".join(case.tags),
                json.dumps(case.scorers) if case.scorers else "",
            ]
        )
    yield buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
