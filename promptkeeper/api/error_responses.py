"""The one place where exceptions become HTTP answers: `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from promptkeeper.errors import PromptKeeperError, field_errors

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


class ErrorInfo(BaseModel):
    code: str = Field(description="Machine-readable: `validation_failed`, `not_found`, `conflict`, ...")
    message: str = Field(description="One line for a person; names the field and the problem.")
    details: dict[str, Any] = Field(description="E.g. `errors`: `[{field, message, type}]` for 422.")


class ErrorBody(BaseModel):
    """The one error shape of every route (docs/api.md, "Errors")."""

    error: ErrorInfo


#: Declared on every API router so that the OpenAPI document tells clients (and Schemathesis,
#: tests/test_schemathesis.py) the truth: any route may answer a client error or a 503, always in
#: `ErrorBody`'s shape. Declaring "4XX" also replaces FastAPI's default 422 schema
#: (`{"detail": [...]}`), which our handler never sends.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": 'A client error; see docs/api.md, "Errors".'},
    503: {"model": ErrorBody, "description": "The database is unreachable or busy; nothing was changed."},
}


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"error": {"code": code, "message": message, "details": details or {}}},
    )


def validation_errors(errors: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    """A one-line message naming the fields, and the errors without echoed input or exception objects."""
    return field_errors(errors)


def _with_request_id(request: Request, response: JSONResponse) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    if request_id is not None:
        response.headers["X-Request-ID"] = request_id
    return response


#: Routes that answer in Langfuse's error shape (`compat.langfuse`), so its clients parse our errors.
LANGFUSE_PREFIX = "/api/public/"
_LANGFUSE_ERRORS = {
    400: "InvalidRequestError",
    401: "UnauthorizedError",
    403: "AccessDeniedError",
    404: "LangfuseNotFoundError",
    405: "MethodNotAllowedError",
    409: "ConflictError",
    503: "ServiceUnavailableError",
}


class LangfuseErrorBody(BaseModel):
    """The error shape of the Langfuse-compatible routes, which Langfuse's clients parse."""

    error: str = Field(description="Langfuse's error name, e.g. `LangfuseNotFoundError`.")
    message: str


LANGFUSE_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": LangfuseErrorBody, "description": "A client error, in Langfuse's shape (400, not 422)."},
    503: {"model": LangfuseErrorBody, "description": "The database is unreachable or busy."},
}


#: The OTLP/HTTP receiver (`promptkeeper.otel`): its errors are `google.rpc.Status` messages.
OTLP_PREFIX = "/otlp/"


def _otlp_shaped(request: Request, response: JSONResponse) -> Response:
    """OTLP/HTTP errors are a `google.rpc.Status` in the request's encoding (protobuf unless the
    request was JSON), 400 for a bad request, and `Retry-After` on a 503 (the exporter retries)."""
    from promptkeeper.otel.decode import MEDIA_TYPES, encoding_of, status_body

    encoding = encoding_of(request.headers.get("content-type")) or "protobuf"
    message = json.loads(bytes(response.body))["error"]["message"]
    status = 400 if response.status_code == 422 else response.status_code
    shaped = Response(
        status_body(encoding, status, message), status_code=status, media_type=MEDIA_TYPES[encoding]
    )
    for name, value in response.headers.items():
        if name.lower() not in ("content-length", "content-type"):
            shaped.headers[name] = value
    if status == 503 and "retry-after" not in shaped.headers:
        shaped.headers["Retry-After"] = "5"
    return shaped


def shaped_for_path(request: Request, response: JSONResponse) -> Response:
    """`response` in the error shape of the route family `request` went to (for middleware)."""
    return _shaped(request, response)


def _shaped(request: Request, response: JSONResponse) -> Response:
    """Langfuse-compatible routes answer `{"error": <name>, "message": ...}` (with 400 for a bad
    request, where we say 422); the OTLP receiver a `google.rpc.Status`; every other route keeps
    our shape."""
    if request.url.path.startswith(OTLP_PREFIX):
        return _otlp_shaped(request, response)
    if not request.url.path.startswith(LANGFUSE_PREFIX):
        return response
    error = json.loads(bytes(response.body))["error"]
    status = 400 if response.status_code == 422 else response.status_code
    shaped = JSONResponse(
        status_code=status,
        content={"error": _LANGFUSE_ERRORS.get(status, "Error"), "message": error["message"]},
    )
    for name, value in response.headers.items():
        if name.lower() not in ("content-length", "content-type"):
            shaped.headers[name] = value
    return shaped


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PromptKeeperError)
    async def _domain(request: Request, exc: PromptKeeperError) -> Response:
        response = error_response(exc.status_code, exc.code, exc.message, exc.details)
        if "retry_after" in exc.details:
            response.headers["Retry-After"] = str(exc.details["retry_after"])
        return _shaped(request, _with_request_id(request, response))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        message, errors = validation_errors(list(exc.errors()))
        return _shaped(request, error_response(422, "validation_failed", message, {"errors": errors}))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        response = error_response(exc.status_code, code, message)
        if exc.headers:
            response.headers.update(exc.headers)
        return _shaped(request, response)

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> Response:
        log.info("integrity error mapped to 409: %s", exc.orig)
        return _shaped(
            request, error_response(409, "conflict", "the change conflicts with a concurrent change; retry")
        )

    async def _database(request: Request, exc: Exception) -> Response:
        log.warning("database unavailable: %s", getattr(exc, "orig", exc))
        return _shaped(
            request,
            error_response(
                503, "unavailable", "the database is unavailable; nothing was changed, retry later"
            ),
        )

    app.add_exception_handler(OperationalError, _database)
    app.add_exception_handler(InterfaceError, _database)

    @app.exception_handler(PoolTimeout)
    async def _pool(request: Request, exc: PoolTimeout) -> Response:
        log.warning("database pool timeout: %s", exc)
        return _shaped(
            request,
            error_response(503, "unavailable", "the database is busy; nothing was changed, retry later"),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return _shaped(request, error_response(500, "internal_error", "internal server error"))
