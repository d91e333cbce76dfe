"""workflows: conversations belong to a workflow and a principal

A conversation was found by tenant and id alone, so a principal who could run one workflow
could read and extend another workflow's (or another user's) conversation by its id. Rows
are now stored under a key derived from workflow, principal and the caller's id
(``workflows.service.conversation_key``); ``client_id`` keeps the caller's id and
``principal_id`` who holds it. Rows written before keep their id as ``client_id`` and no
principal: they are no longer continued (nobody's key derives to them) and are kept for
reading by admins through the workflow's conversation list.

Revision ID: 0007_conversation_scope
Revises: 0006_workflow_run_leases
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_conversation_scope"
down_revision = "0006_workflow_run_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("client_id", sa.String(100), nullable=True))
        batch.add_column(sa.Column("principal_id", sa.String(40), nullable=True))
    op.execute("UPDATE conversations SET client_id = id, principal_id = ''")
    with op.batch_alter_table("conversations") as batch:
        batch.alter_column("client_id", existing_type=sa.String(100), nullable=False)
        batch.alter_column("principal_id", existing_type=sa.String(40), nullable=False)
        batch.create_index("ix_conversations_client", ["tenant_id", "client_id", "principal_id"])


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_index("ix_conversations_client")
        batch.drop_column("principal_id")
        batch.drop_column("client_id")
