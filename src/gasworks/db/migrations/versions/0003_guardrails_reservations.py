"""guardrails: open budget reservations (released by a sweeper when a process dies mid-call)

Revision ID: 0003_guardrails_reservations
Revises: 0003_guardrails
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gasworks.db.types as gwt

revision = "0003_guardrails_reservations"
down_revision = "0003_guardrails"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "llm_budget_reservations",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("counters", gwt.JSONType, nullable=False),
        sa.Column("cost_units", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", gwt.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_llm_budget_reservations"),
    )
    op.create_index(
        "ix_llm_budget_reservations_expires_at", "llm_budget_reservations", ["expires_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_llm_budget_reservations_expires_at", table_name="llm_budget_reservations")
    op.drop_table("llm_budget_reservations")
