"""ASGI middleware."""

from __future__ import annotations

from urllib.parse import unquote

from starlette.types import ASGIApp, Receive, Scope, Send

from promptkeeper.api.deps import ENCODED_SLASH


class EncodedSlashMiddleware:
    """Keep `%2F` inside one path segment, so `support/greeting` can be a single `{name}` parameter.

    ASGI servers decode `%2F` to `/` in `scope["path"]`, which would split a prompt name across
    segments. The raw path still has it; we rebuild `path` from it, decoding everything except
    the encoded slash, which the `prompt_name` dependency turns back into `/`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path")
            if raw and b"%2f" in raw.lower():
                raw_text = raw.decode("latin-1").split("?", 1)[0]
                segments = [unquote(part).replace("/", ENCODED_SLASH) for part in raw_text.split("/")]
                # (`%2f` arrives as `/` from unquote and is re-encoded upper-case here)
                scope = dict(scope)
                scope["path"] = "/".join(segments)
        await self.app(scope, receive, send)
