"""Access routes: login sessions, API keys, project members (parse, call one service, commit)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, status

from promptkeeper.access import keys, users
from promptkeeper.access.models import ApiKey, Project, User
from promptkeeper.access.schemas import (
    KeyCreate,
    KeyCreated,
    KeyRead,
    LoginCreate,
    LoginRead,
    MemberCreate,
    MemberRead,
    MemberUpdate,
    MeRead,
    PasswordChange,
    UserRead,
)
from promptkeeper.access.service import Actor
from promptkeeper.api.deps import (
    RESOLVE_ROLES,
    Admin,
    ContextDep,
    IdPath,
    ReadDB,
    WriteDB,
    client_address,
    request_id,
    require,
)
from promptkeeper.api.error_responses import ERROR_RESPONSES
from promptkeeper.errors import Unauthorized

router = APIRouter(prefix="/v1", tags=["access"], responses=ERROR_RESPONSES)

#: Any valid credential, whatever its role (who am I, log out, change my password).
AnyCaller = Annotated[Actor, Depends(require(RESOLVE_ROLES, "use this API"))]
RequestId = Annotated[str, Depends(request_id)]


# --- sessions -----------------------------------------------------------------------------------


@router.post("/auth/login", status_code=status.HTTP_201_CREATED, response_model=LoginRead)
def login(
    body: LoginCreate, session: WriteDB, context: ContextDep, request_id: RequestId, request: Request
) -> LoginRead:
    """Exchange an email and password for a session token (no API key needed)."""
    address = client_address(request)
    context.auth.throttle.check_login(address, body.email)
    try:
        new, user, project, role = users.login(
            session=session,
            email=body.email,
            password=body.password,
            project=body.project,
            ttl_seconds=context.settings.session_ttl,
            request_id=request_id,
        )
    except Unauthorized:
        context.auth.throttle.login_failed(address, body.email)
        raise
    session.commit()
    context.auth.throttle.login_succeeded(address, body.email)
    assert new.key.expires_at is not None
    return LoginRead(
        token=new.secret,
        expires_at=new.key.expires_at,
        user=UserRead.model_validate(user),
        project=project.name,
        role=role,
    )


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(session: WriteDB, context: ContextDep, caller: AnyCaller) -> None:
    """End the login session used for this request."""
    keys.end_session(session=session, actor=caller)
    session.commit()
    context.auth.forget()


@router.get("/auth/me", response_model=MeRead)
def me(session: ReadDB, caller: AnyCaller) -> MeRead:
    """Who this credential is: name, role, project, and the user behind a session."""
    key = session.get(ApiKey, caller.key_id)
    project = session.get(Project, caller.project_id)
    user = session.get(User, caller.user_id) if caller.user_id is not None else None
    assert key is not None and project is not None  # the caller authenticated with them
    return MeRead(
        name=caller.name,
        role=caller.role,
        project=project.name,
        kind=key.kind,
        key_prefix=key.prefix,
        user=UserRead.model_validate(user) if user else None,
    )


@router.post("/auth/password", status_code=status.HTTP_204_NO_CONTENT)
def change_password(body: PasswordChange, session: WriteDB, context: ContextDep, caller: AnyCaller) -> None:
    """Change the password of the user whose session this is; their other sessions end (on other
    instances within `PROMPTKEEPER_AUTH_CACHE_TTL` seconds)."""
    users.change_password(session=session, actor=caller, current=body.current_password, new=body.new_password)
    session.commit()
    context.auth.forget()


# --- API keys -----------------------------------------------------------------------------------


@router.get("/keys", response_model=list[KeyRead])
def list_keys(
    session: ReadDB,
    caller: Admin,
    include_revoked: Annotated[bool, Query(description="Also list revoked keys.")] = False,
) -> list[KeyRead]:
    """The project's API keys (never their secrets)."""
    found = keys.list_keys(session=session, project_id=caller.project_id, include_revoked=include_revoked)
    return [KeyRead.model_validate(k) for k in found]


@router.post("/keys", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
def create_key(body: KeyCreate, session: WriteDB, caller: Admin) -> KeyCreated:
    """Create an API key; its secret is in this answer only."""
    new = keys.create_key(
        session=session, actor=caller, name=body.name, role=body.role, expires_at=body.expires_at
    )
    session.commit()
    return KeyCreated.of(new.key, secret=new.secret)


@router.delete("/keys/{key}", response_model=KeyRead)
def revoke_key(
    key: Annotated[str, Path(max_length=16, description="The key's id or visible prefix.")],
    session: WriteDB,
    context: ContextDep,
    caller: Admin,
) -> KeyRead:
    """Revoke a key (kept, with `revoked_at`, for the record). Other instances forget it within
    `PROMPTKEEPER_AUTH_CACHE_TTL` seconds."""
    revoked = keys.revoke_key(session=session, actor=caller, ref=key)
    session.commit()
    context.auth.forget()
    return KeyRead.model_validate(revoked)


# --- members ------------------------------------------------------------------------------------

UserId = IdPath


@router.get("/users", response_model=list[MemberRead])
def list_users(session: ReadDB, caller: Admin) -> list[MemberRead]:
    """The project's members and their roles."""
    return [
        MemberRead.of(m.user, role=m.role)
        for m in users.list_members(session=session, project_id=caller.project_id)
    ]


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=MemberRead)
def add_user(body: MemberCreate, session: WriteDB, caller: Admin) -> MemberRead:
    """Add a member: an existing account by email, or a new one when a password is given."""
    member = users.add_member(
        session=session,
        actor=caller,
        email=body.email,
        role=body.role,
        password=body.password,
        name=body.name,
    )
    session.commit()
    return MemberRead.of(member.user, role=member.role)


@router.patch("/users/{user_id}", response_model=MemberRead)
def change_user_role(
    user_id: UserId, body: MemberUpdate, session: WriteDB, context: ContextDep, caller: Admin
) -> MemberRead:
    """Change a member's role (their sessions follow within the auth cache TTL)."""
    member = users.change_role(session=session, actor=caller, user_id=user_id, role=body.role)
    session.commit()
    context.auth.forget()
    return MemberRead.of(member.user, role=member.role)


@router.delete("/users/{user_id}", response_model=UserRead)
def remove_user(user_id: UserId, session: WriteDB, context: ContextDep, caller: Admin) -> UserRead:
    """Remove a member from the project and end their sessions in it."""
    user = users.remove_member(session=session, actor=caller, user_id=user_id)
    session.commit()
    context.auth.forget()
    return UserRead.model_validate(user)
