"""Composition in the registry: checks at save and deploy, expansion when serving, dependants.

The pure parts (tag syntax, expansion, cycle and size checks) are `core.composition`; this module
answers its `fetch` callback from the database, as things are now, as they were at an instant
(`at=T`: each label as the deployment history had it then), or inside a deploy's transaction
(the new release already flushed, so a cycle the deploy would close is seen before it commits).

When a reference breaks: versions are immutable and releases are never removed, so a reference
checked at save stays resolvable. Only text stored before composition existed can hold a tag
that points nowhere; serving it fails with 409 naming the path, rather than sending the raw tag
to a model (the SDK then serves its last good copy).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, select
from sqlalchemy.orm import Session

from promptkeeper.core.composition import (
    ARROW,
    CompositionError,
    Expansion,
    Fetch,
    Include,
    Reference,
    Target,
    Unresolvable,
    expand,
    references,
)
from promptkeeper.core.templates import InvalidTemplate, content_variables
from promptkeeper.errors import Conflict, ValidationFailed
from promptkeeper.prompts.models import (
    Deployment,
    Environment,
    Prompt,
    PromptReference,
    PromptVersion,
    Release,
)

Reader = Session | Connection


def _explain(reader: Reader, project_id: int, ref: Reference) -> Unresolvable:
    """Why a reference found nothing: no such prompt, environment, release or version."""
    prompt_id = reader.execute(
        select(Prompt.id).where(Prompt.project_id == project_id, Prompt.name == ref.name)
    ).scalar()
    if prompt_id is None:
        return Unresolvable(f"prompt '{ref.name}' does not exist", reason="missing_prompt")
    if ref.version is not None:
        return Unresolvable(f"prompt '{ref.name}' has no version {ref.version}", reason="missing_version")
    environment = reader.execute(
        select(Environment.id).where(Environment.project_id == project_id, Environment.name == ref.label)
    ).scalar()
    if environment is None:
        return Unresolvable(
            f"label '{ref.label}' is not an environment of this project", reason="missing_label"
        )
    return Unresolvable(f"'{ref.name}' has no version deployed to '{ref.label}'", reason="missing_label")


def _by_version(reader: Reader, project_id: int, ref: Reference) -> Target:
    row = reader.execute(
        select(PromptVersion.number, PromptVersion.content)
        .join(Prompt, Prompt.id == PromptVersion.prompt_id)
        .where(Prompt.project_id == project_id, Prompt.name == ref.name, PromptVersion.number == ref.version)
    ).first()
    if row is None:
        raise _explain(reader, project_id, ref)
    return Target(name=ref.name, version=row[0], content=row[1])


def fetcher(reader: Reader, project_id: int, *, at: datetime | None = None) -> Fetch:
    """Follow references as the database has them now (or at instant `at`)."""

    def fetch(ref: Reference) -> Target:
        if ref.version is not None:
            return _by_version(reader, project_id, ref)
        source: Any = Release if at is None else Deployment
        query = (
            select(PromptVersion.number, PromptVersion.content, source.revision)
            .select_from(Prompt)
            .join(source, source.prompt_id == Prompt.id)
            .join(Environment, Environment.id == source.environment_id)
            .join(
                PromptVersion,
                and_(PromptVersion.prompt_id == Prompt.id, PromptVersion.number == source.version_number),
            )
            .where(Prompt.project_id == project_id, Prompt.name == ref.name, Environment.name == ref.label)
        )
        if at is not None:
            query = query.where(Deployment.at <= at).order_by(Deployment.revision.desc()).limit(1)
        row = reader.execute(query).first()
        if row is None:
            raise _explain(reader, project_id, ref)
        return Target(name=ref.name, version=row[0], content=row[1], label=ref.label, revision=row[2])

    return fetch


def compose(
    reader: Reader,
    *,
    project_id: int,
    name: str,
    version: int,
    content: dict[str, Any],
    at: datetime | None = None,
) -> Expansion:
    """What a version serves: its content with references expanded (409 if one is broken)."""
    if "@@@" not in str(content.get("template", "")) and not any(
        "@@@" in str(m.get("content", "")) for m in content.get("messages", [])
    ):
        return Expansion(content, ())
    try:
        return expand(content, fetcher(reader, project_id, at=at), root=name, node=(name, version))
    except CompositionError as exc:
        raise Conflict(
            f"prompt '{name}' version {version} cannot be composed: {exc.message}",
            details={"prompt": name, "version": version, **exc.details()},
        ) from None


def _refused(exc: CompositionError) -> ValidationFailed:
    return ValidationFailed(exc.message, details=exc.details())


def check_document(
    *, session: Session, project_id: int, name: str, document: dict[str, Any]
) -> tuple[Include, ...]:
    """Refuse (422, naming the path) a new version whose references are missing or make a cycle.

    Any label of `name` may come to serve the new version, so a chain that reaches `name` through
    a label is a cycle already; through a version number it is not (an older version is fixed).
    """
    try:
        expansion = expand(document, fetcher(session, project_id), root=name, forbid_label_of=name)
    except CompositionError as exc:
        raise _refused(exc) from None
    _check_template(expansion, name)
    return expansion.includes


def _check_template(expansion: Expansion, name: str) -> None:
    if not expansion.includes:
        return
    try:
        content_variables(expansion.content)
    except InvalidTemplate as exc:
        where = f"content.{exc.field}" if exc.field else "content"
        raise ValidationFailed(
            f"{where}: the composed template of '{name}' does not parse (a tag inside a Jinja "
            f"expression?): {exc.message}",
            details={"field": where, "line": exc.line, "error": exc.message, "reason": "composed_template"},
        ) from None


def check_release(*, session: Session, prompt: Prompt, environment: str, version: PromptVersion) -> None:
    """Inside a deploy (release flushed): refuse one that would close a cycle or break a reference."""
    if not references(version.content):
        return
    try:
        expansion = expand(
            version.content,
            fetcher(session, prompt.project_id),
            root=f"{prompt.name}@{environment}",
            node=(prompt.name, version.number),
        )
    except CompositionError as exc:
        raise ValidationFailed(
            f"deploying version {version.number} of '{prompt.name}' to '{environment}' is refused: "
            f"{exc.message}",
            details={"environment": environment, "version": version.number, **exc.details()},
        ) from None
    _check_template(expansion, prompt.name)


def record_references(*, session: Session, version: PromptVersion, project_id: int) -> None:
    for ref in references(version.content):
        session.add(
            PromptReference(
                version_id=version.id,
                project_id=project_id,
                target_name=ref.name,
                label=ref.label,
                target_version=ref.version,
                field=ref.field,
            )
        )


@dataclass(frozen=True, slots=True)
class Dependant:
    """A version that includes a prompt, and the environments serving that version now."""

    prompt: str
    version: int
    label: str | None
    target_version: int | None
    environments: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "version": self.version,
            "label": self.label,
            "target_version": self.target_version,
            "environments": list(self.environments),
        }


def dependants(*, session: Session, project_id: int, name: str, live_only: bool = False) -> list[Dependant]:
    """Versions that include `name` directly (newest first), with where each is live."""
    rows = session.execute(
        select(
            Prompt.id,
            Prompt.name,
            PromptVersion.number,
            PromptReference.label,
            PromptReference.target_version,
        )
        .select_from(PromptReference)
        .join(PromptVersion, PromptVersion.id == PromptReference.version_id)
        .join(Prompt, Prompt.id == PromptVersion.prompt_id)
        .where(PromptReference.project_id == project_id, PromptReference.target_name == name)
        .order_by(Prompt.name, PromptVersion.number.desc())
    ).all()
    if not rows:
        return []
    live: dict[tuple[int, int], list[str]] = {}
    for prompt_id, number, env in session.execute(
        select(Release.prompt_id, Release.version_number, Environment.name)
        .join(Environment, Environment.id == Release.environment_id)
        .where(Release.prompt_id.in_({row[0] for row in rows}))
        .order_by(Environment.position, Environment.name)
    ):
        live.setdefault((prompt_id, number), []).append(env)
    found: dict[tuple[str, int, str | None, int | None], Dependant] = {}
    for prompt_id, prompt_name, number, label, target_version in rows:
        environments = tuple(live.get((prompt_id, number), ()))
        if live_only and not environments:
            continue
        found.setdefault(
            (prompt_name, number, label, target_version),
            Dependant(prompt_name, number, label, target_version, environments),
        )
    return list(found.values())


def affected_by(*, session: Session, project_id: int, name: str, environment: str) -> list[str]:
    """`prompt@environment` pairs whose served text follows `name@environment`, directly or nested."""
    seen: set[tuple[str, str]] = set()
    affected: list[str] = []
    frontier = [(name, environment)]
    while frontier and len(seen) < 1000:
        target, label = frontier.pop(0)
        for dependant in dependants(session=session, project_id=project_id, name=target, live_only=True):
            if dependant.label != label:
                continue
            for env in dependant.environments:
                key = (dependant.prompt, env)
                if key not in seen and key != (name, environment):
                    seen.add(key)
                    affected.append(f"{dependant.prompt}@{env}")
                    frontier.append(key)
    return affected


def includes_of(*, session: Session, project_id: int, version: PromptVersion) -> list[dict[str, Any]]:
    """A version's direct references and what each resolves to now (`error` when broken)."""
    found: list[dict[str, Any]] = []
    fetch = fetcher(session, project_id)
    for ref in references(version.content):
        item: dict[str, Any] = {
            "name": ref.name,
            "label": ref.label,
            "version": ref.version,
            "field": ref.field,
        }
        try:
            target = fetch(ref)
        except Unresolvable as exc:
            item.update(resolves_to=None, error=exc.message)
        else:
            item.update(resolves_to=target.version, error=None)
        found.append(item)
    return found


def describe_includes(includes: Iterable[Include]) -> list[dict[str, Any]]:
    return [include.as_dict() for include in includes]


__all__ = ["ARROW", "Dependant", "affected_by", "check_document", "check_release", "compose", "dependants"]
