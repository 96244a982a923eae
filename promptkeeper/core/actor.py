"""Who acts: a `Role` and the `Actor` recorded in histories and the audit log.

Plain values, in `core` so that the audit log (below access) records an actor without importing
access, which in turn records its own changes (keys, users) in the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """What a key or a member may do; see docs/api.md#roles."""

    viewer = "viewer"  # read everything, resolve, render
    runtime = "runtime"  # resolve, render (and log events): what an application gets
    editor = "editor"  # + create prompts, versions, drafts; deploy to unprotected environments
    approver = "approver"  # + approve reviews, deploy to protected environments
    admin = "admin"  # + keys, users, environments, policies, webhooks


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did something, as recorded in histories and the audit log.

    `identity` tells people apart for review rules: two keys of one user are one approver; a key
    minted through the API or the UI is whoever minted it (`owner_identity`), so an admin cannot
    mint extra reviewers; a key made by the operator (bootstrap, CLI) is its own identity.
    """

    name: str
    project_id: int
    role: Role
    key_id: int | None = None
    user_id: int | None = None
    request_id: str | None = None
    owner_identity: str | None = None

    @property
    def identity(self) -> str:
        if self.user_id is not None:
            return f"user:{self.user_id}"
        if self.owner_identity is not None:
            return self.owner_identity
        if self.key_id is not None:
            return f"key:{self.key_id}"
        return f"system:{self.name}"

    @classmethod
    def system(cls, name: str, project_id: int) -> Actor:
        """An operator or built-in process (CLI, sample data, automatic rollback)."""
        return cls(name=name, project_id=project_id, role=Role.admin)
