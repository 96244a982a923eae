"""The exception tree shared by services, routes and the SDK.

    PromptKeeperError          500 internal_error
    ├── BadRequest             400 bad_request
    ├── Unauthorized           401 unauthorized
    ├── PermissionDenied       403 permission_denied
    ├── NotFound               404 not_found
    ├── Conflict               409 conflict
    │   └── GateFailed         409 gate_failed
    ├── ValidationFailed       422 validation_failed
    └── Unavailable            503 unavailable

Services raise these; one exception handler in `promptkeeper.api.errors` turns them into
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


class Unavailable(PromptKeeperError):
    status_code = 503
    code = "unavailable"


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
        Unavailable,
    )
}
