"""`Idempotency-Key` on writes: the ASGI side of `promptkeeper.idempotency.service`.

Only requests that carry the header pay anything: their body is read once to fingerprint it, the
answer is buffered, stored (encrypted: it may carry a new secret), then sent (so a client that saw
the answer always finds it stored).
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from promptkeeper.api.error_responses import error_response
from promptkeeper.api.middleware import BODY_METHODS, read_body, replaying
from promptkeeper.core.secrets import SecretKeyError
from promptkeeper.errors import PromptKeeperError
from promptkeeper.idempotency import service
from promptkeeper.idempotency.service import HEADER, KEY_PATTERN, REPLAYED_HEADER, Claim

log = logging.getLogger("promptkeeper.idempotency")
_HEADER = HEADER.lower().encode()


def _credential(headers: list[tuple[bytes, bytes]]) -> bytes:
    """What identifies the caller: its Authorization header, else its session cookie."""
    found = dict(headers)
    if b"authorization" in found:
        return b"authorization:" + found[b"authorization"]
    return b"cookie:" + found.get(b"cookie", b"")


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        raw_key = next((value for name, value in scope["headers"] if name == _HEADER), None)
        if raw_key is None:
            await self.app(scope, receive, send)
            return
        key = raw_key.decode("latin-1")
        if not KEY_PATTERN.match(key):
            response = error_response(
                400,
                "bad_request",
                f"header {HEADER}: 1 to 255 visible ASCII characters (a UUID is a good key)",
                {"field": f"header.{HEADER}"},
            )
            await response(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:
            return
        fingerprint, also = service.fingerprints(
            scope["app"].state.context.db.secrets,
            scope["method"].encode(),
            scope["path"].encode(),
            scope.get("query_string", b""),
            body,
        )
        claim = Claim(
            scope=service.digest(_credential(scope["headers"])),
            key=key,
            fingerprint=fingerprint,
            method=scope["method"],
            path=scope["path"],
            also=also,
        )
        if await _answered(scope, claim, receive, send):
            return
        scope.setdefault("state", {})["idempotency"] = claim
        await self._run(scope, replaying(body, receive), claim, send)

    async def _run(self, scope: Scope, receive: Receive, claim: Claim, send: Send) -> None:
        start: Message | None = None
        chunks: list[bytes] = []

        async def hold(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, hold)
        assert start is not None
        content = b"".join(chunks)
        status = int(start["status"])
        if status >= 400 and not claim.claimed and await _answered(scope, claim, receive, send):
            return  # refused because a concurrent attempt with this key did the write: say so
        # a 5xx after the commit is not an answer worth replaying: retries learn the write happened
        if (claim.claimed and status < 500) or 200 <= status < 300:
            await self._store(scope, claim, status, content, _content_type(start))
        await send(start)
        await send({"type": "http.response.body", "body": content, "more_body": False})

    @staticmethod
    async def _store(
        scope: Scope, claim: Claim, status: int, content: bytes, content_type: str | None
    ) -> None:
        database = scope["app"].state.context.db

        def write() -> None:
            with database.write_session() as session:
                service.store_response(
                    session=session,
                    claim=claim,
                    status_code=status,
                    # sealed: the answer may be a new API key, webhook secret or session token
                    body=database.secrets.seal(content.decode("utf-8", errors="replace")),
                    content_type=content_type,
                )
                session.commit()

        try:
            await anyio.to_thread.run_sync(write)
        except Exception:  # the write itself succeeded: answer it; a retry then gets 409, never a double
            log.exception("could not store the response for %s %s", claim.method, claim.path)


async def _answered(scope: Scope, claim: Claim, receive: Receive, send: Send) -> bool:
    """Answer from the key's record (a replay, or why there is none yet); False if it is unused."""
    database = scope["app"].state.context.db

    def lookup() -> tuple[int, str, str | None] | None:
        with database.session() as session:
            record = service.lookup(session=session, claim=claim)
            if record is None:
                return None
            assert record.status_code is not None and record.response_body is not None
            return record.status_code, database.secrets.open(record.response_body), record.content_type

    try:
        stored = await anyio.to_thread.run_sync(lookup)
    except (OperationalError, InterfaceError, PoolTimeout) as exc:
        # The database is down or busy: let the request run with its claim bound. Routing, the
        # error handler and the metrics then treat it like any other request (a 503 under its
        # route); should the database be back, the claim taken in the write's transaction still
        # makes the write happen once.
        log.warning("idempotency lookup failed, the request runs with its claim: %s", exc)
        return False
    except SecretKeyError as exc:  # this instance's PROMPTKEEPER_SECRET_KEY is not the one it was sealed with
        log.error("cannot replay %s %s: %s", claim.method, claim.path, exc)
        await error_response(500, "internal_error", str(exc), {"field": f"header.{HEADER}"})(
            scope, receive, send
        )
        return True
    except PromptKeeperError as exc:
        response = error_response(exc.status_code, exc.code, exc.message, exc.details)
        if isinstance(exc, service.KeyInProgress):
            response.headers["Retry-After"] = "1"
        await response(scope, receive, send)
        return True
    if stored is None:
        return False
    await _replay(stored, send)
    return True


def _content_type(start: Message) -> str | None:
    for name, value in start.get("headers", []):
        if name.lower() == b"content-type":
            decoded: str = value.decode("latin-1")
            return decoded
    return None


async def _replay(stored: tuple[int, str, str | None], send: Send) -> None:
    status, body, content_type = stored
    content = body.encode()
    headers: list[Any] = [
        (b"content-length", str(len(content)).encode()),
        (REPLAYED_HEADER.lower().encode(), b"true"),
    ]
    if content_type is not None:
        headers.append((b"content-type", content_type.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content, "more_body": False})
