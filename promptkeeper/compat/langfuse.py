"""Langfuse-compatible prompt API: existing Langfuse SDK code switches by changing its host.

Serves Langfuse's public prompt routes (`/api/public/v2/prompts...`) with its request and
response shapes and its error shape (`{"error": <name>, "message": ...}`, set in `api.error_responses`),
mapped onto PromptKeeper:

- A label is an environment: the label sits on the version the environment serves. `latest` is
  the head version. `production` is the default of a fetch without `version` or `label`.
- Moving a label is a deployment through `deployments.policy.deploy`: the environment's
  promotion path, evaluation gate and reviews apply, the history and audit log record it, and a
  refused move answers 4xx with PromptKeeper's message. A label that names no environment is
  refused (environments are created by admins: `POST /v1/environments`).
- Creating a prompt version is `prompts.service.create_version` (identical content allowed, as
  Langfuse does); `tags` replace the prompt's tags when given; `config` is the content's `config`.
- Versions are never deleted (the history must answer what ran when): `DELETE` answers 403.
- Refusals answer what Langfuse answers, never 409 (which its clients retry twice): an invalid
  change (a version changing the prompt's type) is 400, a policy refusal (reviews, gates, the
  promotion path, a protected environment) is 403.
- Names travel escaped (`team%2Fx`) or not (`team/x`, as the 2.x SDK sends them): the routes are
  catch-alls, as Langfuse's are. `GET /api/public/projects` is the key's project (`auth_check()`).
- Auth: HTTP Basic with the public key (the key's `pk_<prefix>` part) as user name and the whole
  PromptKeeper API key as password, so the key's role applies (unlike Langfuse, protected
  environments hold for API clients too). Bearer works as well.
- While an experiment runs on the label's environment, a fetch gets the control, or the variant
  of the unit named in the `X-PromptKeeper-Unit` header.

Routes read and write through the same services as `/v1`, so there is no second code path.
"""

from __future__ import annotations

import base64
import binascii
import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from promptkeeper.access.models import Project
from promptkeeper.access.service import Actor, Principal, key_prefix
from promptkeeper.api.context import AppContext
from promptkeeper.api.deps import (
    EDIT_ROLES,
    READ_ROLES,
    RESOLVE_ROLES,
    ContextDep,
    PromptNameDep,
    ReadDB,
    WriteDB,
    check_role,
    client_address,
    request_id,
)
from promptkeeper.api.error_responses import LANGFUSE_ERROR_RESPONSES
from promptkeeper.api.routes.runtime import variant_for
from promptkeeper.compat.langfuse_filters import parse_filter, simple_filter
from promptkeeper.core.fields import MAX_INT, check_prompt_name
from promptkeeper.deployments import policy as deployments
from promptkeeper.errors import (
    Conflict,
    NotFound,
    PermissionDenied,
    Unauthorized,
    ValidationFailed,
    field_errors,
)
from promptkeeper.prompts import composition, service
from promptkeeper.prompts.models import Environment, Prompt, PromptVersion, Release
from promptkeeper.prompts.schemas import PromptCreate, PromptUpdate

router = APIRouter(prefix="/api/public", tags=["langfuse-compatible"], responses=LANGFUSE_ERROR_RESPONSES)

LATEST = "latest"
DEFAULT_LABEL = "production"
UNIT_HEADER = "X-PromptKeeper-Unit"


# -- auth ------------------------------------------------------------------------------------------


def public_key(secret: str) -> str:
    """The public half of an API key for Langfuse clients: `pk_<prefix>` of `pk_<prefix>_<secret>`
    (for an operator-chosen admin key: `pk_` and its lookup prefix)."""
    parts = secret.split("_", 2)
    if len(parts) == 3 and parts[0] == "pk":
        return f"pk_{parts[1]}"
    return f"pk_{key_prefix(secret)}"


def _credentials(authorization: str | None) -> tuple[str | None, str]:
    if not authorization:
        raise Unauthorized(
            "missing credentials: send HTTP Basic auth (public key : PromptKeeper API key) or 'Bearer <key>'"
        )
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return None, value.strip()
    if scheme.lower() != "basic":
        raise Unauthorized("malformed Authorization header: expected Basic or Bearer")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized(
            "malformed Basic credentials: expected base64 of 'public key:secret key'"
        ) from None
    public, separator, secret = decoded.partition(":")
    if not separator or not secret:
        raise Unauthorized("malformed Basic credentials: expected 'public key:secret key'")
    return public, secret


async def _principal(
    context: ContextDep,
    request: Request,
    authorization: Annotated[str | None, Header(description="Basic <public:secret> or Bearer <key>")] = None,
) -> Principal:
    public, secret = _credentials(authorization)
    principal = await context.auth(secret, client_address(request))
    if public is not None and public != public_key(secret):
        raise Unauthorized(
            "the public key does not belong to this secret key (expected its 'pk_<prefix>' part)"
        )
    return principal


def _require(roles: frozenset[Any], action: str) -> Any:
    async def check(
        principal: Annotated[Principal, Depends(_principal)], request: Request, response: Response
    ) -> Actor:
        check_role(principal, roles, action)
        return principal.actor(request_id(request, response))

    return Depends(check)


Fetcher = Annotated[Actor, _require(RESOLVE_ROLES, "fetch prompts")]
Lister = Annotated[Actor, _require(READ_ROLES, "list prompts")]
Writer = Annotated[Actor, _require(EDIT_ROLES, "create prompt versions or move labels")]


# -- shapes ----------------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class LangfuseCreate(_Body):
    name: str = Field(min_length=1, max_length=255)
    type: Literal["text", "chat"] | None = None
    prompt: str | list[dict[str, Any]]
    config: dict[str, Any] | None = None
    labels: list[str] | None = None
    tags: list[str] | None = None
    commit_message: str | None = Field(default=None, alias="commitMessage", max_length=10_000)


class LangfuseLabels(_Body):
    new_labels: list[str] = Field(alias="newLabels")


class LangfusePrompt(BaseModel):
    """Langfuse's `Prompt` (text or chat), plus the server fields its API returns."""

    id: str
    name: str
    version: int
    type: Literal["text", "chat"]
    prompt: str | list[dict[str, Any]]
    config: dict[str, Any]
    labels: list[str]
    tags: list[str]
    commitMessage: str | None  # noqa: N815 - Langfuse's field names
    resolutionGraph: dict[str, Any] | None = None  # noqa: N815
    createdAt: datetime  # noqa: N815
    updatedAt: datetime  # noqa: N815
    createdBy: str  # noqa: N815


class LangfusePromptMeta(BaseModel):
    name: str
    type: Literal["text", "chat"]
    versions: list[int]
    labels: list[str]
    tags: list[str]
    lastUpdatedAt: datetime  # noqa: N815
    lastConfig: dict[str, Any]  # noqa: N815


class LangfuseProject(BaseModel):
    id: str
    name: str
    organization: dict[str, str]
    metadata: dict[str, Any]


class LangfuseProjects(BaseModel):
    data: list[LangfuseProject]


class LangfuseMeta(BaseModel):
    page: int
    limit: int
    totalItems: int  # noqa: N815
    totalPages: int  # noqa: N815


class LangfusePromptList(BaseModel):
    data: list[LangfusePromptMeta]
    meta: LangfuseMeta


def _parse(model: type[BaseModel], raw: Any) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        message, errors = field_errors(list(exc.errors()))
        raise ValidationFailed(message, details={"errors": errors}) from None


def to_content(
    type_: str, prompt: str | list[dict[str, Any]], config: dict[str, Any] | None
) -> dict[str, Any]:
    """A Langfuse prompt body as PromptKeeper content (checked by the content model)."""
    if type_ == "text":
        if not isinstance(prompt, str):
            raise ValidationFailed("body.prompt: a text prompt is a string", details={"field": "body.prompt"})
        return {"type": "text", "template": prompt, "config": config or {}}
    if not isinstance(prompt, list):
        raise ValidationFailed(
            "body.prompt: a chat prompt is a list of messages", details={"field": "body.prompt"}
        )
    messages = []
    for message in prompt:
        if message.get("type") == "placeholder":
            messages.append({"type": "placeholder", "name": message.get("name")})
        else:  # Langfuse may send type "chatmessage" on ordinary messages
            messages.append({"role": message.get("role"), "content": message.get("content")})
    return {"type": "chat", "messages": messages, "config": config or {}}


def from_content(content: dict[str, Any]) -> tuple[Literal["text", "chat"], str | list[dict[str, Any]]]:
    if content["type"] == "text":
        return "text", str(content["template"])
    messages: list[dict[str, Any]] = []
    for message in content["messages"]:
        if message.get("type") == "placeholder":
            messages.append({"type": "placeholder", "name": message["name"]})
        else:
            messages.append({"role": message["role"], "content": message["content"], "type": "chatmessage"})
    return "chat", messages


def _labels(session: Session, prompt: Prompt) -> dict[int, list[str]]:
    """version -> its labels: the environments serving it, and `latest` on the head."""
    rows = session.execute(
        select(Release.version_number, Environment.name)
        .join(Environment, Environment.id == Release.environment_id)
        .where(Release.prompt_id == prompt.id)
        .order_by(Environment.name)
    )
    labels: dict[int, list[str]] = {}
    for version, environment in rows:
        labels.setdefault(int(version), []).append(str(environment))
    labels.setdefault(prompt.head_version, []).append(LATEST)
    return labels


def prompt_body(
    session: Session, prompt: Prompt, version: PromptVersion, resolve: bool = False
) -> LangfusePrompt:
    """The Langfuse shape of a version; `resolve`: with its `@@@langfusePrompt:…@@@` tags expanded."""
    content, graph = version.content, None
    if resolve:
        expansion = composition.compose(
            session, project_id=prompt.project_id, name=prompt.name, version=version.number, content=content
        )
        if expansion.includes:
            content = expansion.content
            graph = {
                "root": {"name": prompt.name, "version": version.number},
                "dependencies": [
                    {"name": i.name, "label": i.label, "version": i.version} for i in expansion.includes
                ],
            }
    type_, body = from_content(content)
    return LangfusePrompt(
        id=f"{prompt.id}-{version.number}",
        name=prompt.name,
        version=version.number,
        type=type_,
        prompt=body,
        config=dict(version.content.get("config") or {}),
        labels=sorted(_labels(session, prompt).get(version.number, [])),
        tags=list(prompt.tags),
        commitMessage=version.message or None,
        resolutionGraph=graph,
        createdAt=version.created_at,
        updatedAt=version.created_at,
        createdBy=version.author,
    )


def _not_found(name: str, what: str, missing: NotFound | None = None) -> NotFound:
    """Langfuse's "Prompt not found"; `missing` (the registry's 404) may name another spelling."""
    spelled = missing.details.get("existing") if missing is not None else None
    hint = f" (did you mean '{spelled}'? names are case-sensitive)" if spelled else ""
    return NotFound(f"Prompt not found: '{name}' {what}{hint}", details={"name": name})


def _check_labels(labels: list[str]) -> None:
    for label in labels:
        if label == LATEST:
            raise ValidationFailed(
                "labels: 'latest' is reserved (it always marks the newest version)",
                details={"field": "labels"},
            )


def _move_labels(session: Session, actor: Actor, prompt: Prompt, version: int, labels: list[str]) -> None:
    """Each label is an environment: deploy `version` there unless it already serves it."""
    _check_labels(labels)
    for label in dict.fromkeys(labels):
        env = session.scalar(
            select(Environment).where(Environment.project_id == actor.project_id, Environment.name == label)
        )
        if env is None:
            raise ValidationFailed(
                f"labels: '{label}' is not an environment of this project; an admin creates it with "
                "POST /v1/environments (labels are environments in PromptKeeper)",
                details={"field": "labels", "label": label},
            )
        current = session.scalar(
            select(Release.version_number).where(
                Release.prompt_id == prompt.id, Release.environment_id == env.id
            )
        )
        if current == version:
            continue
        try:
            deployments.deploy(
                session=session,
                actor=actor,
                name=prompt.name,
                environment=label,
                version=version,
                reason="label moved through the Langfuse-compatible API",
            )
        except Conflict as refused:  # reviews, gates, promotion path: policy, not a retryable race
            raise PermissionDenied(refused.message, details=refused.details) from None


# -- routes ----------------------------------------------------------------------------------------


@router.get("/v2/prompts/{name:path}", response_model=LangfusePrompt)
async def get_prompt(
    name: PromptNameDep,
    request: Request,
    actor: Fetcher,
    version: Annotated[int | None, Query(ge=1, le=MAX_INT, description="A version number.")] = None,
    label: Annotated[
        str | None, Query(max_length=64, description="A label (environment) or 'latest'.")
    ] = None,
    resolve: Annotated[
        bool, Query(description="false: the raw text, with `@@@langfusePrompt:…@@@` tags unexpanded.")
    ] = True,
) -> LangfusePrompt:
    """One prompt version, by version or by label (default: the `production` label), composed."""
    if version is not None and label is not None:
        raise ValidationFailed(
            "give either 'version' or 'label', not both", details={"field": "query.version"}
        )
    context: AppContext = request.app.state.context
    if version is None:
        label = label or DEFAULT_LABEL
        unit = request.headers.get(UNIT_HEADER)
        if label != LATEST and unit:
            entry = await context.resolver.get(actor.project_id, name, label)
            payload = entry.payload
            if payload.split is not None:
                headers: dict[str, str] = {}
                payload = await variant_for(context, payload.split, unit[:128], headers)
            version = payload.version
    return await anyio.to_thread.run_sync(
        _read_prompt, context, actor.project_id, name, version, label, resolve
    )


def _read_prompt(
    context: AppContext, project_id: int, name: str, version: int | None, label: str | None, resolve: bool
) -> LangfusePrompt:
    with context.db.session() as session:
        try:
            prompt = service.get_prompt(session=session, project_id=project_id, name=name)
        except NotFound as missing:
            raise _not_found(name, "does not exist", missing) from None
        if version is None:
            if label == LATEST:
                version = prompt.head_version
            else:
                version = session.scalar(
                    select(Release.version_number)
                    .join(Environment, Environment.id == Release.environment_id)
                    .where(Release.prompt_id == prompt.id, Environment.name == label)
                )
                if version is None:
                    raise _not_found(name, f"has no version with label '{label}'")
        try:
            row = service.get_version(session=session, prompt=prompt, number=version)
        except NotFound:
            raise _not_found(name, f"has no version {version}") from None
        return prompt_body(session, prompt, row, resolve=resolve)


@router.get("/v2/prompts", response_model=LangfusePromptList)
def list_prompts(
    session: ReadDB,
    actor: Lister,
    name: Annotated[str | None, Query(max_length=255)] = None,
    label: Annotated[str | None, Query(max_length=64)] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    page: Annotated[int, Query(ge=1, le=MAX_INT, description="Page number, from 1.")] = 1,
    limit: Annotated[int, Query(ge=1, le=100, description="Items per page.")] = 50,
    from_updated_at: Annotated[
        datetime | None, Query(alias="fromUpdatedAt", description="Versions created at or after.")
    ] = None,
    to_updated_at: Annotated[
        datetime | None, Query(alias="toUpdatedAt", description="Versions created before.")
    ] = None,
    filter_: Annotated[
        str | None,
        Query(alias="filter", max_length=20_000, description="Langfuse's JSON array of version conditions."),
    ] = None,
) -> LangfusePromptList:
    """Prompt names with their matching versions, labels and tags (filters apply to versions)."""
    conditions = (
        parse_filter(filter_)
        if filter_ is not None
        else simple_filter(
            name=name, label=label, tag=tag, from_updated_at=from_updated_at, to_updated_at=to_updated_at
        )
    )
    prompts = list(session.scalars(select(Prompt).where(Prompt.project_id == actor.project_id)))
    by_id = {prompt.id: prompt for prompt in prompts}
    labels_of = {prompt.id: _labels(session, prompt) for prompt in prompts}
    matching: dict[int, list[dict[str, Any]]] = {}
    rows = session.scalars(
        select(PromptVersion)
        .where(PromptVersion.prompt_id.in_(list(by_id)))
        .order_by(PromptVersion.prompt_id, PromptVersion.number)
    )
    for version in rows:
        prompt = by_id[version.prompt_id]
        at = version.created_at if version.created_at.tzinfo else version.created_at.replace(tzinfo=UTC)
        row = {
            "id": f"{prompt.id}-{version.number}",
            "name": prompt.name,
            "type": from_content(version.content)[0],
            "version": version.number,
            "createdAt": at,
            "updatedAt": at,
            "labels": labels_of[prompt.id].get(version.number, []),
            "tags": list(prompt.tags),
            "config": dict(version.content.get("config") or {}),
        }
        if all(condition(row) for condition in conditions):
            matching.setdefault(prompt.id, []).append(row)
    metas = [
        LangfusePromptMeta(
            name=by_id[prompt_id].name,
            type=found[-1]["type"],
            versions=[row["version"] for row in found],
            labels=sorted({item for row in found for item in row["labels"]}),
            tags=list(by_id[prompt_id].tags),
            lastUpdatedAt=found[-1]["updatedAt"],
            lastConfig=found[-1]["config"],
        )
        for prompt_id, found in matching.items()
    ]
    metas.sort(key=lambda meta: meta.name)
    total = len(metas)
    start = (page - 1) * limit
    return LangfusePromptList(
        data=metas[start : start + limit],
        meta=LangfuseMeta(page=page, limit=limit, totalItems=total, totalPages=math.ceil(total / limit)),
    )


@router.get("/projects", response_model=LangfuseProjects)
def get_projects(session: ReadDB, actor: Fetcher) -> LangfuseProjects:
    """The key's project: what `langfuse.auth_check()` asks for (Langfuse: the project of the key)."""
    project = session.get(Project, actor.project_id)
    assert project is not None  # the caller authenticated with it
    return LangfuseProjects(
        data=[
            LangfuseProject(
                id=str(project.id),
                name=project.name,
                organization={"id": "promptkeeper", "name": "PromptKeeper"},
                metadata={},
            )
        ]
    )


@router.post("/v2/prompts", status_code=status.HTTP_201_CREATED, response_model=LangfusePrompt)
def create_prompt(
    session: WriteDB,
    actor: Writer,
    body: Annotated[dict[str, Any], Body(description="Langfuse's CreatePromptRequest.")],
) -> LangfusePrompt:
    """A new version (the prompt is created with its first); `labels` are moved to it."""
    data: LangfuseCreate = _parse(LangfuseCreate, body)
    try:
        name = check_prompt_name(data.name)
    except ValueError as exc:
        raise ValidationFailed(f"body.name: {exc}", details={"field": "body.name"}) from None
    _check_labels(data.labels or [])
    exists = session.scalar(
        select(func.count())
        .select_from(Prompt)
        .where(Prompt.project_id == actor.project_id, Prompt.name == name)
    )
    spelled = None if exists else service.spelling_of(session=session, project_id=actor.project_id, name=name)
    if spelled is not None:  # Langfuse: two prompts; here one name regardless of case. 400: not retried
        raise ValidationFailed(
            f"body.name: the prompt '{spelled}' exists, and names are unique regardless of case; "
            f"create versions of '{spelled}' or choose another name",
            details={"field": "body.name", "existing": spelled},
        )
    if not exists:
        type_ = data.type or ("chat" if isinstance(data.prompt, list) else "text")
        created = _parse(
            PromptCreate,
            {
                "name": name,
                "content": to_content(type_, data.prompt, data.config),
                "tags": data.tags or [],
                "message": data.commit_message or "",
            },
        )
        prompt, version = service.create_prompt(session=session, actor=actor, data=created)
    else:
        prompt = service.get_prompt(session=session, project_id=actor.project_id, name=name, lock=True)
        head = service.get_version(session=session, prompt=prompt, number=prompt.head_version)
        type_ = data.type or head.content["type"]
        if type_ != head.content["type"]:
            raise ValidationFailed(  # Langfuse: 400, an invalid change (409 is retried by its clients)
                f"body.type: '{name}' is a {head.content['type']} prompt; a version cannot change its type",
                details={"field": "body.type", "type": head.content["type"]},
            )
        content = service.parse_content(to_content(type_, data.prompt, data.config))
        version = service.create_version(
            session=session,
            prompt=prompt,
            content=content,
            actor=actor,
            message=data.commit_message or "",
            allow_duplicate=True,
        )
        if data.tags is not None and list(data.tags) != list(prompt.tags):
            service.update_prompt(
                session=session, actor=actor, prompt=prompt, data=_parse(PromptUpdate, {"tags": data.tags})
            )
    _move_labels(session, actor, prompt, version.number, data.labels or [])
    session.commit()
    return prompt_body(session, prompt, version)


@router.patch("/v2/prompts/{name:path}/versions/{version}", response_model=LangfusePrompt)
def update_labels(
    name: PromptNameDep,
    version: Annotated[int, Path(ge=1, le=MAX_INT)],
    session: WriteDB,
    actor: Writer,
    body: Annotated[dict[str, Any], Body(description="{newLabels: [...]}")],
) -> LangfusePrompt:
    """Move labels to this version (each move is a deployment under the environment's policy)."""
    data: LangfuseLabels = _parse(LangfuseLabels, body)
    try:
        prompt = service.get_prompt(session=session, project_id=actor.project_id, name=name, lock=True)
        row = service.get_version(session=session, prompt=prompt, number=version)
    except NotFound:
        raise _not_found(name, f"has no version {version}") from None
    _move_labels(session, actor, prompt, version, data.new_labels)
    session.commit()
    return prompt_body(session, prompt, row)


@router.delete("/v2/prompts/{name:path}", status_code=status.HTTP_204_NO_CONTENT)
def delete_prompt(
    name: PromptNameDep,
    session: ReadDB,
    actor: Writer,
    version: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    label: Annotated[str | None, Query(max_length=64)] = None,
) -> None:
    """Refused: PromptKeeper never deletes versions (the deployment history must answer what ran
    when). Move labels with PATCH instead; an environment keeps serving its version until then."""
    try:
        service.get_prompt(session=session, project_id=actor.project_id, name=name)
    except NotFound as missing:
        raise _not_found(name, "does not exist", missing) from None
    raise PermissionDenied(  # a policy refusal: 403, which Langfuse's clients do not retry (409 they do)
        "PromptKeeper keeps every version (the deployment history answers what ran when), so "
        "versions are not deleted; move labels with PATCH /api/public/v2/prompts/{name}/versions/{version}",
        details={"version": version, "label": label},
    )
