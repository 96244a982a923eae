"""Admin pages: the audit log (every role reads it) and settings (admins): API keys, members,
environments and their protection, webhooks. Each change goes through the service the API uses."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from promptkeeper.access import keys, users
from promptkeeper.access.service import Role
from promptkeeper.audit import service as audit
from promptkeeper.audit import webhooks
from promptkeeper.audit.schemas import WebhookCreate
from promptkeeper.core.egress import EgressPolicy
from promptkeeper.errors import PermissionDenied, ValidationFailed
from promptkeeper.prompts import service
from promptkeeper.prompts.schemas import EnvironmentCreate, EnvironmentUpdate
from promptkeeper.ui.web import (
    SignedIn,
    User,
    actor_of,
    context_of,
    first,
    form_of,
    is_count,
    page,
    pydantic_message,
    read,
    redirect,
    ui_page,
    write,
)

router = APIRouter(include_in_schema=False)


def _require_admin(user: User) -> None:
    if user.principal.role is not Role.admin:
        raise PermissionDenied(f"a '{user.principal.role.value}' cannot change settings; ask an admin")


@router.get("/ui/audit")
@ui_page
async def audit_log(
    request: Request, user: SignedIn, prompt: str = "", action: str = "", offset: int = 0
) -> Response:
    if action and not all(c.isalnum() or c in "._*" for c in action):
        raise ValidationFailed("action: letters, '.', '_' and a trailing '*'", details={"field": "action"})

    def load(session: Session) -> dict[str, Any]:
        entries, total = audit.list_entries(
            session=session,
            project_id=user.principal.project_id,
            prompt=prompt or None,
            action=action or None,
            limit=100,
            offset=max(0, offset),
        )
        return {"entries": entries, "total": total}

    data = await read(request, load)
    return page(request, "audit.html", user, prompt=prompt, action=action, offset=offset, **data)


@router.get("/ui/settings")
@ui_page
async def settings_page(request: Request, user: SignedIn, secret: str = "") -> Response:
    _require_admin(user)
    project_id = user.principal.project_id

    def load(session: Session) -> dict[str, Any]:
        return {
            "keys": keys.list_keys(session=session, project_id=project_id),
            "members": users.list_members(session=session, project_id=project_id),
            "environments": service.list_environments(session=session, project_id=project_id),
            "hooks": webhooks.list_webhooks(session=session, project_id=project_id),
        }

    data = await read(request, load)
    return page(request, "settings.html", user, roles=[r.value for r in Role], **data)


@router.post("/ui/settings/{what}")
@ui_page
async def change_settings(request: Request, user: SignedIn, what: str) -> Response:
    """One form per kind of change: `key`, `revoke-key`, `member`, `environment`, `protect`, `webhook`."""
    fields = await form_of(request, user)
    _require_admin(user)
    actor = actor_of(request, user)
    shown: dict[str, str] = {}

    def run(session: Session) -> None:
        if what == "key":
            new = keys.create_key(
                session=session, actor=actor, name=first(fields, "name"), role=Role(first(fields, "role"))
            )
            shown["secret"] = new.secret
        elif what == "revoke-key":
            keys.revoke_key(session=session, actor=actor, ref=first(fields, "key"))
        elif what == "member":
            users.add_member(
                session=session,
                actor=actor,
                email=first(fields, "email"),
                role=Role(first(fields, "role")),
                password=first(fields, "password") or None,
                name=first(fields, "name"),
            )
        elif what == "environment":
            service.create_environment(
                session=session,
                actor=actor,
                data=EnvironmentCreate.model_validate({"name": first(fields, "name")}),
            )
        elif what == "protect":
            approvals = first(fields, "required_approvals")
            data = EnvironmentUpdate.model_validate(
                {
                    "protected": first(fields, "protected") == "on",
                    **({"required_approvals": int(approvals)} if is_count(approvals) else {}),
                }
            )
            service.update_environment(session=session, actor=actor, name=first(fields, "name"), data=data)
        elif what == "webhook":
            events = [e.strip() for e in first(fields, "events").split(",") if e.strip()]
            hook, secret = webhooks.create_webhook(
                session=session,
                actor=actor,
                data=WebhookCreate.model_validate({"url": first(fields, "url"), "events": events}),
                egress=EgressPolicy.from_settings(context_of(request).settings),
            )
            shown["secret"] = secret
        else:
            raise ValidationFailed(f"unknown setting '{what}'")

    try:
        await write(request, run)
    except ValueError as exc:  # pydantic's errors, and a role that does not exist
        raise ValidationFailed(pydantic_message(exc)) from None
    if "secret" in shown:  # shown once, like the API's answer
        return page(request, "secret.html", user, what=what, secret=shown["secret"])
    return redirect("/ui/settings")
