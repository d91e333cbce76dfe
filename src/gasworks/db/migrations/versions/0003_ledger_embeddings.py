"""guardrails: ledger rows say what kind of call they record (chat, embedding) and, for an
embedding, what it served (a document, a run)

Revision ID: 0003_ledger_embeddings
Revises: 0003_guardrails_leases
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_ledger_embeddings"
down_revision = "0003_guardrails_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("llm_ledger") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(16), nullable=False, server_default=sa.text("'chat'"))
        )
        batch.add_column(
            sa.Column(
                "served", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("llm_ledger") as batch:
        batch.drop_column("served")
        batch.drop_column("kind")
