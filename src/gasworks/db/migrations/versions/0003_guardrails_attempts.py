"""guardrails: the attempt number and the prompt version of each ledger row

Revision ID: 0003_guardrails_attempts
Revises: 0003_ledger_embeddings
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_guardrails_attempts"
down_revision = "0003_ledger_embeddings"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("llm_ledger") as batch:
        # 1 for a call's first provider attempt: requests = rows with attempt 1
        batch.add_column(
            sa.Column("attempt", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
        batch.add_column(sa.Column("prompt_version_id", sa.String(40), nullable=True))
    op.create_index(
        "ix_llm_ledger_tenant_prompt_version", "llm_ledger", ["tenant_id", "prompt_version_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_llm_ledger_tenant_prompt_version", table_name="llm_ledger")
    with op.batch_alter_table("llm_ledger") as batch:
        batch.drop_column("prompt_version_id")
        batch.drop_column("attempt")
