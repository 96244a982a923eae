"""Request and response bodies of the registry API (one family per entity: Create, Update, Read)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from promptkeeper.core.bases import ReadModel, RequestBody
from promptkeeper.core.content import PromptContent
from promptkeeper.core.fields import MAX_INT, EnvironmentName, PromptName

TagName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\s,]+$")]
VersionStatus = Literal["draft", "testing", "production", "archived"]


class PromptCreate(RequestBody):
    name: PromptName
    description: str = Field(default="", max_length=10_000)
    owner: str | None = Field(default=None, max_length=128)
    tags: list[TagName] = Field(default_factory=list, max_length=50)
    target_model: str | None = Field(default=None, max_length=128)
    content: PromptContent
    message: str = Field(default="", max_length=10_000, description="Commit message of version 1.")


class PromptUpdate(RequestBody):
    """Metadata only; content changes are new versions."""

    description: str | None = Field(default=None, max_length=10_000)
    owner: str | None = Field(default=None, max_length=128)
    tags: list[TagName] | None = Field(default=None, max_length=50)
    target_model: str | None = Field(default=None, max_length=128)


class ReleaseRead(ReadModel):
    """What one environment serves."""

    version: int = Field(validation_alias="version_number")
    previous_version: int | None
    revision: int
    deployed_at: datetime = Field(validation_alias="updated_at")
    deployed_by: str = Field(validation_alias="updated_by")


class PromptRead(ReadModel):
    name: str
    description: str
    owner: str | None
    tags: list[str]
    target_model: str | None
    latest_version: int = Field(validation_alias="head_version")
    created_by: str
    created_at: datetime
    updated_at: datetime
    environments: dict[str, ReleaseRead | None] = Field(
        description="Every environment of the project with what it serves (null: nothing deployed)."
    )


class VersionCreate(RequestBody):
    content: PromptContent
    message: str = Field(default="", max_length=10_000)
    base_version: int | None = Field(
        default=None,
        ge=1,
        le=MAX_INT,
        description="The version this edit started from; 409 if the head moved on.",
    )
    allow_duplicate: bool = Field(
        default=False, description="Create the version even if content is unchanged."
    )


class VersionRead(ReadModel):
    prompt: str
    number: int
    content: dict[str, Any]
    variables: list[str]
    placeholders: list[str]
    content_hash: str
    parent: int | None
    author: str
    message: str
    created_at: datetime
    status: VersionStatus
    environments: list[str] = Field(description="Environments that serve this version now.")


class PromptCreated(PromptRead):
    version: VersionRead


class ChangeRead(BaseModel):
    path: str
    kind: Literal["added", "removed", "changed"]
    before: Any = None
    after: Any = None


class DiffRead(BaseModel):
    prompt: str
    from_version: int
    to_version: int
    changed_fields: list[str]
    changes: list[ChangeRead]
    unified: dict[str, str] = Field(description="Unified diff per changed top-level field.")


class DeploymentCreate(RequestBody):
    environment: EnvironmentName
    version: int = Field(ge=1, le=MAX_INT)
    reason: str = Field(default="", max_length=10_000)
    expected_revision: int | None = Field(
        default=None,
        ge=0,
        le=MAX_INT,
        description="The release revision the caller saw; 409 if it changed since.",
    )
    review_id: int | None = Field(
        default=None,
        ge=1,
        le=MAX_INT,
        description="The approved review this deploy carries out (found when omitted).",
    )
    override: bool = Field(
        default=False,
        description="Emergency override of a protected environment's reviews (admin, needs a reason).",
    )


class PromoteCreate(RequestBody):
    from_environment: EnvironmentName = Field(
        alias="from", description="Deploy the version this environment serves now..."
    )
    to_environment: EnvironmentName = Field(alias="to", description="...to this environment.")
    reason: str = Field(default="", max_length=10_000)
    review_id: int | None = Field(default=None, ge=1, le=MAX_INT)
    override: bool = False


class RollbackCreate(RequestBody):
    environment: EnvironmentName
    version: int | None = Field(
        default=None,
        ge=1,
        le=MAX_INT,
        description="Target version; omitted: the version live before the current one.",
    )
    reason: str = Field(default="", max_length=10_000)


class DeploymentRead(ReadModel):
    id: int
    prompt: str
    environment: str
    version: int = Field(validation_alias="version_number")
    previous_version: int | None
    action: str
    actor: str
    reason: str
    revision: int
    at: datetime
    experiment_id: int | None = Field(
        default=None, description="The experiment that made this change (experiment_* actions)."
    )


class IncludeRead(BaseModel):
    name: str
    label: str | None = Field(description="The environment followed; null for a version reference.")
    version: int = Field(description="The version the reference resolved to.")
    revision: int | None = Field(description="The label's release revision; null for a version reference.")


class ResolveRead(BaseModel):
    name: str
    version: int
    environment: str | None = Field(description="Null when a specific version was asked for.")
    content: dict[str, Any]
    variables: list[str]
    placeholders: list[str]
    revision: int | None = Field(description="The release revision; null for a specific version.")
    deployed_at: datetime | None = Field(
        description="When this release was made; null for a specific version."
    )
    at: datetime | None = Field(default=None, description="The instant asked for with `?at=`.")
    experiment: dict[str, Any] | None = Field(
        default=None,
        description="Only while an experiment runs and no `unit` was given: its id, mode, seed, "
        "hash version, coverage and variants (key, version, weight, content), for SDKs to assign "
        "units locally. The top-level fields are the control's.",
    )
    assignment: dict[str, Any] | None = Field(
        default=None,
        description="Only while an experiment runs and a `unit` was given: `{experiment_id, variant, "
        "index}` of the variant served, or null fields when the unit is outside the experiment.",
    )
    includes: list[IncludeRead] | None = Field(
        default=None,
        description="Only for a composed prompt: every prompt it includes (nested ones too), with the "
        "version each reference resolved to and, for a label, that release's revision. An SDK "
        "refreshes this prompt when one of them changes.",
    )
    raw: bool | None = Field(default=None, description="True when `?resolve=false` asked for the raw text.")


class RenderRequest(RequestBody):
    name: PromptName
    environment: EnvironmentName | None = Field(
        default=None, description="Render what this environment serves (default: production)."
    )
    version: int | None = Field(default=None, ge=1, le=MAX_INT, description="Render this version instead.")
    variables: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> RenderRequest:
        if self.environment is not None and self.version is not None:
            raise ValueError("give either 'environment' or 'version', not both")
        return self


class RenderRead(BaseModel):
    name: str
    version: int
    environment: str | None
    type: Literal["text", "chat"]
    text: str | None = None
    messages: list[dict[str, Any]] | None = None
    config: dict[str, Any]


class EnvironmentCreate(RequestBody):
    name: EnvironmentName
    description: str = Field(default="", max_length=10_000)
    production: bool = Field(default=False, description="Versions it serves count as 'production'.")


class EnvironmentUpdate(RequestBody):
    """Description and policy; omitted fields stay as they are."""

    description: str | None = Field(default=None, max_length=10_000)
    production: bool | None = None
    protected: bool | None = Field(
        default=None, description="Deploying here needs an approved review (or an audited override)."
    )
    required_approvals: int | None = Field(
        default=None, ge=0, le=10, description="Distinct approvers, other than the author, a review needs."
    )
    allow_override: bool | None = Field(
        default=None, description="Admins may deploy without reviews, with a reason (audited as a warning)."
    )
    requires_environment: EnvironmentName | None = Field(
        default=None,
        description="A version must have been deployed to this environment first (e.g. 'staging').",
    )

    @model_validator(mode="after")
    def _no_nulls(self) -> EnvironmentUpdate:
        for name in ("production", "protected", "required_approvals", "allow_override", "description"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class EnvironmentRead(ReadModel):
    name: str
    description: str
    production: bool
    protected: bool
    required_approvals: int
    allow_override: bool
    requires_environment: str | None
    created_at: datetime


class ReferenceRead(BaseModel):
    name: str = Field(description="The prompt included.")
    label: str | None = Field(description="The environment followed (`label=`); null for `version=`.")
    version: int | None = Field(description="The version named (`version=`); null for `label=`.")
    field: str = Field(description="Where the tag is: `template` or `messages[i].content`.")
    resolves_to: int | None = Field(description="The version the reference resolves to now (null: broken).")
    error: str | None = Field(description="Why it does not resolve, when it does not.")


class IncludesRead(BaseModel):
    name: str
    version: int
    includes: list[ReferenceRead]


class DependantRead(BaseModel):
    prompt: str = Field(description="The prompt that includes this one.")
    version: int = Field(description="Its version holding the reference.")
    label: str | None = Field(description="The environment of this prompt it follows (null: a version).")
    target_version: int | None = Field(description="The version of this prompt it names, for `version=`.")
    environments: list[str] = Field(description="Where that version is live now.")


class DependantsRead(BaseModel):
    name: str
    dependants: list[DependantRead]
