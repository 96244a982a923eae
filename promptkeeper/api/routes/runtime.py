"""Resolution routes: what applications call on every LLM request."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse

from promptkeeper.access.authenticator import bearer_secret
from promptkeeper.api.context import AppContext
from promptkeeper.api.deps import (
    RESOLVE_ROLES,
    ContextDep,
    Reader,
    RuntimeCaller,
    check_role,
    client_address,
    decode_prompt_name,
)
from promptkeeper.api.error_responses import ERROR_RESPONSES
from promptkeeper.core.fields import ENVIRONMENT_PATTERN, MAX_INT, NAME_PATTERN
from promptkeeper.core.templates import MissingVariables, TemplateError, render_content
from promptkeeper.deployments import releases
from promptkeeper.errors import ValidationFailed
from promptkeeper.experiments.serving import hashed_variant
from promptkeeper.prompts import composition, service
from promptkeeper.prompts.schemas import RenderRead, RenderRequest, ResolveRead
from promptkeeper.runtime.release_changes import ReleaseChanged
from promptkeeper.runtime.resolver import DATABASE_ERRORS, Payload, Split
from promptkeeper.runtime.stream import format_event

router = APIRouter(prefix="/v1", tags=["runtime"], responses=ERROR_RESPONSES)

STALE_HEADER = "X-PromptKeeper-Stale"
EXPERIMENT_HEADER = "X-PromptKeeper-Experiment"
VARIANT_HEADER = "X-PromptKeeper-Variant"
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
    {
        "name": "version",
        "in": "query",
        "required": False,
        "description": "A specific version instead of what an environment serves (not with `at`).",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_INT},
    },
    {
        "name": "unit",
        "in": "query",
        "required": False,
        "description": "A user or session id: while an experiment runs, the variant assigned to this "
        "unit is served (without it, the control). Not with `at` or `version`.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
    },
    {
        "name": "resolve",
        "in": "query",
        "required": False,
        "description": "false: the raw text, with the references to other prompts (`@@@prompt:…@@@`) "
        "left as they are (read from the database, not the cache). Default true: composed.",
        "schema": {"type": "boolean", "default": True},
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


def _version_param(value: str | None) -> int | None:
    if value is None:
        return None
    # isascii: str.isdigit() is also true of digits int() refuses, such as "²"
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_INT:
        raise ValidationFailed(
            f"query.version: {value[:20]!r} is not a version number (1, 2, ...)",
            details={"field": "query.version"},
        )
    return int(value)


def resolve_param(value: str | None) -> bool:
    """`?resolve=`: true (compose, the default) or false (the raw text)."""
    if value is None or value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise ValidationFailed(
        f"query.resolve: {value[:20]!r} is not true or false", details={"field": "query.resolve"}
    )


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
    principal = await context.auth(
        bearer_secret(request.headers.get("authorization")), client_address(request)
    )
    check_role(principal, RESOLVE_ROLES, "resolve prompts")
    name = decode_prompt_name(request.path_params["name"])
    query = request.query_params
    environment = _environment_param(query.get("environment"))
    at = _at_param(query.get("at"))
    version = _version_param(query.get("version"))
    unit = query.get("unit")
    raw = not resolve_param(query.get("resolve"))
    headers: dict[str, str] = {"Cache-Control": "no-cache"}
    payload: Payload
    if unit is not None and (version is not None or at is not None or not 0 < len(unit) <= 128):
        raise ValidationFailed(
            "query.unit: give a unit id of 1 to 128 characters, and not with 'version' or 'at'",
            details={"field": "query.unit"},
        )
    if version is not None:
        if at is not None or "environment" in query:
            raise ValidationFailed(
                "query.version: give either 'version' or 'environment'/'at', not both",
                details={"field": "query.version"},
            )
        payload = await anyio.to_thread.run_sync(
            releases.load_pinned, context.db, principal.project_id, name, version, raw
        )
        if not payload.depends:  # a label include follows its environment: not immutable
            headers["Cache-Control"] = "max-age=31536000, immutable"
    elif raw and at is None:
        payload = await anyio.to_thread.run_sync(
            _resolve_raw, context, principal.project_id, name, environment
        )
    elif at is None:
        entry = await context.resolver.get(principal.project_id, name, environment)
        payload = entry.payload
        if entry.stale:
            headers[STALE_HEADER] = "database-unavailable"
        if unit is not None and payload.split is not None:
            payload = await variant_for(context, payload.split, unit, headers)
    else:
        payload = await anyio.to_thread.run_sync(
            _resolve_at, context, principal.project_id, name, environment, at, raw
        )
    headers["ETag"] = payload.etag
    if _etag_matches(request.headers.get("if-none-match"), payload.etag):
        return Response(status_code=304, headers=headers)
    return Response(payload.body, media_type="application/json", headers=headers)


async def variant_for(context: AppContext, split: Split, unit: str, headers: dict[str, str]) -> Payload:
    """The body for `unit` under a running experiment (hashing; bandits: the unit's first variant)."""
    if split.mode == "fixed":
        index = hashed_variant(split, unit)
    else:
        known = context.sticky.cached(split.experiment_id, unit)
        if known is not None:
            index = known
        else:
            try:
                index = await anyio.to_thread.run_sync(context.sticky.variant, split, unit)
            except DATABASE_ERRORS:  # keep serving: the weights alone still give a variant
                index = hashed_variant(split, unit)
    headers[EXPERIMENT_HEADER] = str(split.experiment_id)
    if index < 0:
        return split.outside
    headers[VARIANT_HEADER] = split.keys[index]
    return split.bodies[index]


def _resolve_at(
    context: AppContext, project_id: int, name: str, environment: str, at: datetime, raw: bool = False
) -> Payload:
    with context.db.session() as session:
        resolved = releases.resolve_at(
            session=session, project_id=project_id, name=name, environment=environment, at=at, raw=raw
        )
    return releases.payload_of(resolved, at=at)


def _resolve_raw(context: AppContext, project_id: int, name: str, environment: str) -> Payload:
    with context.db.session() as session:
        resolved = releases.resolve(
            session=session, project_id=project_id, name=name, environment=environment, raw=True
        )
    return releases.payload_of(resolved)


@router.post("/render", response_model=RenderRead)
async def render(body: RenderRequest, context: ContextDep, caller: RuntimeCaller) -> RenderRead:
    """Render a prompt with variables: a text, or a list of chat messages; 422 names missing variables."""
    environment: str | None
    if body.version is not None:
        environment = None

        def load_version() -> tuple[int, dict[str, Any]]:
            with context.db.session() as session:
                prompt = service.get_prompt(session=session, project_id=caller.project_id, name=body.name)
                version = service.get_version(session=session, prompt=prompt, number=body.version or 0)
                expansion = composition.compose(
                    session,
                    project_id=caller.project_id,
                    name=body.name,
                    version=version.number,
                    content=version.content,
                )
                return version.number, expansion.content

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


@router.get("/runtime/status")
async def runtime_status(context: ContextDep, caller: Reader) -> dict[str, object]:
    """This instance's cache and invalidation counters (each instance answers for itself)."""
    return context.runtime.status()


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events."}},
)
async def stream(
    request: Request,
    context: ContextDep,
    caller: RuntimeCaller,
    environment: Annotated[
        str | None, Query(pattern=ENVIRONMENT_PATTERN, description="Only changes of this environment.")
    ] = None,
    after: Annotated[
        int | None, Query(ge=0, description="Resume after this event id (same as Last-Event-ID).")
    ] = None,
    last_event_id: Annotated[str | None, Header(description="Resume after this event id.")] = None,
) -> StreamingResponse:
    """Release changes of the caller's project as Server-Sent Events, for SDKs to refresh their cache.

    Each change is `id: <position>`, `event: release`, `data: {prompt, environment, version,
    revision}`. A new subscriber first gets `event: hello` whose id is the current position; a
    reconnecting one sends that position back (`Last-Event-ID` or `?after=`) and first receives
    every change it missed, from the deployment history. Comments (`: keep-alive`) are sent every
    `PROMPTKEEPER_STREAM_KEEPALIVE` seconds.
    """
    resume = after
    if resume is None and last_event_id:
        if not (last_event_id.strip().isascii() and last_event_id.strip().isdigit()):
            raise ValidationFailed("header.last-event-id: must be an event id (digits)")
        resume = int(last_event_id.strip())
    broadcaster = context.runtime.broadcaster
    subscription = broadcaster.subscribe(caller.project_id, environment)

    def backlog() -> tuple[int, list[ReleaseChanged]]:
        with context.db.session() as session:
            if resume is None:
                return releases.latest_seq(session=session, project_id=caller.project_id), []
            missed = releases.changes_after(
                session=session, project_id=caller.project_id, seq=resume, environment=environment
            )
            return resume, missed

    try:
        position, missed = await anyio.to_thread.run_sync(backlog)
    except BaseException:
        broadcaster.unsubscribe(subscription)
        raise
    keepalive = context.settings.stream_keepalive

    async def events() -> AsyncIterator[str]:
        sent: dict[tuple[str, str], int] = {}
        try:
            yield "retry: 1000\n\n"
            if resume is None:
                yield f"id: {position}\nevent: hello\ndata: {{}}\n\n"
            for event in missed:
                sent[(event.prompt, event.environment)] = event.revision
                yield format_event(event)
            while True:
                try:
                    change = await asyncio.wait_for(subscription.queue.get(), timeout=keepalive)
                except TimeoutError:
                    if subscription.overflowed:
                        return
                    yield ": keep-alive\n\n"
                    continue
                if change is None:  # the server is shutting down
                    return
                if sent.get((change.prompt, change.environment), 0) >= change.revision:
                    continue
                sent[(change.prompt, change.environment)] = change.revision
                yield format_event(change)
        finally:
            broadcaster.unsubscribe(subscription)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
