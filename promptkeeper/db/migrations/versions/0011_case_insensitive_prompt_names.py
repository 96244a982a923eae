"""Prompt names keep their case and are unique per project regardless of it.

Names may now hold upper-case letters (`movieCritic`, `Support/ReplyDraft`, as Langfuse allows);
`prompts_project_name_ci` is a unique index on `(project_id, lower(name))`, so `movieCritic` and
`MovieCritic` cannot both exist (they would be one file on a case-insensitive file system, and one
prompt to a reader). Names written before this revision are all lower case, so the index cannot
fail on them; the upgrade still checks first and names any pair that would collide, instead of
failing with the driver's message.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "prompts_project_name_ci"


def upgrade() -> None:
    clashes = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT project_id, lower(name), count(*) FROM prompts "
                "GROUP BY project_id, lower(name) HAVING count(*) > 1 ORDER BY 1, 2"
            )
        )
        .fetchall()
    )
    if clashes:
        listed = ", ".join(f"project {p}: '{n}' ({c} spellings)" for p, n, c in clashes[:10])
        raise RuntimeError(
            "prompt names must be unique regardless of case, but these differ only in case: "
            f"{listed}; rename all but one of each, then upgrade again"
        )
    op.create_index(INDEX, "prompts", ["project_id", sa.text("lower(name)")], unique=True)


def downgrade() -> None:
    # Names with upper-case letters stay: the rules before 0011 did not let them be created, but
    # the older code reads them (lookups are exact either way).
    op.drop_index(INDEX, table_name="prompts")
