"""The history is append-only for DELETE too: versions, deployments, audit entries, prompts.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

0001 and 0002 refused UPDATE only, so a `DELETE FROM deployments` (an operator's psql, a script)
silently erased what ran when. These triggers refuse row deletes on both backends. `prompts` is
guarded too: every prompt has a version, and on SQLite a connection without `foreign_keys=ON`
would otherwise delete a prompt and orphan its history instead of cascading into the guards.

No code path deletes these rows (versions are never deleted, the Langfuse DELETE answers 409, and
there is no project, prompt or environment deletion), so nothing legitimate is refused. TRUNCATE
does not fire row triggers: it stays available to the table owner (the tests' cleanup uses it).
A later SQLite batch migration that rebuilds one of these tables must create its triggers again.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GUARDS = {
    "prompt_versions": "prompt versions are immutable and never deleted",
    "deployments": "the deployment history is append-only: rows are never deleted",
    "audit_log": "the audit log is append-only: entries are never deleted",
    "prompts": "prompts are never deleted: their history must answer what ran when",
}


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, message in GUARDS.items():
        if postgres:
            op.execute(
                f"""
                CREATE FUNCTION pk_reject_delete_{table}() RETURNS trigger AS $$
                BEGIN
                    RAISE EXCEPTION '{message}' USING ERRCODE = 'integrity_constraint_violation';
                END $$ LANGUAGE plpgsql
                """
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION pk_reject_delete_{table}()"
            )
        else:
            op.execute(
                f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in GUARDS:
        if postgres:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS pk_reject_delete_{table}()")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
