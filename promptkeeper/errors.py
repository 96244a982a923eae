"""The exception tree shared by services, routes and the SDK.

    PromptKeeperError          500 internal_error
    ├── BadRequest             400 bad_request
    ├── Unauthorized           401 unauthorized
    ├── PermissionDenied       403 permission_denied
    ├── NotFound               404 not_found
    ├── Conflict               409 conflict
    │   └── GateFailed         409 gate_failed
    ├── ValidationFailed       422 validation_failed
    ├── TooManyRequests        429 too_many_requests
    └── Unavailable            503 unavailable

Services raise these; one exception handler in `promptkeeper.api.error_responses` turns them into
`{"error": {"code", "message", "details"}}` with the status above, and the SDK maps that body
back onto the same classes.
"""

from __future__ import annotations

from typing import Any, ClassVar


class PromptKeeperError(Exception):
    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}

    def to_body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(PromptKeeperError):
    status_code = 400
    code = "bad_request"


class Unauthorized(PromptKeeperError):
    status_code = 401
    code = "unauthorized"


class PermissionDenied(PromptKeeperError):
    status_code = 403
    code = "permission_denied"


class NotFound(PromptKeeperError):
    status_code = 404
    code = "not_found"


class Conflict(PromptKeeperError):
    status_code = 409
    code = "conflict"


class GateFailed(Conflict):
    code = "gate_failed"


class ValidationFailed(PromptKeeperError):
    status_code = 422
    code = "validation_failed"


class TooManyRequests(PromptKeeperError):
    """`details.retry_after` (seconds) is also sent as the `Retry-After` header."""

    status_code = 429
    code = "too_many_requests"


class Unavailable(PromptKeeperError):
    status_code = 503
    code = "unavailable"


def _location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def field_errors(errors: list[Any], prefix: tuple[Any, ...] = ()) -> tuple[str, list[dict[str, Any]]]:
    """Pydantic errors as a one-line message naming the fields, and JSON-safe `{field, message, type}`
    items (pydantic's own carry the input and exception objects)."""
    cleaned = []
    for error in errors:
        loc = prefix + tuple(
            p for p in error.get("loc", ()) if not (isinstance(p, str) and p.startswith("function-"))
        )
        cleaned.append(
            {"field": _location(loc), "message": error.get("msg", ""), "type": error.get("type", "")}
        )
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in cleaned[:3])
    if len(cleaned) > 3:
        summary += f"; and {len(cleaned) - 3} more"
    return summary or "invalid request", cleaned


ERRORS_BY_CODE: dict[str, type[PromptKeeperError]] = {
    cls.code: cls
    for cls in (
        PromptKeeperError,
        BadRequest,
        Unauthorized,
        PermissionDenied,
        NotFound,
        Conflict,
        GateFailed,
        ValidationFailed,
        TooManyRequests,
        Unavailable,
    )
}
