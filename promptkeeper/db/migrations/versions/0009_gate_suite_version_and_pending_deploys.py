"""Gates pin a suite version (or follow the head) and can run the evaluation a deploy needs.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

`eval_gates.suite_version` (null: the suite's current version) and `eval_gates.auto_run` (the run
settings used when a deploy finds no valid run; null: off). `pending_deployments` holds a deploy
that waits for those runs; the worker that finishes the last one deploys or refuses it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("eval_gates") as batch:
        batch.add_column(sa.Column("suite_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("auto_run", JSON, nullable=True))
    op.create_table(
        "pending_deployments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("baseline_run_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("actor_role", sa.String(length=16), nullable=False),
        sa.Column("actor_key_id", sa.Integer(), nullable=True),
        sa.Column("actor_user_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("review_id", sa.Integer(), nullable=True),
        sa.Column("expected_revision", sa.Integer(), nullable=True),
        sa.Column("deployment_id", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_pending_deployments_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            ["prompts.id"],
            name=op.f("fk_pending_deployments_prompt_id_prompts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environments.id"],
            name=op.f("fk_pending_deployments_environment_id_environments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["eval_runs.id"],
            name=op.f("fk_pending_deployments_run_id_eval_runs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["baseline_run_id"],
            ["eval_runs.id"],
            name=op.f("fk_pending_deployments_baseline_run_id_eval_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_deployments")),
    )
    with op.batch_alter_table("pending_deployments") as batch:
        batch.create_index(batch.f("ix_pending_deployments_project_id"), ["project_id"], unique=False)
        batch.create_index(batch.f("ix_pending_deployments_run_id"), ["run_id"], unique=False)
        batch.create_index(
            batch.f("ix_pending_deployments_baseline_run_id"), ["baseline_run_id"], unique=False
        )
        batch.create_index(
            "ix_pending_deployments_prompt", ["prompt_id", "environment_id", "status"], unique=False
        )


def downgrade() -> None:
    op.drop_table("pending_deployments")
    with op.batch_alter_table("eval_gates") as batch:
        batch.drop_column("auto_run")
        batch.drop_column("suite_version")
