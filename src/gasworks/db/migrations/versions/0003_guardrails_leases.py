"""guardrails: budget leases (per-process blocks of headroom) and their amounts on counters

Revision ID: 0003_guardrails_leases
Revises: 0003_guardrails_reservations
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gasworks.db.types as gwt

revision = "0003_guardrails_leases"
down_revision = "0003_guardrails_reservations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("llm_budget_counters") as batch:
        batch.add_column(
            sa.Column("leased_cost", gwt.Money(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(
            sa.Column("leased_tokens", sa.BigInteger(), nullable=False, server_default=sa.text("0"))
        )
    with op.batch_alter_table("llm_budget_reservations") as batch:
        batch.add_column(sa.Column("api_key_id", sa.String(40), nullable=True))
        batch.add_column(
            sa.Column("lease", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("owner", sa.String(120), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("llm_budget_reservations") as batch:
        batch.drop_column("owner")
        batch.drop_column("lease")
        batch.drop_column("api_key_id")
    with op.batch_alter_table("llm_budget_counters") as batch:
        batch.drop_column("leased_tokens")
        batch.drop_column("leased_cost")
