"""Sign-in and sign-out of the admin web UI, and `/ui` itself (the address people are given).

Signing in exchanges an email and password for a login session, with the same `users.login` as
`POST /v1/auth/login` and the same failed-sign-in throttle; the session token becomes the cookie
`web.SignedIn` reads on every other page. A sign-in another site posted is refused (login CSRF:
see `web.cross_site`); `next` only ever leads back into the UI.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from promptkeeper.access import keys, users
from promptkeeper.api.deps import client_address
from promptkeeper.errors import PromptKeeperError, Unauthorized
from promptkeeper.ui.web import (
    COOKIE,
    SignedIn,
    actor_of,
    context_of,
    cross_site,
    first,
    form_of,
    page,
    redirect,
    set_session,
    ui_page,
    write,
)

router = APIRouter(include_in_schema=False)


@router.get("/")
@router.get("/ui")
@router.get("/ui/")
async def home() -> Response:
    """`/ui` is the address people are given and type: it opens the prompts (or the sign-in)."""
    return redirect("/ui/prompts")


@router.get("/ui/login")
async def login_form(request: Request, next: str = "/ui/prompts") -> Response:  # noqa: A002
    return page(request, "login.html", None, next=_safe_next(next), error=None)


def _safe_next(path: str) -> str:
    return path if path.startswith("/ui/") and not path.startswith("//") else "/ui/prompts"


@router.post("/ui/login")
async def login(request: Request) -> Response:
    fields = await form_of(request, None)
    email, password = first(fields, "email").strip(), first(fields, "password")
    project = first(fields, "project").strip() or None
    target = _safe_next(first(fields, "next", "/ui/prompts"))
    context = context_of(request)
    if cross_site(request):  # login CSRF: another site signing the visitor in to its account
        message = "this sign-in was sent from another site: open the sign-in page here and sign in"
        return page(request, "login.html", None, status_code=403, next=target, error=message, email="")

    def run(session: Session) -> Any:
        return users.login(
            session=session,
            email=email,
            password=password,
            project=project,
            ttl_seconds=context.settings.session_ttl,
            request_id=None,
        )

    throttle, address = context.auth.throttle, client_address(request)
    try:
        throttle.check_login(address, email)
        new, _, _, _ = await write(request, run)
    except PromptKeeperError as exc:
        if isinstance(exc, Unauthorized):
            throttle.login_failed(address, email)
        return page(
            request,
            "login.html",
            None,
            status_code=exc.status_code,
            next=target,
            error=exc.message,
            email=email,
        )
    throttle.login_succeeded(address, email)
    response = redirect(target)
    set_session(response, new.secret, request, int(context.settings.session_ttl))
    return response


@router.post("/ui/logout")
@ui_page
async def logout(request: Request, user: SignedIn) -> Response:
    await form_of(request, user)
    await write(request, lambda session: keys.end_session(session=session, actor=actor_of(request, user)))
    context_of(request).auth.forget()
    response = redirect("/ui/login")
    response.delete_cookie(COOKIE, path="/")
    return response
