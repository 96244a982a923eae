"""Monitoring: monitors, generation records, monitor scores, checks and alerts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
CLAIMABLE = sa.text("score_state IN ('pending', 'leased')")

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete="CASCADE"
    )


def _at(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "monitors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("sample_rate", sa.Float(), nullable=False),
        sa.Column("rules", JSON, nullable=False),
        sa.Column("window_size", sa.Integer(), nullable=False),
        sa.Column("min_sample", sa.Integer(), nullable=False),
        sa.Column("check_every", sa.Integer(), nullable=False),
        sa.Column("consecutive", sa.Integer(), nullable=False),
        sa.Column("alpha", sa.Float(), nullable=False),
        sa.Column("auto_rollback", sa.Boolean(), nullable=False),
        sa.Column("cooldown_seconds", sa.Float(), nullable=False),
        sa.Column("judge_provider", sa.String(length=64), nullable=True),
        sa.Column("judge_model", sa.String(length=128), nullable=True),
        _at("last_rollback_at", nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        _at("created_at"),
        _at("updated_at"),
        _fk("monitors", "project_id", "projects"),
        _fk("monitors", "prompt_id", "prompts"),
        _fk("monitors", "environment_id", "environments"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitors")),
        sa.UniqueConstraint("prompt_id", "environment_id", name="uq_monitors_prompt_env"),
    )
    op.create_index(op.f("ix_monitors_project_id"), "monitors", ["project_id"])

    op.create_table(
        "generations",
        sa.Column("id", ROW_ID, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        _at("at"),
        sa.Column("prompt", sa.String(length=128), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=True),
        sa.Column("variant", sa.String(length=64), nullable=True),
        sa.Column("unit", sa.String(length=128), nullable=True),
        sa.Column("input", JSON, nullable=True),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("thumbs", sa.SmallInteger(), nullable=True),
        sa.Column("rating", sa.Float(), nullable=True),
        sa.Column("edited", sa.Boolean(), nullable=True),
        sa.Column("regenerated", sa.Boolean(), nullable=True),
        sa.Column("monitor_id", sa.Integer(), nullable=True),
        sa.Column("score_state", sa.String(length=16), nullable=False),
        _at("lease_until", nullable=True),
        sa.Column("worker", sa.String(length=128), nullable=True),
        sa.Column("claims", sa.Integer(), nullable=False),
        _fk("generations", "project_id", "projects"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generations")),
        sa.UniqueConstraint("project_id", "request_id", name="uq_generations_request"),
    )
    op.create_index(
        "ix_generations_claimable", "generations", ["id"], postgresql_where=CLAIMABLE, sqlite_where=CLAIMABLE
    )
    op.create_index("ix_generations_monitor_version", "generations", ["monitor_id", "version", "at"])

    op.create_table(
        "monitor_scores",
        sa.Column("id", ROW_ID, nullable=False),
        sa.Column("monitor_id", sa.Integer(), nullable=False),
        sa.Column("generation_id", ROW_ID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("scorer", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        _at("at"),
        _at("scored_at"),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("detail", JSON, nullable=True),
        _fk("monitor_scores", "monitor_id", "monitors"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_scores")),
        sa.UniqueConstraint("generation_id", "scorer", name="uq_monitor_scores_generation_scorer"),
    )
    op.create_index("ix_monitor_scores_window", "monitor_scores", ["monitor_id", "version", "scorer", "at"])

    op.create_table(
        "monitor_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("monitor_id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("baseline_version", sa.Integer(), nullable=True),
        _at("at"),
        sa.Column("look", sa.Integer(), nullable=False),
        sa.Column("scored", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("acting", sa.String(length=16), nullable=False),
        sa.Column("findings", JSON, nullable=False),
        _fk("monitor_checks", "monitor_id", "monitors"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_checks")),
    )
    op.create_index("ix_monitor_checks_monitor", "monitor_checks", ["monitor_id", "deployment_id", "id"])

    op.create_table(
        "monitor_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("monitor_id", sa.Integer(), nullable=False),
        sa.Column("check_id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("baseline_version", sa.Integer(), nullable=True),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("scorer", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        _at("at"),
        sa.Column("evidence", JSON, nullable=False),
        sa.Column("rollback_to", sa.Integer(), nullable=True),
        sa.Column("rollback_deployment_id", sa.Integer(), nullable=True),
        sa.Column("rollback_note", sa.Text(), nullable=False),
        _fk("monitor_alerts", "monitor_id", "monitors"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_alerts")),
    )
    op.create_index("ix_monitor_alerts_monitor", "monitor_alerts", ["monitor_id", "id"])


def downgrade() -> None:
    for table in ("monitor_alerts", "monitor_checks", "monitor_scores", "generations", "monitors"):
        op.drop_table(table)
