"""Prompts, versions and environments.

Every function takes an explicit session and leaves the commit to the caller. Functions that
allocate version numbers lock the prompt row first (`get_prompt(..., lock=True)`): on PostgreSQL a
`SELECT ... FOR UPDATE`, on SQLite the write transaction's `BEGIN IMMEDIATE` already serialises.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Select, exists, func, literal_column, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from promptkeeper.access.service import Actor
from promptkeeper.audit.service import record
from promptkeeper.core.composition import Include
from promptkeeper.core.content import (
    ChatContent,
    PromptContent,
    TextContent,
    content_document,
    content_hash,
)
from promptkeeper.core.diff import ContentDiff, diff_contents
from promptkeeper.core.templates import InvalidTemplate, content_placeholders, content_variables
from promptkeeper.db.base import utcnow
from promptkeeper.errors import Conflict, NotFound, ValidationFailed, field_errors
from promptkeeper.prompts import composition
from promptkeeper.prompts.models import Deployment, Environment, Prompt, PromptVersion, Release
from promptkeeper.prompts.schemas import (
    EnvironmentCreate,
    EnvironmentUpdate,
    PromptCreate,
    PromptUpdate,
    VersionStatus,
)

DEFAULT_ENVIRONMENTS: tuple[tuple[str, str, bool], ...] = (
    ("development", "Work in progress; deploy freely.", False),
    ("staging", "Pre-production checks.", False),
    ("production", "What users get.", True),
)

_CONTENT_ADAPTER: TypeAdapter[TextContent | ChatContent] = TypeAdapter(PromptContent)

# --- environments -------------------------------------------------------------------------------


def create_default_environments(*, session: Session, project_id: int) -> list[Environment]:
    environments = [
        Environment(project_id=project_id, name=name, description=text, production=prod, position=index)
        for index, (name, text, prod) in enumerate(DEFAULT_ENVIRONMENTS)
    ]
    session.add_all(environments)
    session.flush()
    return environments


def list_environments(*, session: Session, project_id: int) -> list[Environment]:
    return list(
        session.scalars(
            select(Environment)
            .where(Environment.project_id == project_id)
            .order_by(Environment.position, Environment.id)
        )
    )


def get_environment(*, session: Session, project_id: int, name: str) -> Environment:
    environment = session.scalar(
        select(Environment).where(Environment.project_id == project_id, Environment.name == name)
    )
    if environment is None:
        raise NotFound(f"environment '{name}' not found", details={"environment": name})
    return environment


def create_environment(*, session: Session, actor: Actor, data: EnvironmentCreate) -> Environment:
    project_id = actor.project_id
    taken = session.scalar(
        select(Environment.id).where(Environment.project_id == project_id, Environment.name == data.name)
    )
    if taken is not None:
        raise Conflict(f"environment '{data.name}' already exists", details={"environment": data.name})
    position = session.scalar(
        select(func.coalesce(func.max(Environment.position), -1) + 1).where(
            Environment.project_id == project_id
        )
    )
    environment = Environment(
        project_id=project_id,
        name=data.name,
        description=data.description,
        production=data.production,
        position=position or 0,
    )
    session.add(environment)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict(
            f"environment '{data.name}' already exists", details={"environment": data.name}
        ) from None
    record(
        session=session,
        actor=actor,
        action="environment.created",
        target_type="environment",
        target=environment.name,
        environment=environment.name,
        after=environment_policy(environment),
    )
    return environment


def environment_policy(environment: Environment) -> dict[str, Any]:
    """The settings of an environment that the audit log records before and after a change."""
    return {
        "description": environment.description,
        "production": environment.production,
        "protected": environment.protected,
        "required_approvals": environment.required_approvals,
        "allow_override": environment.allow_override,
        "requires_environment": environment.requires_environment,
    }


def update_environment(*, session: Session, actor: Actor, name: str, data: EnvironmentUpdate) -> Environment:
    """Change an environment's description or policy (protection, approvals, override, promotion)."""
    environment = get_environment(session=session, project_id=actor.project_id, name=name)
    changes = data.model_dump(exclude_unset=True)
    required = changes.get("requires_environment")
    if required is not None:
        if required == name:
            raise ValidationFailed(
                "body.requires_environment: an environment cannot require itself",
                details={"field": "body.requires_environment"},
            )
        get_environment(session=session, project_id=actor.project_id, name=required)
    before = environment_policy(environment)
    for field, value in changes.items():
        setattr(environment, field, value)
    if environment.protected and environment.required_approvals < 1:
        environment.required_approvals = 1  # protected means reviewed: at least one approval
    session.flush()
    after = environment_policy(environment)
    if after != before:
        record(
            session=session,
            actor=actor,
            action="environment.updated",
            target_type="environment",
            target=environment.name,
            environment=environment.name,
            before={k: v for k, v in before.items() if after[k] != v},
            after={k: v for k, v in after.items() if before[k] != v},
            severity="warning" if before["protected"] and not after["protected"] else "info",
        )
    return environment


# --- prompts --------------------------------------------------------------------------------------


def get_prompt(*, session: Session, project_id: int, name: str, lock: bool = False) -> Prompt:
    """The prompt called `name`; with `lock=True` its row is locked until the transaction ends."""
    query = select(Prompt).where(Prompt.project_id == project_id, Prompt.name == name)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    prompt = session.scalar(query)
    if prompt is None:
        spelled = spelling_of(session=session, project_id=project_id, name=name)
        hint = f"; did you mean '{spelled}'? (names are case-sensitive)" if spelled else ""
        details = {"prompt": name, **({"existing": spelled} if spelled else {})}
        raise NotFound(f"prompt '{name}' not found{hint}", details=details)
    return prompt


def spelling_of(*, session: Session, project_id: int, name: str) -> str | None:
    """The name of the prompt that `name` names regardless of case, as it is stored (or None).

    Names are unique per project regardless of case, but lookups are exact: a cached resolution
    is keyed and invalidated by the stored name, so a second spelling would be a second, stale key.
    """
    return session.scalar(_spelling_query(project_id, name))


def _spelling_query(project_id: int, name: str) -> Select[str]:
    return select(Prompt.name).where(Prompt.project_id == project_id, func.lower(Prompt.name) == name.lower())


def _name_taken(name: str, existing: str) -> Conflict:
    if existing == name:
        return Conflict(f"prompt '{name}' already exists", details={"prompt": name})
    return Conflict(
        f"prompt '{name}' cannot be created: the prompt '{existing}' exists, and names are unique "
        "regardless of case",
        details={"prompt": name, "existing": existing},
    )


def _tag_filter(session: Session, tag: str) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return type_coerce(Prompt.tags, JSONB).contains([tag])  # JSONB @>, served by a GIN index if added
    each = func.json_each(Prompt.tags).table_valued("value")
    return exists(select(literal_column("1")).select_from(each).where(each.c.value == tag))


def _prompt_query(project_id: int, tag: str | None, search: str | None, session: Session) -> Select[Any]:
    query = select(Prompt).where(Prompt.project_id == project_id)
    if tag:
        query = query.where(_tag_filter(session, tag))
    if search:
        needle = search.lower()
        query = query.where(
            func.lower(Prompt.name).contains(needle, autoescape=True)
            | func.lower(Prompt.description).contains(needle, autoescape=True)
        )
    return query


def list_prompts(
    *,
    session: Session,
    project_id: int,
    tag: str | None = None,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Prompt], int]:
    query = _prompt_query(project_id, tag, search, session)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = session.scalars(query.order_by(Prompt.name).limit(limit).offset(offset))
    return list(items), total


def create_prompt(*, session: Session, actor: Actor, data: PromptCreate) -> tuple[Prompt, PromptVersion]:
    project_id, author = actor.project_id, actor.name
    existing = spelling_of(session=session, project_id=project_id, name=data.name)
    if existing is not None:
        raise _name_taken(data.name, existing)
    document, variables, placeholders = checked_content(data.content)
    includes = composition.check_document(
        session=session, project_id=project_id, name=data.name, document=document
    )
    now = utcnow()
    prompt = Prompt(
        project_id=project_id,
        name=data.name,
        description=data.description,
        owner=data.owner,
        tags=_unique(data.tags),
        target_model=data.target_model,
        head_version=1,
        created_by=author,
        created_at=now,
        updated_at=now,
    )
    session.add(prompt)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # a concurrent create of the same name (in any case) won the race
        # The failed flush leaves this session unusable until its caller rolls back: the winner's
        # spelling is read on a connection of its own (the winner has committed: the index waited).
        with session.get_bind().engine.connect() as connection:
            existing = connection.scalar(_spelling_query(project_id, data.name))
        raise _name_taken(data.name, existing or data.name) from None
    version = PromptVersion(
        prompt_id=prompt.id,
        number=1,
        content=document,
        variables=variables,
        placeholders=placeholders,
        content_hash=content_hash(document),
        parent=None,
        author=author,
        author_identity=actor.identity,
        message=data.message,
        created_at=now,
    )
    session.add(version)
    session.flush()
    record(
        session=session,
        actor=actor,
        action="prompt.created",
        target_type="prompt",
        target=prompt.name,
        prompt=prompt.name,
        after={"description": prompt.description, "owner": prompt.owner, "tags": prompt.tags},
    )
    _record_version(session, actor, prompt, version, includes)
    return prompt, version


def _record_version(
    session: Session, actor: Actor, prompt: Prompt, version: PromptVersion, includes: tuple[Include, ...]
) -> None:
    composition.record_references(session=session, version=version, project_id=prompt.project_id)
    record(
        session=session,
        actor=actor,
        action="version.created",
        target_type="version",
        target=f"{prompt.name}@{version.number}",
        prompt=prompt.name,
        after={
            "version": version.number,
            "parent": version.parent,
            "message": version.message,
            "content_hash": version.content_hash,
            **({"includes": [i.as_dict() for i in includes]} if includes else {}),
        },
    )


def update_prompt(*, session: Session, actor: Actor, prompt: Prompt, data: PromptUpdate) -> Prompt:
    changes = data.model_dump(exclude_unset=True)
    if "tags" in changes:
        changes["tags"] = _unique(changes["tags"] or [])
    before = {field: getattr(prompt, field) for field in changes}
    for field, value in changes.items():
        setattr(prompt, field, value)
    if changes:
        prompt.updated_at = utcnow()
    session.flush()
    changed = {field: value for field, value in changes.items() if before[field] != value}
    if changed:
        record(
            session=session,
            actor=actor,
            action="prompt.updated",
            target_type="prompt",
            target=prompt.name,
            prompt=prompt.name,
            before={field: before[field] for field in changed},
            after=changed,
        )
    return prompt


def _unique(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))


# --- versions -------------------------------------------------------------------------------------


def checked_content(content: TextContent | ChatContent) -> tuple[dict[str, Any], list[str], list[str]]:
    """The stored document plus its variables; 422 naming the field and line of a broken template."""
    document = content_document(content)
    try:
        variables = content_variables(document)
    except InvalidTemplate as exc:
        where = f"content.{exc.field}" if exc.field else "content"
        raise ValidationFailed(
            f"{where}: template error at {exc.message}",
            details={"field": where, "line": exc.line, "error": exc.message},
        ) from None
    return document, variables, content_placeholders(document)


def parse_content(raw: dict[str, Any]) -> TextContent | ChatContent:
    """Validate a raw content document (for callers that did not come through a request body)."""
    try:
        return _CONTENT_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        message, errors = field_errors(list(exc.errors()), prefix=("content",))
        raise ValidationFailed(f"invalid prompt content: {message}", details={"errors": errors}) from None


def create_version(
    *,
    session: Session,
    prompt: Prompt,
    content: TextContent | ChatContent,
    actor: Actor,
    message: str = "",
    base_version: int | None = None,
    allow_duplicate: bool = False,
) -> PromptVersion:
    """Append version `head + 1`. `prompt` must have been loaded with `lock=True`."""
    if base_version is not None and base_version != prompt.head_version:
        raise Conflict(
            f"prompt '{prompt.name}' is at version {prompt.head_version}, not {base_version}: "
            "merge your change into the new head and retry",
            details={"head_version": prompt.head_version, "base_version": base_version},
        )
    document, variables, placeholders = checked_content(content)
    includes = composition.check_document(
        session=session, project_id=prompt.project_id, name=prompt.name, document=document
    )
    digest = content_hash(document)
    head = get_version(session=session, prompt=prompt, number=prompt.head_version)
    if head.content_hash == digest and not allow_duplicate:
        raise Conflict(
            f"content is identical to version {head.number}; pass allow_duplicate to create it anyway",
            details={"head_version": head.number, "content_hash": digest},
        )
    now = utcnow()
    version = PromptVersion(
        prompt_id=prompt.id,
        number=prompt.head_version + 1,
        content=document,
        variables=variables,
        placeholders=placeholders,
        content_hash=digest,
        parent=prompt.head_version,
        author=actor.name,
        author_identity=actor.identity,
        message=message,
        created_at=now,
    )
    session.add(version)
    prompt.head_version = version.number
    prompt.updated_at = now
    session.flush()
    _record_version(session, actor, prompt, version, includes)
    return version


def get_version(*, session: Session, prompt: Prompt, number: int) -> PromptVersion:
    version = session.scalar(
        select(PromptVersion).where(PromptVersion.prompt_id == prompt.id, PromptVersion.number == number)
    )
    if version is None:
        raise NotFound(
            f"prompt '{prompt.name}' has no version {number} (latest is {prompt.head_version})",
            details={"prompt": prompt.name, "version": number, "latest_version": prompt.head_version},
        )
    return version


def list_versions(
    *, session: Session, prompt: Prompt, limit: int = 50, offset: int = 0
) -> tuple[list[PromptVersion], int]:
    items = session.scalars(
        select(PromptVersion)
        .where(PromptVersion.prompt_id == prompt.id)
        .order_by(PromptVersion.number.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(items), prompt.head_version


def diff_versions(*, session: Session, prompt: Prompt, from_number: int, to_number: int) -> ContentDiff:
    before = get_version(session=session, prompt=prompt, number=from_number)
    after = get_version(session=session, prompt=prompt, number=to_number)
    return diff_contents(
        before.content, after.content, from_label=f"v{from_number}", to_label=f"v{to_number}"
    )


# --- derived version status -----------------------------------------------------------------------

StatusOf = Callable[[int], tuple[VersionStatus, list[str]]]


def version_status(*, session: Session, prompt: Prompt) -> StatusOf:
    """A function from version number to `(status, environments serving it)`.

    Status is derived from the deployment history (DESIGN.md): live in a production environment →
    production; live elsewhere → testing; deployed before but no longer → archived; never → draft.
    """
    live: dict[int, list[tuple[str, bool]]] = {}
    rows = session.execute(
        select(Release.version_number, Environment.name, Environment.production)
        .join(Environment, Environment.id == Release.environment_id)
        .where(Release.prompt_id == prompt.id)
        .order_by(Environment.position, Environment.id)
    )
    for number, env_name, production in rows:
        live.setdefault(number, []).append((env_name, production))
    ever = set(
        session.scalars(select(Deployment.version_number).where(Deployment.prompt_id == prompt.id).distinct())
    )

    def status_of(number: int) -> tuple[VersionStatus, list[str]]:
        serving = live.get(number, [])
        names = [name for name, _ in serving]
        if any(production for _, production in serving):
            return "production", names
        if serving:
            return "testing", names
        return ("archived" if number in ever else "draft"), names

    return status_of


def releases_by_environment(
    *, session: Session, project_id: int, prompt_ids: Sequence[int]
) -> dict[int, dict[str, Release | None]]:
    """For each prompt, every environment of the project mapped to its current release (or None)."""
    environments = list_environments(session=session, project_id=project_id)
    out: dict[int, dict[str, Release | None]] = {
        pid: {env.name: None for env in environments} for pid in prompt_ids
    }
    if not prompt_ids:
        return out
    names = {env.id: env.name for env in environments}
    releases = session.scalars(select(Release).where(Release.prompt_id.in_(prompt_ids)))
    for release in releases:
        out[release.prompt_id][names[release.environment_id]] = release
    return out
