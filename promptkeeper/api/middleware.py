"""ASGI middleware."""

from __future__ import annotations

from urllib.parse import unquote

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from promptkeeper.api.deps import ENCODED_SLASH
from promptkeeper.api.error_responses import error_response, shaped_for_path


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


#: Methods whose requests carry a body (and may write)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BodyTooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


async def read_body(receive: Receive, limit: int = 0) -> bytes | None:
    """The whole request body (None if the client went away); `BodyTooLarge` past `limit` bytes."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        body += message.get("body", b"")
        if limit and len(body) > limit:
            raise BodyTooLarge(len(body))
        if not message.get("more_body", False):
            return bytes(body)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app a body already read, then the server's own messages."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class BodyLimitMiddleware:
    """Refuse request bodies over `max_bytes` with 413 before they are read into memory.

    A declared `Content-Length` over the limit is refused at once; a body without one (chunked) is
    read here up to the limit and refused as soon as it passes it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.max_bytes or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)  # the resolve hot path (GET) pays one comparison
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0:
                    await _refuse(
                        scope, receive, send, 400, "bad_request", "header Content-Length: not a size"
                    )
                    return
                if declared > self.max_bytes:
                    await _refuse(scope, receive, send, 413, "payload_too_large", self._message(declared))
                    return
                await self.app(scope, receive, send)
                return
        # No declared length (chunked): read it here, up to the limit, and hand it on whole
        try:
            body = await read_body(receive, limit=self.max_bytes)
        except BodyTooLarge as exc:
            await _refuse(scope, receive, send, 413, "payload_too_large", self._message(exc.size))
            return
        if body is not None:
            await self.app(scope, replaying(body, receive), send)

    def _message(self, size: int) -> str:
        return (
            f"body: {size:,} bytes is over the limit of {self.max_bytes:,} "
            "(PROMPTKEEPER_MAX_BODY_BYTES); send fewer items per request"
        )


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str) -> None:
    response = error_response(status, code, message, {"field": "body"})
    await shaped_for_path(Request(scope), response)(scope, receive, send)
