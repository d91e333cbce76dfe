"""workflows: run owner leases (a run whose process died is found and marked interrupted)

Revision ID: 0006_workflow_run_leases
Revises: 0005_workflows
Create Date: 2026-12-02

Runs still ``running`` when this migration applies were started by a version without leases;
they get an expired lease, so the first sweep after the upgrade marks them ``RUN_INTERRUPTED``
instead of leaving them running forever (the process that started them is gone: upgrades
restart every process).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gasworks.db.types as gwt

revision = "0006_workflow_run_leases"
down_revision = "0005_workflows"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workflow_runs") as batch:
        batch.add_column(sa.Column("owner_id", sa.String(40), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", gwt.UTCDateTime(), nullable=True))
    op.create_index("ix_workflow_runs_lease", "workflow_runs", ["status", "lease_expires_at"])
    runs = sa.table(
        "workflow_runs",
        sa.column("status", sa.String),
        sa.column("started_at", gwt.UTCDateTime()),
        sa.column("lease_expires_at", gwt.UTCDateTime()),
    )
    op.execute(
        runs.update().where(runs.c.status == "running").values(lease_expires_at=runs.c.started_at)
    )


def downgrade() -> None:
    op.drop_index("ix_workflow_runs_lease", table_name="workflow_runs")
    with op.batch_alter_table("workflow_runs") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("owner_id")
