"""workflows: fewer indexes to maintain per run row (issue #19)

Every finished run inserts one ``workflow_runs`` row, and each index of the table is one more
B-tree to update in that insert.

* ``ix_workflow_runs_lease`` (status, lease deadline) held every run, finished ones included,
  though only ``running`` runs have a lease: it becomes ``ix_workflow_runs_running_lease``, a
  partial index on the deadline of running runs only (``WHERE status = 'running'``, on SQLite
  and PostgreSQL). A run inserted finished (every non-streamed run) never enters it; a
  streamed run enters it while it runs and leaves it when it finishes. The queries it serves
  (the sweep's expired leases, the heartbeat's renewal) name ``status = 'running'`` as a
  literal, so PostgreSQL's planner matches the partial index in generic plans too.
* ``ix_workflow_runs_tenant_prompt_version`` (0008) served no query: runs are never looked up
  by prompt version (a prompt version's usage is answered by the ledger, which has its own
  index). Dropped.

Revision ID: 0009_run_indexes
Revises: 0008_run_prompt_version
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_run_indexes"
down_revision = "0008_run_prompt_version"
branch_labels = None
depends_on = None

RUNNING = "status = 'running'"


def upgrade() -> None:
    op.drop_index("ix_workflow_runs_tenant_prompt_version", table_name="workflow_runs")
    op.drop_index("ix_workflow_runs_lease", table_name="workflow_runs")
    op.create_index(
        "ix_workflow_runs_running_lease",
        "workflow_runs",
        ["lease_expires_at"],
        sqlite_where=sa.text(RUNNING),
        postgresql_where=sa.text(RUNNING),
    )


def downgrade() -> None:
    op.drop_index("ix_workflow_runs_running_lease", table_name="workflow_runs")
    op.create_index("ix_workflow_runs_lease", "workflow_runs", ["status", "lease_expires_at"])
    op.create_index(
        "ix_workflow_runs_tenant_prompt_version",
        "workflow_runs",
        ["tenant_id", "prompt_version_id"],
    )
