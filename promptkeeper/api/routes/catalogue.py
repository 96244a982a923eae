"""`GET /v1/catalogue`: what an environment serves, with each prompt's arguments.

The runtime's view of the registry, for clients that offer prompts to people or agents (the MCP
bridge, `docs/mcp.md`): any key that may resolve may list what it can resolve, which the registry's
own `GET /v1/prompts` (editors' view, every version and environment) does not allow a runtime key.
Required arguments are found by rendering without any: the template's own defaults and conditions
decide, not a guess from the variable names.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from promptkeeper.api.deps import Limit, Offset, ReadDB, RuntimeCaller
from promptkeeper.api.error_responses import ERROR_RESPONSES
from promptkeeper.core.fields import ENVIRONMENT_PATTERN, Page
from promptkeeper.core.templates import TemplateError, content_placeholders, content_variables, render_content
from promptkeeper.errors import Conflict
from promptkeeper.prompts import composition
from promptkeeper.prompts.models import Environment, Prompt, PromptVersion, Release

router = APIRouter(prefix="/v1", tags=["runtime"], responses=ERROR_RESPONSES)


class CatalogueEntry(BaseModel):
    name: str
    description: str
    version: int = Field(description="The version the environment serves.")
    type: Literal["text", "chat"]
    variables: list[str] = Field(description="Every variable the templates read.")
    required: list[str] = Field(description="The variables rendering cannot do without.")
    placeholders: list[str] = Field(description="Chat placeholders (lists of messages).")


def required_variables(content: dict[str, Any], variables: list[str]) -> list[str]:
    """The variables rendering cannot do without: each one left out in turn, the others given.

    A render reports every absent variable as missing, so leaving all of them out at once would
    call optional ones (`{{ tone|default('plain') }}`, a branch never taken) required. A template
    that fails for another reason with a stand-in value counts the variable as required: asking
    for an argument that was optional costs less than failing a render that needed it.
    """
    given: dict[str, Any] = {name: [] for name in content_placeholders(content)}
    given.update(dict.fromkeys(variables, "x"))
    required = []
    for name in variables:
        others = {key: value for key, value in given.items() if key != name}
        try:
            render_content(content, others)
        except TemplateError:
            required.append(name)
    return required


def catalogue(
    *, session: Session, project_id: int, environment: str, limit: int, offset: int
) -> tuple[list[CatalogueEntry], int]:
    """The prompts live in `environment`, by name, with the content of the version each serves."""
    live = (
        select(Prompt, PromptVersion)
        .join(Release, Release.prompt_id == Prompt.id)
        .join(Environment, Environment.id == Release.environment_id)
        .join(
            PromptVersion,
            (PromptVersion.prompt_id == Prompt.id) & (PromptVersion.number == Release.version_number),
        )
        .where(Prompt.project_id == project_id, Environment.name == environment)
    )
    total = session.scalar(select(func.count()).select_from(live.subquery())) or 0
    rows = session.execute(live.order_by(Prompt.name).limit(limit).offset(offset)).all()
    entries = []
    for prompt, version in rows:
        content, variables = version.content, version.variables
        try:  # what a composed prompt needs includes what it includes
            expansion = composition.compose(
                session, project_id=project_id, name=prompt.name, version=version.number, content=content
            )
        except Conflict:  # a broken reference: resolving says why; list what the version holds
            expansion = None
        if expansion is not None and expansion.includes:
            content, variables = expansion.content, content_variables(expansion.content)
        entries.append(
            CatalogueEntry(
                name=prompt.name,
                description=prompt.description,
                version=version.number,
                type="chat" if content.get("type") == "chat" else "text",
                variables=variables,
                required=required_variables(content, variables),
                placeholders=version.placeholders,
            )
        )
    return entries, total


@router.get("/catalogue", response_model=Page[CatalogueEntry])
def list_catalogue(
    session: ReadDB,
    caller: RuntimeCaller,
    environment: Annotated[
        str, Query(pattern=ENVIRONMENT_PATTERN, description="The environment whose prompts to list.")
    ] = "production",
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[CatalogueEntry]:
    """The prompts an environment serves, with their arguments; any key that may resolve may list."""
    items, total = catalogue(
        session=session, project_id=caller.project_id, environment=environment, limit=limit, offset=offset
    )
    return Page[CatalogueEntry](items=items, total=total, limit=limit, offset=offset)
