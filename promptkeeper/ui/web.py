"""What every page needs: the signed-in user from the session cookie, CSRF, forms, rendering.

Sign-in (`ui/login.py`) exchanges an email and password for a session (the same `users.login` as
`POST /v1/auth/login`); the session token lives in an HttpOnly, SameSite=Lax cookie (Secure behind
HTTPS). A page takes its user as a dependency, `user: SignedIn`: without a valid login session
FastAPI never calls the page, and the visitor is redirected to the sign-in with the page's path as
`next`, before anything else about the request is looked at. Every form carries a CSRF token
derived from the session token with HMAC: a page of another site can make the browser send the
cookie, but cannot read it, so it cannot forge the token. Pages call the same services as the API
with the user's `Actor`, so the permission checks are the API's.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

import anyio
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from promptkeeper.access.service import Actor, Principal
from promptkeeper.api.context import AppContext
from promptkeeper.api.deps import EDIT_ROLES, client_address, decode_prompt_name
from promptkeeper.core import storable
from promptkeeper.core.fields import path_segment
from promptkeeper.errors import (
    PermissionDenied,
    PromptKeeperError,
    Unauthorized,
    ValidationFailed,
    field_errors,
)

COOKIE = "pk_session"
Handler = Callable[..., Awaitable[Response]]
MAX_FORM_BYTES = 1_000_000
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.filters["segment"] = lambda name: path_segment(str(name))

#: Sent with every page: no framing, no sniffing, scripts and styles only from this server.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class User:
    principal: Principal
    token: str

    @property
    def can_edit(self) -> bool:
        return self.principal.role in EDIT_ROLES

    @property
    def csrf(self) -> str:
        return csrf_token(self.token)


class LoginRequired(Exception):
    """Raised by `signed_in`: the request is answered by `sign_in_first`, a redirect to the sign-in."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def csrf_token(session_token: str) -> str:
    return hmac.new(session_token.encode(), b"promptkeeper-ui-csrf", hashlib.sha256).hexdigest()[:40]


def context_of(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


async def signed_in(request: Request) -> User:
    token = request.cookies.get(COOKIE)
    if not token:
        raise LoginRequired(request.url.path)
    try:
        principal = await context_of(request).auth(token, client_address(request))
    except Unauthorized:
        raise LoginRequired(request.url.path) from None
    if principal.kind != "session":
        raise LoginRequired(request.url.path)
    return User(principal, token)


#: The signed-in user of a page (a login session, never an API key).
SignedIn = Annotated[User, Depends(signed_in)]


async def sign_in_first(request: Request, exc: Exception) -> Response:
    """The app's handler of `LoginRequired`, raised while FastAPI resolves a page's `SignedIn`."""
    assert isinstance(exc, LoginRequired)
    return redirect(f"/ui/login?next={exc.next_path}")


async def form_of(request: Request, user: User | None) -> dict[str, list[str]]:
    """The urlencoded form, with its CSRF token checked when a user is signed in."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise PermissionDenied("the form is too large")
    # invalid UTF-8 (raw or percent-encoded) becomes lone surrogates, refused below: never U+FFFD
    # stored in place of what was typed
    text = body.decode("utf-8", errors="surrogateescape")
    fields = {
        # browsers send a textarea's line breaks as CRLF (the HTML form encoding): prompts keep LF
        name: [value.replace("\r\n", "\n") for value in values]
        for name, values in parse_qs(text, keep_blank_values=True, errors="surrogateescape").items()
    }
    for name, values in fields.items():  # no database stores these: refused here as in the API
        kind = storable.problem(name) or next(filter(None, map(storable.problem, values)), None)
        if kind is not None:
            field = storable.printable(name)
            what = "the NUL character" if kind == "nul" else "invalid UTF-8"
            raise ValidationFailed(
                f"form.{field}: must not contain {what}", details={"field": f"form.{field}"}
            )
    if user is not None:
        sent = (fields.get("csrf") or [""])[0]
        if not hmac.compare_digest(sent, user.csrf):
            raise PermissionDenied("the form's CSRF token is missing or wrong: reload the page and try again")
    return fields


def cross_site(request: Request) -> bool:
    """Whether a browser says this request comes from another site (fetch metadata, else `Origin`).

    The sign-in form has no session to derive a CSRF token from; what stops another site from
    signing a visitor in to the attacker's account is that browsers label a form post with where
    it comes from. A request with neither header is not from a browser (or from one too old to
    send either): login CSRF needs a browser.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return False
    return urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()


def is_count(value: str) -> bool:
    """An ASCII whole number that fits the INTEGER columns (`'²'.isdigit()` is true, `int('²')` fails)."""
    return value.isascii() and value.isdigit() and len(value) <= 9


def first(fields: dict[str, list[str]], name: str, default: str = "") -> str:
    values = fields.get(name)
    return values[0] if values else default


def page(
    request: Request, template: str, user: User | None, status_code: int = 200, **values: Any
) -> HTMLResponse:
    response = templates.TemplateResponse(
        request, template, {"user": user, **values}, status_code=status_code
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def redirect(path: str) -> RedirectResponse:
    response = RedirectResponse(path, status_code=303)
    response.headers.update(SECURITY_HEADERS)
    return response


def error_page(request: Request, user: User | None, exc: PromptKeeperError) -> Response:
    return page(
        request,
        "error.html",
        user,
        status_code=exc.status_code,
        title="Not allowed" if exc.status_code == 403 else "Could not do that",
        message=exc.message,
    )


def set_session(response: Response, token: str, request: Request, max_age: int) -> None:
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response.set_cookie(
        COOKIE, token, max_age=max_age, httponly=True, samesite="lax", secure=secure, path="/"
    )


def ui_page(handler: Handler) -> Handler:
    """Error pages instead of the API's JSON errors, shown to the page's signed-in user."""

    @wraps(handler)
    async def wrapped(request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            return await handler(request, *args, **kwargs)
        except PromptKeeperError as exc:
            user = next((value for value in kwargs.values() if isinstance(value, User)), None)
            return error_page(request, user, exc)

    return wrapped


def actor_of(request: Request, user: User) -> Actor:
    return user.principal.actor(request.headers.get("x-request-id"))


def require_editor(user: User) -> None:
    if not user.can_edit:
        raise PermissionDenied(
            f"a '{user.principal.role.value}' cannot change prompts or deployments; ask an editor"
        )


async def read(request: Request, fn: Callable[[Session], Any]) -> Any:
    def run() -> Any:
        with context_of(request).db.session() as session:
            result = fn(session)
            session.expunge_all()  # the page renders after the session closes: keep what was loaded
            return result

    return await anyio.to_thread.run_sync(run)


async def write(request: Request, fn: Callable[[Session], Any]) -> Any:
    def run() -> Any:
        with context_of(request).db.write_session() as session:
            result = fn(session)
            session.commit()
            return result

    return await anyio.to_thread.run_sync(run)


def pydantic_message(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        message, _ = field_errors(list(errors()))
        return message
    return str(exc)


def prompt_name_of(raw: str) -> str:
    """The prompt name of a path segment (`%2F` back to `/`), checked like the API checks it."""
    return decode_prompt_name(raw)
