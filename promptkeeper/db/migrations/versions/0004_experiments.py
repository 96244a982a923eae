"""Experiments: experiments, events, sticky assignments, custom metrics; deployments.experiment_id.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUNNING = sa.text("status = 'running'")
# The per-unit rollup's outcome columns, as of this revision (copied, not imported: migrations
# describe the schema as it was).
UNIT_FLAGS = ("completed", "thumbs", "edited", "regenerated", "safety_flag")
UNIT_NUMBERS = ("rating", "latency_ms", "ttft_ms", "input_tokens", "output_tokens", "cost_usd")
UNTAGGED = sa.text("experiment_id IS NULL AND kind = 'outcome'")


def upgrade() -> None:
    # A plain nullable column: ADD COLUMN on both backends, no table rebuild (deployments is
    # referenced and protected by a no-UPDATE trigger).
    op.add_column("deployments", sa.Column("experiment_id", sa.Integer(), nullable=True))

    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("hypothesis", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("seed", sa.String(length=64), nullable=False),
        sa.Column("hash_version", sa.Integer(), nullable=False),
        sa.Column("coverage", sa.Float(), nullable=False),
        sa.Column("variants", JSON, nullable=False),
        sa.Column("primary_metric", sa.String(length=64), nullable=False),
        sa.Column("guardrails", JSON, nullable=False),
        sa.Column("alpha", sa.Float(), nullable=False),
        sa.Column("power", sa.Float(), nullable=False),
        sa.Column("mde", sa.Float(), nullable=False),
        sa.Column("mde_relative", sa.Boolean(), nullable=False),
        sa.Column("baseline", sa.Float(), nullable=True),
        sa.Column("std_dev", sa.Float(), nullable=True),
        sa.Column("planned_sample_size", sa.Integer(), nullable=False),
        sa.Column("sequential", sa.Boolean(), nullable=False),
        sa.Column("stop_on_guardrail", sa.Boolean(), nullable=False),
        sa.Column("burn_in", sa.Integer(), nullable=False),
        sa.Column("min_share", sa.Float(), nullable=False),
        sa.Column("weight_history", JSON, nullable=False),
        sa.Column("weights_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("release_revision", sa.Integer(), nullable=True),
        sa.Column("decision", sa.String(length=32), nullable=True),
        sa.Column("decision_variant", sa.String(length=64), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_experiments_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["prompt_id"], ["prompts.id"], name=op.f("fk_experiments_prompt_id_prompts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environments.id"],
            name=op.f("fk_experiments_environment_id_environments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
    )
    op.create_index(op.f("ix_experiments_project_id"), "experiments", ["project_id"])
    op.create_index(
        "ix_experiments_one_running",
        "experiments",
        ["prompt_id", "environment_id"],
        unique=True,
        postgresql_where=RUNNING,
        sqlite_where=RUNNING,
    )

    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=True),
        sa.Column("variant", sa.SmallInteger(), nullable=True),
        sa.Column("unit", sa.String(length=128), nullable=True),
        sa.Column("prompt", sa.String(length=128), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("completed", sa.Boolean(), nullable=True),
        sa.Column("thumbs", sa.SmallInteger(), nullable=True),
        sa.Column("rating", sa.Float(), nullable=True),
        sa.Column("edited", sa.Boolean(), nullable=True),
        sa.Column("regenerated", sa.Boolean(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("safety_flag", sa.Boolean(), nullable=True),
        sa.Column("custom", JSON, nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_events_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index("ix_events_experiment_unit", "events", ["experiment_id", "unit"])
    op.create_index("ix_events_project_request", "events", ["project_id", "request_id"])
    op.create_index(
        "ix_events_untagged",
        "events",
        ["project_id", "request_id"],
        postgresql_where=UNTAGGED,
        sqlite_where=UNTAGGED,
    )

    op.create_table(
        "experiment_units",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("unit", sa.String(length=128), nullable=False),
        sa.Column("variant_min", sa.SmallInteger(), nullable=False),
        sa.Column("variant_max", sa.SmallInteger(), nullable=False),
        sa.Column("exposures", sa.Integer(), nullable=False),
        sa.Column("first_exposure_at", sa.DateTime(timezone=True), nullable=True),
        *[sa.Column(f"{name}_max", sa.SmallInteger(), nullable=True) for name in UNIT_FLAGS],
        *[
            column
            for name in UNIT_NUMBERS
            for column in (
                sa.Column(f"{name}_sum", sa.Float(), nullable=False),
                sa.Column(f"{name}_n", sa.Integer(), nullable=False),
            )
        ],
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name=op.f("fk_experiment_units_experiment_id_experiments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("experiment_id", "unit", name=op.f("pk_experiment_units")),
    )

    op.create_table(
        "experiment_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("unit", sa.String(length=128), nullable=False),
        sa.Column("variant", sa.SmallInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name=op.f("fk_experiment_assignments_experiment_id_experiments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_assignments")),
        sa.UniqueConstraint(
            "experiment_id", "unit", name=op.f("uq_experiment_assignments_experiment_id_unit")
        ),
    )

    op.create_table(
        "experiment_metrics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("higher_is_better", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_experiment_metrics_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_metrics")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_experiment_metrics_project_id_name")),
    )


def downgrade() -> None:
    op.drop_table("experiment_metrics")
    op.drop_table("experiment_assignments")
    op.drop_table("experiment_units")
    op.drop_index("ix_events_untagged", table_name="events")
    op.drop_index("ix_events_project_request", table_name="events")
    op.drop_index("ix_events_experiment_unit", table_name="events")
    op.drop_table("events")
    op.drop_index("ix_experiments_one_running", table_name="experiments")
    op.drop_index(op.f("ix_experiments_project_id"), table_name="experiments")
    op.drop_table("experiments")
    with op.batch_alter_table("deployments") as batch_op:
        batch_op.drop_column("experiment_id")
