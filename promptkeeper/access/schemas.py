"""Bodies of the access API: login sessions, API keys, project members."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from promptkeeper.access.service import Role
from promptkeeper.core.bases import ReadModel, RequestBody


class LoginCreate(RequestBody):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    project: str | None = Field(
        default=None, max_length=64, description="Project to open a session in (needed if several)."
    )


class UserRead(ReadModel):
    id: int
    email: str
    name: str


class LoginRead(BaseModel):
    token: str = Field(description="Send as `Authorization: Bearer <token>`; shown once.")
    expires_at: datetime
    user: UserRead
    project: str
    role: Role


class PasswordChange(RequestBody):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class MeRead(BaseModel):
    name: str
    role: Role
    project: str
    kind: str = Field(description="`key` for an API key, `session` for a user's login session.")
    key_prefix: str
    user: UserRead | None


class KeyCreate(RequestBody):
    name: str = Field(min_length=1, max_length=128, pattern=r"^[^\s].*$")
    role: Role
    expires_at: datetime | None = Field(default=None, description="When the key stops working (UTC).")


class KeyRead(ReadModel):
    id: int
    name: str
    prefix: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyRead):
    secret: str = Field(description="The key itself; shown once, stored only as a hash.")


class MemberCreate(RequestBody):
    email: str = Field(min_length=3, max_length=254)
    role: Role
    password: str | None = Field(
        default=None, max_length=1024, description="Creates the account when the email has none yet."
    )
    name: str = Field(default="", max_length=128)


class MemberUpdate(RequestBody):
    role: Role


class MemberRead(ReadModel):
    id: int
    email: str
    name: str
    role: Role
