"""Field types every API schema shares: names, bounds and the page envelope.

They sit in `core` (pure: pydantic only) because every domain's schemas, the HTTP plumbing and
the CLI validate names the same way; a domain's own schemas module would make each of them depend
on that domain.
"""

from __future__ import annotations

import re
from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, StringConstraints

#: The largest integer a column holds (PostgreSQL INTEGER). Ids, version numbers and counts sent to
#: us are bounded by it, so a larger one is a 422 naming the field, not a driver error (SQLite
#: raises OverflowError past 2**63, PostgreSQL "integer out of range" on insert).
MAX_INT = 2**31 - 1

#: Prompt names keep their case (`movieCritic`, `Support/ReplyDraft`) and are unique per project
#: regardless of case (`prompts_project_name_ci`): two names one letter-case apart would be one file
#: on a case-insensitive file system (prompts-as-files) and one prompt to a reader. ASCII only, no
#: `|` (Langfuse's composition separator), spaces or other characters a URL or file name must escape.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$"
ENVIRONMENT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_NAME_RE = re.compile(NAME_PATTERN)
_NAME_CHAR = re.compile(r"[A-Za-z0-9._/-]")


def check_prompt_name(name: str) -> str:
    """Names become URL path segments and file paths (prompts-as-files): no empty or dot segments."""
    if not _NAME_RE.fullmatch(name):  # fullmatch: `$` alone would let a trailing newline through
        rule = (
            "must be 1-128 characters of letters A-Z or a-z, digits, '.', '_', '-' and '/', "
            "starting with a letter or digit"
        )
        bad = next((c for c in name if not _NAME_CHAR.fullmatch(c)), None)
        raise ValueError(f"{rule} (not {bad!r})" if bad is not None else rule)
    segments = name.split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise ValueError("folders separated by '/' must be non-empty and not '.' or '..'")
    return name


def path_segment(name: str) -> str:
    """A prompt name as one URL path segment: `support/reply` travels as `support%2Freply`."""
    return name.replace("/", "%2F")


PromptName = Annotated[str, AfterValidator(check_prompt_name)]
EnvironmentName = Annotated[str, StringConstraints(pattern=ENVIRONMENT_PATTERN)]

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int
