"""Projects, API keys, roles, and who is acting (`Principal` for authentication, `Actor` for records).

Key format: `pk_<prefix>_<secret>`. The 8-character prefix is stored in clear (to find the key and
to show it in lists); the whole key is stored only as its sha256. API keys are 256-bit random
strings, so a fast hash is the right tool here (slow password hashes are for low-entropy secrets);
the stored hash is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from promptkeeper.access.models import ApiKey, Membership, Project, User
from promptkeeper.core.actor import Actor as Actor
from promptkeeper.core.actor import Role as Role
from promptkeeper.db.base import utcnow
from promptkeeper.errors import NotFound, Unauthorized

DEFAULT_PROJECT = "default"
KEY_SCHEME = "pk"
SESSION = "session"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the API key (or a user's login session), its project and its role."""

    key_id: int
    key_prefix: str
    name: str
    project_id: int
    project: str
    role: Role
    user_id: int | None = None
    kind: str = "key"
    expires_at: datetime | None = None  # the key's own expiry (remembered with it: see authenticator)
    owner_identity: str | None = None

    def actor(self, request_id: str | None = None) -> Actor:
        return Actor(
            name=self.name,
            project_id=self.project_id,
            role=self.role,
            key_id=self.key_id,
            user_id=self.user_id,
            request_id=request_id,
            owner_identity=self.owner_identity,
        )


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly created key; `secret` is shown once and never stored."""

    key: ApiKey
    secret: str


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def key_prefix(secret: str) -> str:
    """The lookup prefix: the middle part of `pk_<prefix>_<secret>`, or a digest for other shapes.

    Operators may set `PROMPTKEEPER_ADMIN_KEY` to a secret of their own choosing; such keys are
    found by a prefix derived from their hash instead.
    """
    parts = secret.split("_", 2)
    if len(parts) == 3 and parts[0] == KEY_SCHEME and 0 < len(parts[1]) <= 12 and parts[2]:
        return parts[1]
    return "h" + hash_key(secret)[:11]


def generate_secret() -> str:
    return f"{KEY_SCHEME}_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"


def get_project(*, session: Session, name: str) -> Project:
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        raise NotFound(f"project '{name}' not found")
    return project


def ensure_project(*, session: Session, name: str) -> tuple[Project, bool]:
    """The project called `name` and whether it was created now."""
    project = session.scalar(select(Project).where(Project.name == name))
    if project is not None:
        return project, False
    project = Project(name=name)
    session.add(project)
    session.flush()
    return project, True


def create_api_key(
    *,
    session: Session,
    project: Project,
    name: str,
    role: Role,
    expires_at: datetime | None = None,
    secret: str | None = None,
    user_id: int | None = None,
    kind: str = "key",
    owner_identity: str | None = None,
) -> NewKey:
    secret = secret or generate_secret()
    prefix = key_prefix(secret)
    key = ApiKey(
        project_id=project.id,
        name=name,
        prefix=prefix,
        key_hash=hash_key(secret),
        role=role.value,
        expires_at=expires_at,
        user_id=user_id,
        kind=kind,
        owner_identity=owner_identity,
    )
    session.add(key)
    session.flush()
    return NewKey(key=key, secret=secret)


def authenticate(*, session: Session, secret: str) -> Principal:
    """The principal of a presented key; `Unauthorized` for unknown, revoked or expired keys."""
    prefix = key_prefix(secret)
    row = session.execute(
        select(ApiKey, Project.name)
        .join(Project, Project.id == ApiKey.project_id)
        .where(ApiKey.prefix == prefix)
    ).first()
    if row is None or not hmac.compare_digest(row[0].key_hash, hash_key(secret)):
        raise Unauthorized("invalid API key")
    key, project_name = row
    what = "session" if key.kind == SESSION else "API key"
    if key.revoked_at is not None:
        raise Unauthorized(f"{what} has been revoked")
    if key.expires_at is not None and key.expires_at <= utcnow():
        raise Unauthorized(f"{what} has expired")
    name, role = key.name, Role(key.role)
    if key.user_id is not None:
        # A user's session acts with the user's current role in the project: removing the user
        # or lowering the role takes effect without revoking anything.
        member = session.execute(
            select(User.email, User.disabled_at, Membership.role)
            .join(Membership, Membership.user_id == User.id)
            .where(User.id == key.user_id, Membership.project_id == key.project_id)
        ).first()
        if member is None or member.disabled_at is not None:
            raise Unauthorized(f"the user of this {what} no longer has access to project '{project_name}'")
        name, role = member.email, Role(member.role)
    return Principal(
        key_id=key.id,
        key_prefix=key.prefix,
        name=name,
        project_id=key.project_id,
        project=project_name,
        role=role,
        user_id=key.user_id,
        kind=key.kind,
        expires_at=key.expires_at,
        owner_identity=key.owner_identity,
    )


def touch_key(*, session: Session, key_id: int) -> None:
    """Record use of a key (callers throttle this; it is not done per request)."""
    key = session.get(ApiKey, key_id)
    if key is not None:
        key.last_used_at = utcnow()


def ensure_admin_key(*, session: Session, project: Project, admin_key: str | None) -> str | None:
    """Make sure an admin key exists.

    With `admin_key` given, that key is registered (once) as an admin key of `project`. Without it,
    a key is generated only when the database has no key at all; the generated secret is returned
    so that the caller can print and store it, and is never retrievable again.
    """
    if admin_key is not None:
        if len(admin_key) < 16:
            raise ValueError("PROMPTKEEPER_ADMIN_KEY must be at least 16 characters long")
        prefix = key_prefix(admin_key)
        existing = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
        if existing is None:
            create_api_key(session=session, project=project, name="admin", role=Role.admin, secret=admin_key)
        elif not hmac.compare_digest(existing.key_hash, hash_key(admin_key)):
            raise ValueError("PROMPTKEEPER_ADMIN_KEY's prefix belongs to a different key")
        return None
    if session.scalar(select(func.count()).select_from(ApiKey)):
        return None
    return create_api_key(session=session, project=project, name="admin", role=Role.admin).secret
