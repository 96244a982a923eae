"""Who a minted API key acts for, and who wrote each version: reviews count people.

`api_keys.owner_identity`: the identity of whoever minted the key through the API or the UI (two
approver keys minted by one admin are that admin, one reviewer). `prompt_versions.author_identity`:
the writer of a version, who may never approve it. Both nullable: older keys stay their own
identity, and older versions fall back to their author's name.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("owner_identity", sa.String(length=64), nullable=True))
    op.add_column("prompt_versions", sa.Column("author_identity", sa.String(length=64), nullable=True))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35+), not batch mode: batch recreates the table on SQLite, and
    # the copy would lose prompt_versions' update and delete guards (migrations 0001 and 0008).
    op.execute("ALTER TABLE prompt_versions DROP COLUMN author_identity")
    op.execute("ALTER TABLE api_keys DROP COLUMN owner_identity")
