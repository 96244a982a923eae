"""PromptKeeper: prompt management for LLM products.

`from promptkeeper import Client` is the SDK. It needs only httpx and Jinja2, and importing this
package never imports the server (FastAPI, SQLAlchemy, Redis).

Exceptions (all subclasses of `PromptKeeperError`, see `promptkeeper.errors`): `NotFound`,
`Unauthorized`, `PermissionDenied`, `Conflict`, `ValidationFailed`, `Unavailable` and its subclass
`PromptUnavailable`; template problems raise `MissingVariables` or `RenderFailed`
(`promptkeeper.core.templates`).
"""

from promptkeeper.client import AsyncClient, Client, Prompt, PromptUnavailable
from promptkeeper.core.templates import MissingVariables, RenderFailed, TemplateError
from promptkeeper.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PermissionDenied,
    PromptKeeperError,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)

__version__ = "0.1.0"
__all__ = [
    "AsyncClient",
    "BadRequest",
    "Client",
    "Conflict",
    "MissingVariables",
    "NotFound",
    "PermissionDenied",
    "Prompt",
    "PromptKeeperError",
    "PromptUnavailable",
    "RenderFailed",
    "TemplateError",
    "Unauthorized",
    "Unavailable",
    "ValidationFailed",
]
