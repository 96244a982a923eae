"""The admin web UI's prompt pages: prompts, a prompt, versions, diffs, deploys and rollbacks.

Pages (all under `/ui`; sign-in is `ui/login.py`): prompts (search, tag filter, what each
environment serves); a prompt (metadata, environments with deploy and roll back, "what ran at",
history with statuses, a new-version editor with live preview); a diff of any two versions
(side by side or inline, word-level highlights); a confirmation page before each deploy or
rollback that shows the diff being deployed, the gate and the reviews it needs.

Every action calls the same service as the API (`prompts.service`, `workflow.deployments`) with
the signed-in user's `Actor`; a viewer sees no edit controls and gets 403 if it posts anyway.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup, escape
from sqlalchemy.orm import Session

from promptkeeper.core.fields import path_segment
from promptkeeper.core.templates import TemplateError, content_placeholders, content_variables, render_content
from promptkeeper.deployments import pending, releases
from promptkeeper.deployments import policy as deployments
from promptkeeper.errors import GateFailed, NotFound, PromptKeeperError, ValidationFailed
from promptkeeper.prompts import composition, service
from promptkeeper.prompts.schemas import PromptCreate
from promptkeeper.ui import diffview
from promptkeeper.ui.web import (
    SignedIn,
    actor_of,
    context_of,
    first,
    form_of,
    is_count,
    page,
    prompt_name_of,
    pydantic_message,
    read,
    redirect,
    require_editor,
    ui_page,
    write,
)
from promptkeeper.workflow import drafts, reviews

router = APIRouter(include_in_schema=False)
Handler = Callable[..., Awaitable[Response]]


# -- prompts -----------------------------------------------------------------------------------------


@router.get("/ui/prompts")
@ui_page
async def prompts(
    request: Request,
    user: SignedIn,
    search: str = "",
    tag: str = "",
    owner: str = "",
    live_in: str = "",
    status: str = "",
) -> Response:
    project_id = user.principal.project_id

    def load(session: Session) -> dict[str, Any]:
        rows, _ = service.list_prompts(
            session=session, project_id=project_id, tag=tag or None, search=search or None, limit=500
        )
        live = service.releases_by_environment(
            session=session, project_id=project_id, prompt_ids=[p.id for p in rows]
        )
        environments = [e.name for e in service.list_environments(session=session, project_id=project_id)]
        if owner:
            rows = [p for p in rows if (p.owner or "") == owner]
        if live_in:
            rows = [p for p in rows if live[p.id].get(live_in) is not None]
        if status:  # the head version's derived status (draft, testing, production, archived)
            rows = [
                p
                for p in rows
                if service.version_status(session=session, prompt=p)(p.head_version)[0] == status
            ]
        return {"prompts": rows, "live": live, "environments": environments, "total": len(rows)}

    data = await read(request, load)
    filters: dict[str, Any] = {
        "search": search,
        "tag": tag,
        "owner": owner,
        "live_in": live_in,
        "status": status,
    }
    return page(request, "prompts.html", user, **filters, **data)


@router.get("/ui/prompts/new")
@ui_page
async def new_prompt_form(request: Request, user: SignedIn) -> Response:
    require_editor(user)
    return page(request, "new_prompt.html", user, error=None, values={})


def content_from_form(fields: dict[str, list[str]]) -> dict[str, Any]:
    """The editor's fields as a content document (checked by the services)."""
    kind = first(fields, "type", "text")
    config_text = first(fields, "config").strip()
    try:
        config = json.loads(config_text) if config_text else {}
    except json.JSONDecodeError as exc:
        raise ValidationFailed(
            f"config: not valid JSON ({exc.msg}, line {exc.lineno})", details={"field": "config"}
        ) from None
    if not isinstance(config, dict):
        raise ValidationFailed("config: must be a JSON object", details={"field": "config"})
    examples_text = first(fields, "examples").strip()
    try:
        examples = json.loads(examples_text) if examples_text else []
    except json.JSONDecodeError as exc:
        raise ValidationFailed(
            f"examples: not valid JSON ({exc.msg})", details={"field": "examples"}
        ) from None
    if not isinstance(examples, list):
        raise ValidationFailed("examples: must be a JSON list of objects", details={"field": "examples"})
    if kind == "text":
        return {"type": "text", "template": first(fields, "template"), "config": config, "examples": examples}
    messages: list[dict[str, Any]] = []
    for role, text in zip(fields.get("m_role", []), fields.get("m_content", []), strict=False):
        if role == "placeholder":
            messages.append({"type": "placeholder", "name": text.strip()})
        else:
            messages.append({"role": role, "content": text})
    return {"type": "chat", "messages": messages, "config": config, "examples": examples}


@router.post("/ui/prompts")
@ui_page
async def create_prompt(request: Request, user: SignedIn) -> Response:
    fields = await form_of(request, user)
    require_editor(user)
    name = first(fields, "name").strip()
    try:
        raw = {
            "name": name,
            "description": first(fields, "description"),
            "tags": [t.strip() for t in first(fields, "tags").split(",") if t.strip()],
            "content": content_from_form(fields),
            "message": first(fields, "message"),
        }
        data = PromptCreate.model_validate(raw)
        await write(
            request,
            lambda session: service.create_prompt(session=session, actor=actor_of(request, user), data=data),
        )
    except (PromptKeeperError, ValueError) as exc:
        message = exc.message if isinstance(exc, PromptKeeperError) else pydantic_message(exc)
        values = {
            k: first(fields, k)
            for k in ("name", "description", "tags", "template", "config", "message", "type")
        }
        return page(request, "new_prompt.html", user, status_code=422, error=message, values=values)
    return redirect(f"/ui/prompts/{path_segment(name)}")


@router.get("/ui/prompts/{name}")
@ui_page
async def prompt_page(request: Request, user: SignedIn, name: str, at: str = "") -> Response:
    prompt_name = prompt_name_of(name)
    project_id = user.principal.project_id
    when = _parse_when(at) if at else None

    def load(session: Session) -> dict[str, Any]:
        prompt = service.get_prompt(session=session, project_id=project_id, name=prompt_name)
        versions, _ = service.list_versions(session=session, prompt=prompt, limit=500, offset=0)
        status_of = service.version_status(session=session, prompt=prompt)
        environments = service.list_environments(session=session, project_id=project_id)
        live = service.releases_by_environment(
            session=session, project_id=project_id, prompt_ids=[prompt.id]
        )[prompt.id]
        ran: dict[str, int | None] = {}
        if when is not None:
            for env in environments:
                try:
                    ran[env.name] = releases.resolve_at(
                        session=session,
                        project_id=project_id,
                        name=prompt_name,
                        environment=env.name,
                        at=when,
                    ).version
                except NotFound:
                    ran[env.name] = None
        head = versions[0]
        open_reviews, _ = reviews.list_reviews(
            session=session, project_id=project_id, name=prompt_name, status="open", limit=50
        )
        open_drafts, _ = drafts.list_drafts(session=session, prompt=prompt, status="open", limit=50, offset=0)
        timeline, _ = releases.list_deployments(
            session=session, project_id=project_id, name=prompt_name, limit=100
        )
        waits = pending.list_pending(session=session, project_id=project_id, name=prompt_name, limit=10)
        return {
            "pending": [pending.pending_read(session, row) for row in waits],
            "open_drafts": open_drafts,
            "timeline": timeline,
            "open_reviews": [(review, env) for review, _, env in open_reviews],
            "prompt": prompt,
            "versions": versions,
            "status_of": status_of,
            "environments": environments,
            "live": live,
            "ran": ran,
            "head": head,
            "variables": content_variables(head.content),
            "placeholders": content_placeholders(head.content),
            "includes": composition.includes_of(session=session, project_id=project_id, version=head),
            "dependants": composition.dependants(session=session, project_id=project_id, name=prompt_name),
        }

    data = await read(request, load)
    return page(request, "prompt.html", user, at=at, when=when, segment=path_segment(prompt_name), **data)


def _parse_when(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(f"at: '{value}' is not a date and time", details={"field": "at"}) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@router.post("/ui/preview")
@ui_page
async def preview(request: Request, user: SignedIn) -> Response:
    """The editor's live preview: detected variables, highlighted template, rendered output or the
    template error (nothing is saved)."""
    fields = await form_of(request, user)
    sample_text = first(fields, "sample").strip()
    result: dict[str, Any] = {
        "variables": [],
        "placeholders": [],
        "rendered": None,
        "error": None,
        "highlighted": None,
    }
    try:
        content = content_from_form(fields)
        document, variables, placeholders = service.checked_content(service.parse_content(content))
        result["variables"], result["placeholders"] = variables, placeholders
        result["highlighted"] = highlight(document)
        sample = json.loads(sample_text) if sample_text else {}
        if not isinstance(sample, dict):
            raise ValidationFailed("sample variables: must be a JSON object", details={"field": "sample"})
        for variable in variables:
            sample.setdefault(variable, f"<{variable}>")
        for placeholder in placeholders:
            sample.setdefault(placeholder, [])
        result["rendered"] = render_content(document, sample)
    except json.JSONDecodeError as exc:
        result["error"] = f"sample variables: not valid JSON ({exc.msg})"
    except (PromptKeeperError, TemplateError) as exc:
        result["error"] = exc.message
    except ValueError as exc:
        result["error"] = pydantic_message(exc)
    return page(request, "_preview.html", user, **result)


_TAGS = re.compile(r"(\{\{.*?\}\}|\{%.*?%\})", re.DOTALL)


def highlight(document: dict[str, Any]) -> Markup:
    """The template source with `{{ ... }}` and `{% ... %}` marked, for the editor's preview."""
    texts = (
        [str(document.get("template", ""))]
        if document.get("type") == "text"
        else [
            f"[{m.get('role')}] {m.get('content', '')}"
            if m.get("type") != "placeholder"
            else f"[placeholder {m.get('name')}]"
            for m in document.get("messages", [])
        ]
    )
    parts = []
    for text in texts:
        pieces = _TAGS.split(text)
        parts.append(
            "".join(
                f"<mark>{escape(p)}</mark>" if index % 2 else str(escape(p)) for index, p in enumerate(pieces)
            )
        )
    return Markup("\n".join(parts))


@router.post("/ui/prompts/{name}/versions")
@ui_page
async def create_version(request: Request, user: SignedIn, name: str) -> Response:
    fields = await form_of(request, user)
    require_editor(user)
    prompt_name = prompt_name_of(name)

    def run(session: Session) -> int:
        prompt = service.get_prompt(
            session=session, project_id=user.principal.project_id, name=prompt_name, lock=True
        )
        base = first(fields, "base_version")
        version = service.create_version(
            session=session,
            prompt=prompt,
            content=service.parse_content(content_from_form(fields)),
            actor=actor_of(request, user),
            message=first(fields, "message"),
            base_version=int(base) if is_count(base) else None,
        )
        return version.number

    try:
        number = await write(request, run)
    except ValueError as exc:
        raise ValidationFailed(pydantic_message(exc)) from None
    return redirect(f"/ui/prompts/{path_segment(prompt_name)}?saved={number}")


@router.get("/ui/prompts/{name}/diff")
@ui_page
async def diff(
    request: Request, user: SignedIn, name: str, left: int = 0, right: int = 0, view: str = "split"
) -> Response:
    prompt_name = prompt_name_of(name)

    def load(session: Session) -> dict[str, Any]:
        prompt = service.get_prompt(session=session, project_id=user.principal.project_id, name=prompt_name)
        new_number = right or prompt.head_version
        old_number = left or max(1, new_number - 1)
        old = service.get_version(session=session, prompt=prompt, number=old_number)
        new = service.get_version(session=session, prompt=prompt, number=new_number)
        return {
            "prompt": prompt,
            "old": old,
            "new": new,
            "sections": diffview.diff_contents(old.content, new.content),
            "numbers": list(range(prompt.head_version, 0, -1)),
        }

    data = await read(request, load)
    return page(request, "diff.html", user, view=view, segment=path_segment(prompt_name), **data)


# -- deploy and roll back ----------------------------------------------------------------------------


@router.get("/ui/prompts/{name}/confirm")
@ui_page
async def confirm(
    request: Request, user: SignedIn, name: str, environment: str, version: int, action: str = "deploy"
) -> Response:
    """What a deploy or rollback would change, and whether the environment's policy allows it."""
    require_editor(user)
    prompt_name = prompt_name_of(name)

    def load(session: Session) -> dict[str, Any]:
        project_id = user.principal.project_id
        blocked = waits = None
        if action != "rollback":  # a rollback returns to a version that was live: its own rule applies
            actor = actor_of(request, user)
            prompt = service.get_prompt(session=session, project_id=project_id, name=prompt_name)
            env = service.get_environment(session=session, project_id=project_id, name=environment)
            try:  # authorize only reads; it runs first since it may expire what it loaded
                try:
                    deployments.authorize(
                        session=session, actor=actor, prompt=prompt, env=env, version=version
                    )
                except GateFailed as exc:
                    if not pending.waits_for_evaluation(session=session, project_id=project_id, failure=exc):
                        raise
                    waits = exc.message  # the deploy would wait for the gate's runs: the rest applies now
                    deployments.authorize(
                        session=session, actor=actor, prompt=prompt, env=env, version=version, gate=False
                    )
            except PromptKeeperError as exc:
                blocked, waits = exc.message, None
        session.expire_all()
        prompt = service.get_prompt(session=session, project_id=project_id, name=prompt_name)
        env = service.get_environment(session=session, project_id=project_id, name=environment)
        return {
            "prompt": prompt,
            "env": env,
            "blocked": blocked,
            "waits": waits,
            "affected": composition.affected_by(
                session=session, project_id=project_id, name=prompt_name, environment=environment
            ),
            **change_to(session, prompt, env, version),
        }

    data = await read(request, load)
    return page(request, "confirm.html", user, action=action, segment=path_segment(prompt_name), **data)


def change_to(session: Session, prompt: Any, env: Any, version: int) -> dict[str, Any]:
    """What deploying `version` to `env` changes: the target, what runs now, and their diff."""
    target = service.get_version(session=session, prompt=prompt, number=version)
    release = releases.current_release(session=session, prompt=prompt, environment=env)
    current = (
        service.get_version(session=session, prompt=prompt, number=release.version_number)
        if release
        else None
    )
    before = current.content if current else {"type": target.content["type"]}
    return {"target": target, "current": current, "sections": diffview.diff_contents(before, target.content)}


@router.post("/ui/prompts/{name}/deploy")
@ui_page
async def deploy(request: Request, user: SignedIn, name: str) -> Response:
    fields = await form_of(request, user)
    require_editor(user)
    prompt_name = prompt_name_of(name)
    environment, version = first(fields, "environment"), first(fields, "version")
    action = "rollback" if first(fields, "action") == "rollback" else "deploy"
    if not is_count(version):
        raise ValidationFailed("version: choose a version", details={"field": "version"})

    reason = first(fields, "reason") or f"{action} from the web UI"

    def run(session: Session) -> None:
        if action == "rollback":
            deployments.rollback(
                session=session,
                actor=actor_of(request, user),
                name=prompt_name,
                environment=environment,
                version=int(version),
                reason=reason,
            )
            return
        review = first(fields, "review_id")
        pending.deploy(  # a gate with auto_run makes it a pending deploy, shown on the prompt page
            session=session,
            actor=actor_of(request, user),
            name=prompt_name,
            environment=environment,
            version=int(version),
            reason=reason,
            review_id=int(review) if is_count(review) else None,
            default_concurrency=context_of(request).settings.provider_concurrency,
        )

    await write(request, run)
    return redirect(f"/ui/prompts/{path_segment(prompt_name)}?deployed={environment}")
