"""Outcomes from OTLP spans are stored once: the span they came from is a unique key per project.

An exporter resends a batch whose answer it did not get (timeout, 503), and the outcome events of
that batch would otherwise count twice in the experiment's rollup. Events posted by applications
have no span key and are not constrained (several outcomes per request id stay allowed).

The request id index becomes one of exposures only: ingestion looks up exposures by request id (to
tag their outcomes), never outcomes, and outcomes are most of the rows written (an index entry less
for each; untagged outcomes keep their own partial index).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("events", sa.Column("span_key", sa.String(length=48), nullable=True))
    op.create_index(
        "ux_events_span_key",
        "events",
        ["project_id", "span_key"],
        unique=True,
        postgresql_where=sa.text("span_key IS NOT NULL"),
        sqlite_where=sa.text("span_key IS NOT NULL"),
    )
    op.create_index(
        "ix_events_exposure_request",
        "events",
        ["project_id", "request_id"],
        postgresql_where=sa.text("kind = 'exposure'"),
        sqlite_where=sa.text("kind = 'exposure'"),
    )
    op.drop_index("ix_events_project_request", table_name="events")


def downgrade() -> None:
    op.create_index("ix_events_project_request", "events", ["project_id", "request_id"])
    op.drop_index("ix_events_exposure_request", table_name="events")
    op.drop_index("ux_events_span_key", table_name="events")
    op.drop_column("events", "span_key")
