"""Users, their project memberships, passwords and login sessions.

Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106's second recommendation);
a login returns a session token that is an API key of `kind = "session"` bound to the user, so
every route authenticates one way. A session acts with the user's *current* membership role.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from promptkeeper.access.models import ApiKey, Membership, Project, User
from promptkeeper.access.service import (
    SESSION,
    Actor,
    NewKey,
    Role,
    create_api_key,
    get_project,
)
from promptkeeper.audit.service import record
from promptkeeper.db.base import utcnow
from promptkeeper.errors import Conflict, NotFound, Unauthorized, ValidationFailed

MIN_PASSWORD = 10
_hasher = PasswordHasher()
# Verifying against this when the email is unknown keeps the answer time the same either way.
_DUMMY_HASH = _hasher.hash("no such user, constant time")


@dataclass(frozen=True, slots=True)
class Member:
    user: User
    role: Role


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or len(email) > 254 or any(c.isspace() for c in email):
        raise ValidationFailed(f"email: {email[:80]!r} is not an email address", details={"field": "email"})
    return email


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed(
            f"password: must be at least {MIN_PASSWORD} characters", details={"field": "password"}
        )
    return _hasher.hash(password)


def _password_matches(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def find_user(*, session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == normalize_email(email)))


def create_user(*, session: Session, email: str, password: str, name: str = "") -> User:
    email = normalize_email(email)
    if find_user(session=session, email=email) is not None:
        raise Conflict(f"a user with email '{email}' already exists", details={"email": email})
    user = User(email=email, name=name, password_hash=hash_password(password))
    session.add(user)
    session.flush()
    return user


def _membership(session: Session, project_id: int, user_id: int) -> Membership | None:
    return session.scalar(
        select(Membership).where(Membership.project_id == project_id, Membership.user_id == user_id)
    )


def add_member(
    *,
    session: Session,
    actor: Actor,
    email: str,
    role: Role,
    password: str | None = None,
    name: str = "",
) -> Member:
    """Give a user a role in the actor's project, creating the user when `password` is given.

    An existing user keeps their password: an admin of one project cannot set the password of a
    user who also belongs to another.
    """
    user = find_user(session=session, email=email)
    if user is None:
        if password is None:
            raise ValidationFailed(
                f"password: '{normalize_email(email)}' has no account yet; give a password to create it",
                details={"field": "password"},
            )
        user = create_user(session=session, email=email, password=password, name=name)
    elif password is not None:
        raise Conflict(
            f"'{user.email}' already has an account: add them without a password",
            details={"email": user.email},
        )
    if _membership(session, actor.project_id, user.id) is not None:
        raise Conflict(f"'{user.email}' is already a member of this project", details={"email": user.email})
    session.add(Membership(project_id=actor.project_id, user_id=user.id, role=role.value))
    session.flush()
    record(
        session=session,
        actor=actor,
        action="member.added",
        target_type="user",
        target=user.email,
        after={"email": user.email, "role": role.value},
    )
    return Member(user, role)


def list_members(*, session: Session, project_id: int) -> list[Member]:
    rows = session.execute(
        select(User, Membership.role)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.project_id == project_id)
        .order_by(User.email)
    )
    return [Member(user, Role(role)) for user, role in rows]


def get_member(*, session: Session, project_id: int, user_id: int) -> tuple[User, Membership]:
    row = session.execute(
        select(User, Membership)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.project_id == project_id, User.id == user_id)
    ).first()
    if row is None:
        raise NotFound(f"user {user_id} not found in this project", details={"user": user_id})
    return row[0], row[1]


def _keep_an_admin(session: Session, project_id: int, user_id: int) -> None:
    """Refuse to remove the last admin member when no admin API key remains either."""
    admins = session.scalar(
        select(func.count())
        .select_from(Membership)
        .where(
            Membership.project_id == project_id,
            Membership.role == Role.admin.value,
            Membership.user_id != user_id,
        )
    )
    keys = session.scalar(
        select(func.count())
        .select_from(ApiKey)
        .where(
            ApiKey.project_id == project_id,
            ApiKey.role == Role.admin.value,
            ApiKey.kind != SESSION,
            ApiKey.revoked_at.is_(None),
        )
    )
    if not admins and not keys:
        raise Conflict("the project would have no admin left", details={"user": user_id})


def change_role(*, session: Session, actor: Actor, user_id: int, role: Role) -> Member:
    user, membership = get_member(session=session, project_id=actor.project_id, user_id=user_id)
    before = membership.role
    if before == Role.admin.value and role is not Role.admin:
        _keep_an_admin(session, actor.project_id, user_id)
    membership.role = role.value
    session.flush()
    if before != role.value:
        record(
            session=session,
            actor=actor,
            action="member.role_changed",
            target_type="user",
            target=user.email,
            before={"role": before},
            after={"role": role.value},
            severity="warning" if role is Role.admin else "info",
        )
    return Member(user, role)


def remove_member(*, session: Session, actor: Actor, user_id: int) -> User:
    """Remove a user from the project and end their sessions in it."""
    user, membership = get_member(session=session, project_id=actor.project_id, user_id=user_id)
    if membership.role == Role.admin.value:
        _keep_an_admin(session, actor.project_id, user_id)
    session.delete(membership)
    session.execute(
        update(ApiKey)
        .where(ApiKey.project_id == actor.project_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    session.flush()
    record(
        session=session,
        actor=actor,
        action="member.removed",
        target_type="user",
        target=user.email,
        before={"role": membership.role},
    )
    return user


def login(
    *,
    session: Session,
    email: str,
    password: str,
    project: str | None,
    ttl_seconds: float,
    request_id: str | None = None,
) -> tuple[NewKey, User, Project, Role]:
    """Check a password and open a session in `project` (or the user's only project)."""
    failure = Unauthorized("wrong email or password")
    try:
        user = find_user(session=session, email=email)
    except ValidationFailed:
        user = None
    if user is None:
        _password_matches(_DUMMY_HASH, password)
        raise failure
    if not _password_matches(user.password_hash, password) or user.disabled_at is not None:
        raise failure
    memberships: list[tuple[Project, str]] = [
        (row[0], row[1])
        for row in session.execute(
            select(Project, Membership.role)
            .join(Membership, Membership.project_id == Project.id)
            .where(Membership.user_id == user.id)
            .order_by(Project.name)
        )
    ]
    if project is not None:
        chosen = [(p, r) for p, r in memberships if p.name == project]
    else:
        chosen = memberships if len(memberships) == 1 else []
    if not chosen:
        names = [p.name for p, _ in memberships]
        if project is None and names:
            raise ValidationFailed(
                f"project: '{user.email}' belongs to several projects ({', '.join(names)}): name one",
                details={"field": "project", "projects": names},
            )
        raise Unauthorized(f"'{user.email}' is not a member of project '{project or '-'}'")
    project_row, role = chosen[0]
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    new = create_api_key(
        session=session,
        project=project_row,
        name=f"session:{user.email}"[:128],
        role=Role(role),
        expires_at=utcnow() + timedelta(seconds=ttl_seconds),
        user_id=user.id,
        kind=SESSION,
    )
    actor = Actor(
        name=user.email,
        project_id=project_row.id,
        role=Role(role),
        key_id=new.key.id,
        user_id=user.id,
        request_id=request_id,
    )
    record(
        session=session,
        actor=actor,
        action="session.created",
        target_type="session",
        target=new.key.prefix,
        after={"expires_at": new.key.expires_at.isoformat() if new.key.expires_at else None},
    )
    return new, user, project_row, Role(role)


def change_password(*, session: Session, actor: Actor, current: str, new: str) -> None:
    if actor.user_id is None:
        raise ValidationFailed("only a user's session can change a password; this is an API key")
    user = session.get(User, actor.user_id)
    if user is None or not _password_matches(user.password_hash, current):
        raise Unauthorized("current password is wrong")
    user.password_hash = hash_password(new)
    ended = end_sessions(session=session, user_id=user.id, keep=actor.key_id)
    session.flush()
    record(
        session=session,
        actor=actor,
        action="user.password_changed",
        target_type="user",
        target=user.email,
        after={"other_sessions_ended": ended},
    )


def end_sessions(*, session: Session, user_id: int, keep: int | None = None) -> int:
    """Revoke the user's open sessions in every project (but `keep`): after a password change,
    whoever signed in with the old password is out. Returns how many were ended."""
    query = update(ApiKey).where(
        ApiKey.user_id == user_id, ApiKey.kind == SESSION, ApiKey.revoked_at.is_(None)
    )
    if keep is not None:
        query = query.where(ApiKey.id != keep)
    return int(session.execute(query.values(revoked_at=utcnow())).rowcount)  # type: ignore[attr-defined]


def ensure_user(
    *, session: Session, project: str, email: str, password: str, role: Role, name: str = ""
) -> User:
    """Operator path (CLI): the user exists with that password and role in `project`."""
    project_row = get_project(session=session, name=project)
    user = find_user(session=session, email=email)
    if user is None:
        user = create_user(session=session, email=email, password=password, name=name)
    elif not _password_matches(user.password_hash, password):  # a reset: nobody stays signed in
        user.password_hash = hash_password(password)
        end_sessions(session=session, user_id=user.id)
    membership = _membership(session, project_row.id, user.id)
    if membership is None:
        session.add(Membership(project_id=project_row.id, user_id=user.id, role=role.value))
    else:
        membership.role = role.value
    session.flush()
    record(
        session=session,
        actor=Actor.system("cli", project_row.id),
        action="member.added",
        target_type="user",
        target=user.email,
        after={"email": user.email, "role": role.value},
    )
    return user
