"""Deployments, rollbacks, the deployment history and resolution (now and at a past instant).

A change of what an environment serves takes the prompt's row lock, appends one `Deployment`
row and bumps the `Release` revision in the same transaction, then emits `ReleaseChanged`, which the
runtime turns into cache invalidation after the commit. Holding the prompt lock makes the history
of one `(prompt, environment)` a clean chain: each row's `previous_version` is the version of the
row before it and revisions are 1, 2, 3, ... without gaps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Select, and_, bindparam, func, select
from sqlalchemy.orm import Session

from promptkeeper.access.service import Actor
from promptkeeper.audit.service import record
from promptkeeper.core.composition import Include
from promptkeeper.core.templates import content_variables
from promptkeeper.db.base import utcnow
from promptkeeper.db.engine import Database, emit
from promptkeeper.errors import Conflict, NotFound
from promptkeeper.prompts import composition
from promptkeeper.prompts.models import Deployment, Environment, Prompt, PromptVersion, Release
from promptkeeper.prompts.schemas import ResolveRead
from promptkeeper.prompts.service import get_environment, get_prompt, get_version
from promptkeeper.runtime.release_changes import ReleaseChanged
from promptkeeper.runtime.resolver import Dependency, Key, Payload

ACTIONS = (
    "deploy",
    "promote",
    "override",
    "rollback",
    "auto_rollback",
    "experiment_start",
    "experiment_update",
    "experiment_stop",
)
#: The audit action (and webhook event) of each history action.
AUDIT_ACTIONS = {
    "deploy": "deployment.created",
    "promote": "deployment.created",
    "override": "deployment.created",
    "rollback": "deployment.rollback",
    "auto_rollback": "deployment.rollback",
    "experiment_start": "experiment.started",
    "experiment_update": "experiment.updated",
    "experiment_stop": "experiment.stopped",
}

#: Called in the transaction of every release change: `(session, deployment, actor)`. Domains above
#: the registry register here (experiments end when a deploy or rollback replaces what they serve),
#: since this module must not import them.
CHANGE_HOOKS: list[Callable[[Session, Deployment, Actor], None]] = []


@dataclass(frozen=True, slots=True)
class Resolved:
    """What an environment serves: the payload of `/v1/resolve`."""

    project_id: int
    name: str
    environment: str
    version: int
    revision: int
    content: dict[str, Any]
    variables: list[str]
    placeholders: list[str]
    deployed_at: datetime
    includes: tuple[Include, ...] = ()
    raw: bool = False


def current_release(*, session: Session, prompt: Prompt, environment: Environment) -> Release | None:
    return session.scalar(
        select(Release).where(Release.prompt_id == prompt.id, Release.environment_id == environment.id)
    )


def change_release(
    *,
    session: Session,
    prompt: Prompt,
    environment: Environment,
    version: int,
    action: str,
    actor: Actor,
    reason: str,
    release: Release | None,
    experiment_id: int | None = None,
) -> Deployment:
    """The mechanics of every change: release row, history row, audit entry, invalidation event.

    The caller holds the prompt's row lock and has checked that the change is allowed.
    """
    now = utcnow()
    if release is not None and release.updated_at > now:  # keep "what ran at T" monotonic across clocks
        now = release.updated_at
    previous = release.version_number if release is not None else None
    revision = (release.revision if release is not None else 0) + 1
    if release is None:
        release = Release(prompt_id=prompt.id, environment_id=environment.id)
        session.add(release)
    release.version_number = version
    release.previous_version = previous
    release.revision = revision
    release.updated_at = now
    release.updated_by = actor.name
    deployment = Deployment(
        prompt_id=prompt.id,
        environment_id=environment.id,
        version_number=version,
        previous_version=previous,
        action=action,
        actor=actor.name,
        reason=reason,
        revision=revision,
        at=now,
        experiment_id=experiment_id,
    )
    session.add(deployment)
    session.flush()
    composition.check_release(
        session=session,
        prompt=prompt,
        environment=environment.name,
        version=get_version(session=session, prompt=prompt, number=version),
    )
    dependants = composition.affected_by(
        session=session, project_id=prompt.project_id, name=prompt.name, environment=environment.name
    )
    for hook in CHANGE_HOOKS:
        hook(session, deployment, actor)
    record(
        session=session,
        actor=actor,
        action=AUDIT_ACTIONS[action],
        target_type="deployment",
        target=f"{prompt.name}@{environment.name}",
        prompt=prompt.name,
        environment=environment.name,
        before={"version": previous},
        after={
            "version": version,
            "action": action,
            "revision": revision,
            "reason": reason,
            **({"experiment_id": experiment_id} if experiment_id is not None else {}),
            **({"dependants": dependants} if dependants else {}),
        },
        severity="warning" if action in ("override", "auto_rollback") else "info",
    )
    emit(
        session,
        ReleaseChanged(
            project_id=prompt.project_id,
            prompt=prompt.name,
            environment=environment.name,
            revision=revision,
            version=version,
            seq=deployment.id,
            at=_epoch(deployment.at),
        ),
    )
    return deployment


def deploy(
    *,
    session: Session,
    project_id: int,
    name: str,
    environment: str,
    version: int,
    actor: Actor,
    reason: str = "",
    action: str = "deploy",
    expected_revision: int | None = None,
) -> Deployment:
    """Make `environment` serve `version` of prompt `name`."""
    prompt = get_prompt(session=session, project_id=project_id, name=name, lock=True)
    env = get_environment(session=session, project_id=project_id, name=environment)
    get_version(session=session, prompt=prompt, number=version)
    release = current_release(session=session, prompt=prompt, environment=env)
    current_revision = release.revision if release is not None else 0
    if expected_revision is not None and expected_revision != current_revision:
        raise Conflict(
            f"'{environment}' of '{name}' is at revision {current_revision}, not {expected_revision}",
            details={"revision": current_revision, "expected_revision": expected_revision},
        )
    if release is not None and release.version_number == version:
        raise Conflict(
            f"version {version} of '{name}' is already live in '{environment}'",
            details={"environment": environment, "version": version, "revision": release.revision},
        )
    return change_release(
        session=session,
        prompt=prompt,
        environment=env,
        version=version,
        action=action,
        actor=actor,
        reason=reason,
        release=release,
    )


def rollback(
    *,
    session: Session,
    project_id: int,
    name: str,
    environment: str,
    version: int | None,
    actor: Actor,
    reason: str = "",
    action: str = "rollback",
) -> Deployment:
    """Go back to the version live before the current one, or to a named earlier version."""
    prompt = get_prompt(session=session, project_id=project_id, name=name, lock=True)
    env = get_environment(session=session, project_id=project_id, name=environment)
    release = current_release(session=session, prompt=prompt, environment=env)
    if release is None:
        raise Conflict(
            f"nothing is deployed to '{environment}' for '{name}': there is nothing to roll back",
            details={"environment": environment},
        )
    if version is None:
        if release.previous_version is None:
            raise Conflict(
                f"'{environment}' of '{name}' has had a single deployment: name a version to roll back to",
                details={"environment": environment, "version": release.version_number},
            )
        version = release.previous_version
    else:
        get_version(session=session, prompt=prompt, number=version)
        if version == release.version_number:
            raise Conflict(
                f"version {version} of '{name}' is already live in '{environment}'",
                details={"environment": environment, "version": version},
            )
    return change_release(
        session=session,
        prompt=prompt,
        environment=env,
        version=version,
        action=action,
        actor=actor,
        reason=reason,
        release=release,
    )


def list_deployments(
    *,
    session: Session,
    project_id: int,
    name: str,
    environment: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[tuple[Deployment, str]], int]:
    """History rows (with their environment's name), newest first, and how many there are in all."""
    prompt = get_prompt(session=session, project_id=project_id, name=name)
    query = (
        select(Deployment, Environment.name)
        .join(Environment, Environment.id == Deployment.environment_id)
        .where(Deployment.prompt_id == prompt.id)
    )
    if environment is not None:
        env = get_environment(session=session, project_id=project_id, name=environment)
        query = query.where(Deployment.environment_id == env.id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(
        query.order_by(Deployment.at.desc(), Deployment.id.desc()).limit(limit).offset(offset)
    )
    return [(row[0], row[1]) for row in rows], total


def _explain_missing(
    *, session: Session, project_id: int, name: str, environment: str, at: datetime | None = None
) -> NotFound:
    get_prompt(session=session, project_id=project_id, name=name)
    get_environment(session=session, project_id=project_id, name=environment)
    when = f" at {at.isoformat()}" if at is not None else ""
    return NotFound(
        f"prompt '{name}' has no version deployed to '{environment}'{when}",
        details={"prompt": name, "environment": environment, "reason": "not_deployed"},
    )


def _serving(source: type[Release] | type[Deployment], when: Any) -> Select[Any]:
    """The version a release (now) or a history row (then) points at, with its content."""
    return (
        select(
            source.version_number,
            source.revision,
            when.label("updated_at"),
            PromptVersion.content,
            PromptVersion.variables,
            PromptVersion.placeholders,
        )
        .select_from(Prompt)
        .join(source, source.prompt_id == Prompt.id)
        .join(Environment, Environment.id == source.environment_id)
        .join(
            PromptVersion,
            and_(PromptVersion.prompt_id == Prompt.id, PromptVersion.number == source.version_number),
        )
        .where(
            Prompt.project_id == bindparam("project_id"),
            Prompt.name == bindparam("name"),
            Environment.name == bindparam("environment"),
        )
    )


_RESOLVE = _serving(Release, Release.updated_at)
_RESOLVE_AT = (
    _serving(Deployment, Deployment.at)
    .where(Deployment.at <= bindparam("at"))
    .order_by(Deployment.revision.desc())
    .limit(1)
)


def _resolved(project_id: int, name: str, environment: str, row: Any) -> Resolved:
    return Resolved(
        project_id=project_id,
        name=name,
        environment=environment,
        version=row.version_number,
        revision=row.revision,
        content=row.content,
        variables=row.variables,
        placeholders=row.placeholders,
        deployed_at=row.updated_at,
    )


def composed(reader: Session | Connection, resolved: Resolved, *, at: datetime | None = None) -> Resolved:
    """`resolved` with its references expanded (as at `at` when given); unchanged without any."""
    expansion = composition.compose(
        reader,
        project_id=resolved.project_id,
        name=resolved.name,
        version=resolved.version,
        content=resolved.content,
        at=at,
    )
    if not expansion.includes:
        return resolved
    return replace(
        resolved,
        content=expansion.content,
        variables=content_variables(expansion.content),
        includes=expansion.includes,
    )


def resolve(*, session: Session, project_id: int, name: str, environment: str, raw: bool = False) -> Resolved:
    """What `environment` serves now: one indexed query, and one per include (`raw`: none)."""
    params = {"project_id": project_id, "name": name, "environment": environment}
    row = session.execute(_RESOLVE, params).first()
    if row is None:
        raise _explain_missing(session=session, project_id=project_id, name=name, environment=environment)
    resolved = _resolved(project_id, name, environment, row)
    return replace(resolved, raw=True) if raw else composed(session, resolved)


def resolve_at(
    *, session: Session, project_id: int, name: str, environment: str, at: datetime, raw: bool = False
) -> Resolved:
    """What `environment` served at instant `at`, from the deployment history (no cache); each
    include as its label was at `at` too."""
    params = {"project_id": project_id, "name": name, "environment": environment, "at": at}
    row = session.execute(_RESOLVE_AT, params).first()
    if row is None:
        raise _explain_missing(
            session=session, project_id=project_id, name=name, environment=environment, at=at
        )
    resolved = _resolved(project_id, name, environment, row)
    return replace(resolved, raw=True) if raw else composed(session, resolved, at=at)


def payload_of(
    resolved: Resolved,
    *,
    at: datetime | None = None,
    experiment: dict[str, Any] | None = None,
    assignment: dict[str, Any] | None = None,
) -> Payload:
    """The `/v1/resolve` body for a resolution, serialized once and cached as bytes.

    `experiment` and `assignment` appear in the body only when given (experiments, `experiments.serving`).
    """
    exclude = {
        name for name, value in (("experiment", experiment), ("assignment", assignment)) if value is None
    }
    if not resolved.includes:
        exclude.add("includes")
    if not resolved.raw:
        exclude.add("raw")
    body = (
        ResolveRead(
            at=at,
            name=resolved.name,
            version=resolved.version,
            environment=resolved.environment,
            content=resolved.content,
            variables=resolved.variables,
            placeholders=resolved.placeholders,
            revision=resolved.revision,
            deployed_at=resolved.deployed_at,
            experiment=experiment,
            assignment=assignment,
            includes=[include.as_dict() for include in resolved.includes],
            raw=resolved.raw,
        )
        .model_dump_json(exclude=exclude)
        .encode()
    )
    # The body holds every include's version and revision, so the ETag changes with any of them.
    etag = '"' + hashlib.sha256(body).hexdigest()[:24] + '"'
    return Payload(
        body=body,
        etag=etag,
        revision=resolved.revision,
        version=resolved.version,
        content=resolved.content,
        depends=depends_of(resolved),
    )


def depends_of(resolved: Resolved) -> tuple[Dependency, ...]:
    """The releases a composed payload follows (label includes; a version never changes)."""
    return tuple(
        Dependency(name=i.name, environment=i.label, revision=i.revision or 0)
        for i in resolved.includes
        if i.label is not None
    )


def load_resolved(database: Database, key: Key, connection: Connection | None = None) -> Resolved:
    """The resolver's read: a single statement outside a transaction on the happy path (on the
    caller's read connection when given, so a loader's statements share one checkout)."""
    project_id, name, environment = key
    params = {"project_id": project_id, "name": name, "environment": environment}
    if connection is None:
        with database.read_connection() as own:
            return load_resolved(database, key, own)
    row = connection.execute(_RESOLVE, params).first()
    if row is None:
        with database.session() as session:
            raise _explain_missing(session=session, project_id=project_id, name=name, environment=environment)
    return composed(connection, _resolved(project_id, name, environment, row))


def load_payload(database: Database, key: Key) -> Payload:
    """The resolver's loader without experiments (the registry alone)."""
    return payload_of(load_resolved(database, key))


# --- change feeds for the runtime (periodic check, SSE resume) ------------------------------------

_CHANGES = (
    select(
        Prompt.project_id,
        Prompt.name,
        Environment.name.label("environment"),
        Deployment.revision,
        Deployment.version_number,
        Deployment.id,
        Deployment.at,
    )
    .select_from(Deployment)
    .join(Prompt, Prompt.id == Deployment.prompt_id)
    .join(Environment, Environment.id == Deployment.environment_id)
)


def _epoch(at: datetime) -> float:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp()


def _changes(rows: Any) -> list[ReleaseChanged]:
    return [
        ReleaseChanged(
            project_id=row[0],
            prompt=row[1],
            environment=row[2],
            revision=row[3],
            version=row[4],
            seq=row[5],
            at=_epoch(row[6]),
        )
        for row in rows
    ]


def changes_since(*, session: Session, since: datetime) -> list[ReleaseChanged]:
    """Every release change recorded at or after `since` (all projects), oldest first."""
    rows = session.execute(_CHANGES.where(Deployment.at >= since).order_by(Deployment.id))
    return _changes(rows)


def changes_after(
    *, session: Session, project_id: int, seq: int, environment: str | None = None, limit: int = 10_000
) -> list[ReleaseChanged]:
    """A project's changes after position `seq` (an SSE `Last-Event-ID`), oldest first."""
    query = _CHANGES.where(Prompt.project_id == project_id, Deployment.id > seq)
    if environment is not None:
        query = query.where(Environment.name == environment)
    return _changes(session.execute(query.order_by(Deployment.id).limit(limit)))


def latest_seq(*, session: Session, project_id: int) -> int:
    """The position of the newest change of a project (0 when there is none)."""
    value = session.scalar(
        select(func.max(Deployment.id))
        .join(Prompt, Prompt.id == Deployment.prompt_id)
        .where(Prompt.project_id == project_id)
    )
    return int(value or 0)


def current_revisions(*, session: Session) -> list[tuple[int, str, str, int]]:
    """`(project_id, prompt, environment, revision)` of every release: the cache floors at start-up."""
    rows = session.execute(
        select(Prompt.project_id, Prompt.name, Environment.name, Release.revision)
        .select_from(Release)
        .join(Prompt, Prompt.id == Release.prompt_id)
        .join(Environment, Environment.id == Release.environment_id)
    )
    return [(row[0], row[1], row[2], row[3]) for row in rows]


def load_pinned(database: Database, project_id: int, name: str, number: int, raw: bool = False) -> Payload:
    """A specific version as a resolve payload (`environment` and `revision` null): immutable,
    unless it includes a prompt by label (`depends` then says which)."""
    with database.session() as session:
        prompt = get_prompt(session=session, project_id=project_id, name=name)
        version = get_version(session=session, prompt=prompt, number=number)
        content, variables = version.content, version.variables
        includes: tuple[Include, ...] = ()
        if not raw:
            expansion = composition.compose(
                session, project_id=project_id, name=name, version=version.number, content=version.content
            )
            if expansion.includes:
                content, includes = expansion.content, expansion.includes
                variables = content_variables(content)
        exclude = {"experiment", "assignment"}
        if not includes:
            exclude.add("includes")
        if not raw:
            exclude.add("raw")
        body = (
            ResolveRead(
                name=name,
                version=version.number,
                environment=None,
                content=content,
                variables=variables,
                placeholders=version.placeholders,
                revision=None,
                deployed_at=None,
                includes=[include.as_dict() for include in includes],
                raw=raw,
            )
            .model_dump_json(exclude=exclude)
            .encode()
        )
    etag = '"' + hashlib.sha256(body).hexdigest()[:24] + '"'
    depends = tuple(
        Dependency(name=i.name, environment=i.label, revision=i.revision or 0) for i in includes if i.label
    )
    return Payload(body=body, etag=etag, revision=0, version=version.number, content=content, depends=depends)
