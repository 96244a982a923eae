"""Resolution routes: what applications call on every LLM request."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Header, Query
from fastapi.responses import Response

from promptkeeper.api.deps import ContextDep, PromptNameDep, Resolver_
from promptkeeper.core.templates import MissingVariables, TemplateError, render_content
from promptkeeper.errors import ValidationFailed
from promptkeeper.prompts import releases, service
from promptkeeper.prompts.schemas import ENVIRONMENT_PATTERN, RenderRead, RenderRequest, ResolveRead
from promptkeeper.runtime.resolver import Payload

router = APIRouter(prefix="/v1", tags=["runtime"])

STALE_HEADER = "X-PromptKeeper-Stale"
DEFAULT_ENVIRONMENT = "production"

EnvironmentQuery = Annotated[
    str, Query(pattern=ENVIRONMENT_PATTERN, description="Environment to resolve in.")
]


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


def _at_utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


@router.get(
    "/resolve/{name:path}",
    response_class=Response,
    responses={
        200: {"model": ResolveRead, "description": "The version the environment serves, with an ETag."},
        304: {"description": "Unchanged since the ETag given in If-None-Match."},
    },
)
async def resolve(
    name: PromptNameDep,
    context: ContextDep,
    caller: Resolver_,
    environment: EnvironmentQuery = DEFAULT_ENVIRONMENT,
    at: Annotated[
        datetime | None,
        Query(description="ISO-8601 instant: what the environment served then (naive = UTC)."),
    ] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The version an environment serves now (cached), or served at a past instant (`at`, from history)."""
    headers: dict[str, str] = {"Cache-Control": "no-cache"}
    payload: Payload
    if at is None:
        entry = await context.resolver.get(caller.project_id, name, environment)
        payload = entry.payload
        if entry.stale:
            headers[STALE_HEADER] = "database-unavailable"
    else:
        when = _at_utc(at)

        def load() -> Payload:
            with context.db.session() as session:
                resolved = releases.resolve_at(
                    session=session, project_id=caller.project_id, name=name, environment=environment, at=when
                )
            return releases.payload_of(resolved, at=when)

        payload = await anyio.to_thread.run_sync(load)
    headers["ETag"] = payload.etag
    if _etag_matches(if_none_match, payload.etag):
        return Response(status_code=304, headers=headers)
    return Response(payload.body, media_type="application/json", headers=headers)


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
