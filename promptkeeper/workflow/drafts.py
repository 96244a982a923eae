"""Drafts: working copies of a prompt's content, merged back as new versions.

A draft is forked from `base_version` and edited freely (each edit bumps its `revision`, so two
people editing one draft never silently overwrite each other). Merging runs a three-way merge of
base, draft ("ours") and the prompt's current head ("theirs") under the prompt row lock, so two
drafts of the same base merged at the same moment are applied one after the other: the second one
merges against the version the first created, and only edits that really overlap are a conflict.

Every function takes an explicit session and leaves the commit to the caller; a function that
raises has changed nothing the caller would commit.
"""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from promptkeeper.access.service import Actor
from promptkeeper.audit.service import record
from promptkeeper.core.content import ChatContent, TextContent, content_hash
from promptkeeper.core.diff import ContentDiff, diff_contents
from promptkeeper.core.merge import MergeConflict, merge_documents
from promptkeeper.db.base import utcnow
from promptkeeper.errors import Conflict, NotFound, ValidationFailed
from promptkeeper.prompts.models import Prompt, PromptVersion
from promptkeeper.prompts.service import checked_content, create_version, get_version, parse_content
from promptkeeper.workflow.models import Draft
from promptkeeper.workflow.schemas import DraftCreate, DraftStatusFilter, DraftUpdate


def get_draft(*, session: Session, prompt: Prompt, draft_id: int, lock: bool = False) -> Draft:
    """Draft `draft_id` of `prompt`; with `lock=True` its row is locked until the transaction ends.

    A draft of another prompt or project is "not found" like a missing one, so ids reveal nothing.
    """
    query = select(Draft).where(
        Draft.id == draft_id, Draft.prompt_id == prompt.id, Draft.project_id == prompt.project_id
    )
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    draft = session.scalar(query)
    if draft is None:
        raise NotFound(f"draft {draft_id} not found", details={"prompt": prompt.name, "draft": draft_id})
    return draft


def list_drafts(
    *,
    session: Session,
    prompt: Prompt,
    status: DraftStatusFilter = "open",
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Draft], int]:
    """Drafts of a prompt, newest first."""
    query = select(Draft).where(Draft.prompt_id == prompt.id, Draft.project_id == prompt.project_id)
    if status != "all":
        query = query.where(Draft.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = session.scalars(query.order_by(Draft.id.desc()).limit(limit).offset(offset))
    return list(items), total


def draft_diff(*, session: Session, prompt: Prompt, draft: Draft) -> ContentDiff:
    """What the draft changes relative to the version it was forked from."""
    base = get_version(session=session, prompt=prompt, number=draft.base_version)
    return diff_contents(
        base.content, draft.content, from_label=f"v{draft.base_version}", to_label=f"draft-{draft.id}"
    )


def create_draft(*, session: Session, actor: Actor, prompt: Prompt, data: DraftCreate) -> Draft:
    """Fork a draft from `data.base_version` (default: the head), starting from its content unless given."""
    base_number = data.base_version if data.base_version is not None else prompt.head_version
    base = get_version(session=session, prompt=prompt, number=base_number)
    document = copy.deepcopy(base.content) if data.content is None else checked_content(data.content)[0]
    now = utcnow()
    draft = Draft(
        project_id=prompt.project_id,
        prompt_id=prompt.id,
        base_version=base.number,
        content=document,
        title=data.title,
        author=actor.name,
        author_identity=actor.identity,
        status="open",
        merged_version=None,
        revision=1,
        created_at=now,
        updated_at=now,
    )
    session.add(draft)
    session.flush()
    _record(session, actor, prompt, draft, "draft.created", before=None, after=_summary(draft))
    return draft


def update_draft(
    *, session: Session, actor: Actor, prompt: Prompt, draft_id: int, data: DraftUpdate
) -> Draft:
    """Apply the fields given; an edit that changes nothing leaves the revision (and the audit log) alone."""
    draft = _open_draft(session, prompt, draft_id, data.expected_revision, doing="edited")
    before = _summary(draft)
    if data.content is not None:
        draft.content = checked_content(data.content)[0]
    if data.title is not None:
        draft.title = data.title
    if data.base_version is not None:
        draft.base_version = get_version(session=session, prompt=prompt, number=data.base_version).number
    after = _summary(draft)
    changed = [key for key in after if after[key] != before[key]]
    if not changed:
        return draft
    draft.revision += 1
    draft.updated_at = utcnow()
    session.flush()
    _record(
        session,
        actor,
        prompt,
        draft,
        "draft.updated",
        before={"revision": before["revision"], **{key: before[key] for key in changed}},
        after={"revision": draft.revision, **{key: after[key] for key in changed}},
    )
    return draft


def discard_draft(*, session: Session, actor: Actor, prompt: Prompt, draft_id: int) -> Draft:
    """Mark an open draft discarded; the row stays for history."""
    draft = _open_draft(session, prompt, draft_id, None, doing="discarded")
    draft.status = "discarded"
    draft.updated_at = utcnow()
    session.flush()
    _record(
        session,
        actor,
        prompt,
        draft,
        "draft.discarded",
        before={"status": "open", "revision": draft.revision},
        after={"status": "discarded"},
    )
    return draft


def merge_draft(
    *,
    session: Session,
    actor: Actor,
    prompt: Prompt,
    draft_id: int,
    message: str | None = None,
    expected_revision: int | None = None,
) -> tuple[Draft, PromptVersion]:
    """Merge an open draft onto the head as a new version.

    `prompt` must have been loaded with `lock=True`: the head the merge is computed against must
    still be the head when the version is appended. Head == base is a fast-forward; otherwise a
    three-way merge. Overlapping edits, a merge result that is not valid content, or a result
    identical to the head are conflicts (409) and leave the draft open and unchanged.
    """
    draft = _open_draft(session, prompt, draft_id, expected_revision, doing="merged")
    head = get_version(session=session, prompt=prompt, number=prompt.head_version)
    fast_forward = head.number == draft.base_version
    if fast_forward:
        merged = draft.content
    else:
        base = get_version(session=session, prompt=prompt, number=draft.base_version)
        result = merge_documents(base.content, draft.content, head.content)
        if not result.clean:
            conflicts = _in_field_order(result.conflicts)
            where = ", ".join(_where(conflict) for conflict in conflicts)
            raise Conflict(
                f"draft {draft.id} (forked from version {draft.base_version}) cannot be merged onto "
                f"version {head.number}: conflicts in {where}; resolve them in the draft, set its "
                f"base_version to {head.number} and merge again",
                details={
                    "conflicts": [conflict.as_dict() for conflict in conflicts],
                    "head_version": head.number,
                    "base_version": draft.base_version,
                },
            )
        merged = result.merged
    content, document = _merged_content(merged, draft, head.number)
    if content_hash(document) == head.content_hash:
        raise Conflict(
            f"nothing to merge: draft {draft.id} gives the content of version {head.number}",
            details={"head_version": head.number, "base_version": draft.base_version},
        )
    version = create_version(
        session=session,
        prompt=prompt,
        content=content,
        actor=actor,
        message=message if message is not None else _merge_message(draft),
        base_version=head.number,
    )
    draft.status = "merged"
    draft.merged_version = version.number
    draft.updated_at = utcnow()
    session.flush()
    _record(
        session,
        actor,
        prompt,
        draft,
        "draft.merged",
        before={"status": "open", "revision": draft.revision, "base_version": draft.base_version},
        after={
            "status": "merged",
            "version": version.number,
            "head_version": head.number,
            "fast_forward": fast_forward,
            "content_hash": version.content_hash,
        },
    )
    return draft, version


# --- helpers --------------------------------------------------------------------------------------


def _open_draft(
    session: Session, prompt: Prompt, draft_id: int, expected_revision: int | None, *, doing: str
) -> Draft:
    """The draft, locked, after checking it can still change and is the revision the caller saw."""
    draft = get_draft(session=session, prompt=prompt, draft_id=draft_id, lock=True)
    if draft.status != "open":
        raise Conflict(
            f"draft {draft.id} is {draft.status}; only open drafts can be {doing}",
            details={"draft": draft.id, "status": draft.status},
        )
    if expected_revision is not None and expected_revision != draft.revision:
        raise Conflict(
            f"draft {draft.id} is at revision {draft.revision}, not {expected_revision}: "
            "someone else changed it; reload it and reapply your edit",
            details={"draft": draft.id, "revision": draft.revision, "expected_revision": expected_revision},
        )
    return draft


def _merged_content(
    merged: dict[str, Any], draft: Draft, head_number: int
) -> tuple[TextContent | ChatContent, dict[str, Any]]:
    """The merge result as validated content and its stored document; invalid content is a conflict.

    Two edits that are fine on their own can combine into something invalid (the same placeholder
    added on both sides, a Jinja block opened on one side and closed differently on the other); the
    caller sent nothing wrong, so this is a 409 that tells them to resolve it in the draft.
    """
    try:
        content = parse_content(merged)
        document = checked_content(content)[0]
    except ValidationFailed as exc:
        invalid = _error_summary(exc)
        reasons = "; ".join(f"{e['field']}: {e['message']}" for e in invalid.get("errors", [])[:3])
        raise Conflict(
            f"merging draft {draft.id} onto version {head_number} gives invalid content "
            f"({reasons or exc.message}); edit the draft against version {head_number}, set its "
            f"base_version to {head_number} and merge again",
            details={
                "conflicts": [],
                "head_version": head_number,
                "base_version": draft.base_version,
                "invalid": invalid,
            },
        ) from None
    return content, document


def _error_summary(exc: ValidationFailed) -> dict[str, Any]:
    """The parts of a validation error's details that explain an invalid merge result."""
    summary: dict[str, Any] = {k: exc.details[k] for k in ("field", "line", "error") if k in exc.details}
    if "errors" in exc.details:  # already JSON-safe (`errors.field_errors`)
        summary["errors"] = exc.details["errors"]
    return summary


_FIELD_ORDER = ("type", "template", "messages", "examples", "config", "response_schema")


def _in_field_order(conflicts: list[MergeConflict]) -> list[MergeConflict]:
    """Conflicts in the order fields appear in a content document, whatever order storage gave keys.

    PostgreSQL's JSONB reorders object keys, and the merge walks keys in the order it finds them.
    """

    def rank(conflict: MergeConflict) -> int:
        top = conflict.path.split(".", 1)[0].split("[", 1)[0]
        return _FIELD_ORDER.index(top) if top in _FIELD_ORDER else len(_FIELD_ORDER)

    return sorted(conflicts, key=rank)


def _where(conflict: MergeConflict) -> str:
    """`messages[1].content (lines 3-4)`: the path, and for line conflicts where it is in the draft."""
    if conflict.kind != "lines" or conflict.ours_lines is None:
        return conflict.path
    unit = "item" if isinstance(conflict.base, list) else "line"
    start, end = conflict.ours_lines
    if end < start:  # the draft has nothing there (it deleted those lines)
        return f"{conflict.path} (at {unit} {start})"
    if end == start:
        return f"{conflict.path} ({unit} {start})"
    return f"{conflict.path} ({unit}s {start}-{end})"


def _merge_message(draft: Draft) -> str:
    return f"Merge draft #{draft.id}: {draft.title}" if draft.title else f"Merge draft #{draft.id}"


def _summary(draft: Draft) -> dict[str, Any]:
    """What the audit log keeps of a draft: enough to follow its history, never the content itself."""
    return {
        "title": draft.title,
        "base_version": draft.base_version,
        "revision": draft.revision,
        "content_hash": content_hash(draft.content),
    }


def _record(
    session: Session,
    actor: Actor,
    prompt: Prompt,
    draft: Draft,
    action: str,
    *,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    record(
        session=session,
        actor=actor,
        action=action,
        target_type="draft",
        target=f"{prompt.name}#{draft.id}",
        prompt=prompt.name,
        before=before,
        after=after,
    )
