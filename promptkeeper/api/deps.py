"""Request dependencies: the app context, database sessions, the caller and its role.

Dependencies that do no blocking work are `async def`: FastAPI runs a plain `def` dependency in
the thread pool, and on the resolve hot path each such hop costs more than the lookup itself.

Write routes get a write session and call `session.commit()` themselves before they build the
response, so a failed commit is an error response and never a 201 for work that was not saved.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Query, Request, Response
from sqlalchemy.orm import Session

from promptkeeper.access.authenticator import bearer_secret
from promptkeeper.access.service import Actor, Principal, Role
from promptkeeper.api.context import AppContext
from promptkeeper.core.fields import MAX_INT, check_prompt_name
from promptkeeper.errors import PermissionDenied, ValidationFailed
from promptkeeper.idempotency import service as idempotency

ENCODED_SLASH = "%2F"
REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


async def get_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


ContextDep = Annotated[AppContext, Depends(get_context)]


def read_session(context: ContextDep) -> Iterator[Session]:
    with context.db.session() as session:
        yield session


def write_session(context: ContextDep, request: Request) -> Iterator[Session]:
    with context.db.write_session() as session:
        claim = getattr(request.state, "idempotency", None)
        if claim is not None:  # the request carries an Idempotency-Key: it is taken with the write
            idempotency.bind(session, claim)
        yield session


ReadDB = Annotated[Session, Depends(read_session)]
WriteDB = Annotated[Session, Depends(write_session)]


def client_address(request: Request) -> str | None:
    """The caller's address (behind a proxy: as uvicorn's `--forwarded-allow-ips` lets it tell)."""
    return request.client.host if request.client is not None else None


async def current_principal(
    context: ContextDep,
    request: Request,
    authorization: Annotated[str | None, Header(description="Bearer <API key>")] = None,
) -> Principal:
    return await context.auth(bearer_secret(authorization), client_address(request))


CallerDep = Annotated[Principal, Depends(current_principal)]

RESOLVE_ROLES = frozenset(Role)
READ_ROLES = frozenset({Role.viewer, Role.editor, Role.approver, Role.admin})
EDIT_ROLES = frozenset({Role.editor, Role.approver, Role.admin})
APPROVE_ROLES = frozenset({Role.approver, Role.admin})
ADMIN_ROLES = frozenset({Role.admin})


def check_role(principal: Principal, roles: frozenset[Role], action: str) -> Principal:
    if principal.role not in roles:
        allowed = sorted(r.value for r in roles)
        raise PermissionDenied(
            f"a '{principal.role.value}' key cannot {action}; needs one of: {', '.join(allowed)}",
            details={"role": principal.role.value, "allowed": allowed},
        )
    return principal


def request_id(request: Request, response: Response) -> str:
    """The caller's `X-Request-ID` when it is sane, else a new one; echoed in the response.

    It is recorded with every audit entry the request writes, so a support ticket's request id
    finds what that request changed.
    """
    value = request.headers.get("x-request-id")
    if not value or not _REQUEST_ID.match(value):
        value = uuid.uuid4().hex
    request.state.request_id = value
    response.headers[REQUEST_ID_HEADER] = value
    return value


def require(roles: frozenset[Role], action: str) -> Callable[..., Any]:
    async def check(principal: CallerDep, request: Request, response: Response) -> Actor:
        check_role(principal, roles, action)
        return principal.actor(request_id(request, response))

    return check


RuntimeCaller = Annotated[Actor, Depends(require(RESOLVE_ROLES, "resolve prompts"))]
Reader = Annotated[Actor, Depends(require(READ_ROLES, "read the registry"))]
Editor = Annotated[Actor, Depends(require(EDIT_ROLES, "change prompts or deployments"))]
Approver = Annotated[Actor, Depends(require(APPROVE_ROLES, "approve reviews"))]
Admin = Annotated[Actor, Depends(require(ADMIN_ROLES, "administer the project"))]


def decode_prompt_name(raw: str) -> str:
    decoded = raw.replace(ENCODED_SLASH, "/")
    try:
        return check_prompt_name(decoded)
    except ValueError as exc:
        raise ValidationFailed(
            f"path.name: invalid prompt name {decoded[:140]!r}: {exc}", details={"field": "path.name"}
        ) from None


async def prompt_name(name: Annotated[str, Path(description="Prompt name; '/' travels as %2F")]) -> str:
    return decode_prompt_name(name)


PromptNameDep = Annotated[str, Depends(prompt_name)]

#: Pagination of every list route.
Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=MAX_INT, description="Items to skip.")]
#: An object's id in a path (a larger one cannot exist: see `MAX_INT`).
IdPath = Annotated[int, Path(ge=1, le=MAX_INT)]
