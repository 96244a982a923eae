"""Managing a project's API keys (the audited operations behind `/v1/keys` and `promptkeeper keys`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from promptkeeper.access.models import ApiKey, Project
from promptkeeper.access.service import SESSION, Actor, NewKey, Role, create_api_key
from promptkeeper.audit.service import record
from promptkeeper.db.base import utcnow
from promptkeeper.errors import Conflict, NotFound, ValidationFailed


def create_key(
    *, session: Session, actor: Actor, name: str, role: Role, expires_at: datetime | None = None
) -> NewKey:
    if expires_at is not None and expires_at <= utcnow():
        raise ValidationFailed("expires_at: must be in the future", details={"field": "expires_at"})
    project = session.get(Project, actor.project_id)
    assert project is not None
    # minted by a credential: the new key acts for the same person (an operator's CLI keys do not)
    owner = actor.identity if actor.key_id is not None or actor.user_id is not None else None
    new = create_api_key(
        session=session, project=project, name=name, role=role, expires_at=expires_at, owner_identity=owner
    )
    record(
        session=session,
        actor=actor,
        action="key.created",
        target_type="api_key",
        target=new.key.prefix,
        after={
            "name": name,
            "role": role.value,
            "prefix": new.key.prefix,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
        severity="warning" if role is Role.admin else "info",
    )
    return new


def list_keys(*, session: Session, project_id: int, include_revoked: bool = False) -> list[ApiKey]:
    """The project's API keys (login sessions are not listed)."""
    query = select(ApiKey).where(ApiKey.project_id == project_id, ApiKey.kind != SESSION)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(query.order_by(ApiKey.id)))


def find_key(*, session: Session, project_id: int, ref: str) -> ApiKey:
    """A key of the project by id or by its visible prefix."""
    query = select(ApiKey).where(ApiKey.project_id == project_id, ApiKey.kind != SESSION)
    key = session.scalar(query.where(ApiKey.prefix == ref))
    # prefixes are hex, so one may be all digits: prefix first; isascii: int() refuses digits like "²"
    if key is None and ref.isascii() and ref.isdigit():
        key = session.scalar(query.where(ApiKey.id == int(ref)))
    if key is None:
        raise NotFound(f"API key '{ref}' not found", details={"key": ref})
    return key


def revoke_key(*, session: Session, actor: Actor, ref: str) -> ApiKey:
    key = find_key(session=session, project_id=actor.project_id, ref=ref)
    if key.revoked_at is not None:
        raise Conflict(f"API key '{key.prefix}' is already revoked", details={"key": key.prefix})
    if key.id == actor.key_id:
        raise Conflict("a key cannot revoke itself; use another admin key", details={"key": key.prefix})
    key.revoked_at = utcnow()
    session.flush()
    record(
        session=session,
        actor=actor,
        action="key.revoked",
        target_type="api_key",
        target=key.prefix,
        before={"name": key.name, "role": key.role},
    )
    return key


def end_session(*, session: Session, actor: Actor) -> None:
    """Log out: revoke the session the actor is using."""
    key = session.get(ApiKey, actor.key_id) if actor.key_id is not None else None
    if key is None or key.kind != SESSION:
        raise ValidationFailed("this credential is an API key, not a login session: revoke it instead")
    key.revoked_at = utcnow()
    session.flush()
    record(session=session, actor=actor, action="session.ended", target_type="session", target=key.prefix)
