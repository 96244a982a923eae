"""Prompt composition: the references of each version, so a prompt's dependants are one lookup.

Older versions have no rows (nothing could be composed before this revision); a tag already in
their text is expanded when they are served and a broken one fails the resolve (docs/composition.md).

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "prompt_references",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "version_id",
            sa.Integer(),
            sa.ForeignKey("prompt_versions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "project_id", sa.Integer(), sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("target_name", sa.String(length=255), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=True),
        sa.Column("target_version", sa.Integer(), nullable=True),
        sa.Column("field", sa.String(length=64), nullable=False),
    )
    op.create_index("ix_prompt_references_target", "prompt_references", ["project_id", "target_name"])
    op.create_index("ix_prompt_references_version_id", "prompt_references", ["version_id"])


def downgrade() -> None:
    op.drop_index("ix_prompt_references_version_id", table_name="prompt_references")
    op.drop_index("ix_prompt_references_target", table_name="prompt_references")
    op.drop_table("prompt_references")
