"""workflows: the prompt version a run used

``workflow_runs.prompt_version_id``: the prompt version that answered the run (that of its
last model call that resolved a stored prompt version; each call's own version is on its
ledger row). Null for runs without such a call and for runs written before this revision.

Revision ID: 0008_run_prompt_version
Revises: 0007_conversation_scope
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_run_prompt_version"
down_revision = "0007_conversation_scope"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workflow_runs") as batch:
        batch.add_column(sa.Column("prompt_version_id", sa.String(40), nullable=True))
        batch.create_index(
            "ix_workflow_runs_tenant_prompt_version", ["tenant_id", "prompt_version_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("workflow_runs") as batch:
        batch.drop_index("ix_workflow_runs_tenant_prompt_version")
        batch.drop_column("prompt_version_id")
