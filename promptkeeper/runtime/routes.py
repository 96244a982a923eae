"""Resolution routes: what applications call on every LLM request."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response

from promptkeeper.access.authenticator import bearer_secret
from promptkeeper.api.context import AppContext
from promptkeeper.api.deps import RESOLVE_ROLES, ContextDep, Resolver_, check_role, decode_prompt_name
from promptkeeper.core.templates import MissingVariables, TemplateError, render_content
from promptkeeper.errors import ValidationFailed
from promptkeeper.prompts import releases, service
from promptkeeper.prompts.schemas import (
    ENVIRONMENT_PATTERN,
    NAME_PATTERN,
    RenderRead,
    RenderRequest,
    ResolveRead,
)
from promptkeeper.runtime.resolver import Payload

router = APIRouter(prefix="/v1", tags=["runtime"])

STALE_HEADER = "X-PromptKeeper-Stale"
DEFAULT_ENVIRONMENT = "production"


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


_RESOLVE_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "name",
        "in": "path",
        "required": True,
        "description": "Prompt name; '/' may be sent as is or as %2F.",
        "schema": {"type": "string", "pattern": NAME_PATTERN},
    },
    {
        "name": "environment",
        "in": "query",
        "required": False,
        "description": "Environment to resolve in.",
        "schema": {"type": "string", "pattern": ENVIRONMENT_PATTERN, "default": DEFAULT_ENVIRONMENT},
    },
    {
        "name": "at",
        "in": "query",
        "required": False,
        "description": "ISO-8601 instant: what the environment served then (naive = UTC).",
        "schema": {"type": "string", "format": "date-time"},
    },
    {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}},
    {"name": "Authorization", "in": "header", "required": False, "schema": {"type": "string"}},
]
_ENVIRONMENT_RE = re.compile(ENVIRONMENT_PATTERN)


def _environment_param(value: str | None) -> str:
    if value is None:
        return DEFAULT_ENVIRONMENT
    if not _ENVIRONMENT_RE.match(value):
        raise ValidationFailed(
            f"query.environment: invalid environment name {value[:80]!r}",
            details={"field": "query.environment"},
        )
    return value


def _at_param(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(
            f"query.at: {value[:80]!r} is not an ISO-8601 date-time", details={"field": "query.at"}
        ) from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


@router.get(
    "/resolve/{name:path}",
    response_class=Response,
    responses={
        200: {"model": ResolveRead, "description": "The version the environment serves, with an ETag."},
        304: {"description": "Unchanged since the ETag given in If-None-Match."},
    },
    openapi_extra={"parameters": _RESOLVE_PARAMETERS},
)
async def resolve(request: Request) -> Response:
    """The version an environment serves now (cached), or served at a past instant (`at`, from history).

    This is the hot path of every application, so it reads its parameters by hand instead of through
    FastAPI's dependency system, which costs several times the cache lookup itself (docs/benchmarks.md).
    """
    context: AppContext = request.app.state.context
    principal = await context.auth(bearer_secret(request.headers.get("authorization")))
    check_role(principal, RESOLVE_ROLES, "resolve prompts")
    name = decode_prompt_name(request.path_params["name"])
    query = request.query_params
    environment = _environment_param(query.get("environment"))
    at = _at_param(query.get("at"))
    headers: dict[str, str] = {"Cache-Control": "no-cache"}
    payload: Payload
    if at is None:
        entry = await context.resolver.get(principal.project_id, name, environment)
        payload = entry.payload
        if entry.stale:
            headers[STALE_HEADER] = "database-unavailable"
    else:
        payload = await anyio.to_thread.run_sync(
            _resolve_at, context, principal.project_id, name, environment, at
        )
    headers["ETag"] = payload.etag
    if _etag_matches(request.headers.get("if-none-match"), payload.etag):
        return Response(status_code=304, headers=headers)
    return Response(payload.body, media_type="application/json", headers=headers)


def _resolve_at(context: AppContext, project_id: int, name: str, environment: str, at: datetime) -> Payload:
    with context.db.session() as session:
        resolved = releases.resolve_at(
            session=session, project_id=project_id, name=name, environment=environment, at=at
        )
    return releases.payload_of(resolved, at=at)


@router.post("/render", response_model=RenderRead)
async def render(body: RenderRequest, context: ContextDep, caller: Resolver_) -> RenderRead:
    """Render a prompt with variables: a text, or a list of chat messages; 422 names missing variables."""
    environment: str | None
    if body.version is not None:
        environment = None

        def load_version() -> tuple[int, dict[str, Any]]:
            with context.db.session() as session:
                prompt = service.get_prompt(session=session, project_id=caller.project_id, name=body.name)
                version = service.get_version(session=session, prompt=prompt, number=body.version or 0)
                return version.number, version.content

        number, content = await anyio.to_thread.run_sync(load_version)
    else:
        environment = body.environment or DEFAULT_ENVIRONMENT
        entry = await context.resolver.get(caller.project_id, body.name, environment)
        number, content = entry.payload.version, entry.payload.content
    try:
        rendered = await anyio.to_thread.run_sync(render_content, content, body.variables)
    except MissingVariables as exc:
        raise ValidationFailed(
            f"variables: {exc.message}", details={"field": "variables", **exc.details()}
        ) from None
    except TemplateError as exc:
        raise ValidationFailed(f"rendering failed: {exc.message}", details=exc.details()) from None
    is_chat = isinstance(rendered, list)
    return RenderRead(
        name=body.name,
        version=number,
        environment=environment,
        type="chat" if is_chat else "text",
        text=None if is_chat else str(rendered),
        messages=rendered if isinstance(rendered, list) else None,
        config=content.get("config", {}),
    )
