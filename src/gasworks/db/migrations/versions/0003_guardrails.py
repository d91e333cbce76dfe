"""guardrails: circuit breakers, breaker events, budgets and counters, the cost ledger

Revision ID: 0003_guardrails
Revises: 0001_foundation
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gasworks.db.types as gwt

revision = "0003_guardrails"
down_revision = "0001_foundation"
branch_labels = ("guardrails",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "llm_breakers",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state_changed_at", gwt.UTCDateTime(), nullable=False),
        sa.Column("probes_issued", sa.Integer(), nullable=False),
        sa.Column("probe_successes", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("changed_by", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_llm_breakers"),
    )
    op.create_table(
        "llm_breaker_buckets",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("bucket_start", sa.BigInteger(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("slow", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "generation", "bucket_start", name="pk_llm_breaker_buckets"),
    )
    op.create_table(
        "llm_breaker_events",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=False),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("manual", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=True),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("stats", gwt.JSONType, nullable=True),
        sa.Column("at", gwt.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_llm_breaker_events"),
    )
    op.create_index("ix_llm_breaker_events_key_at", "llm_breaker_events", ["key", "at"])
    op.create_table(
        "llm_budgets",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("api_key_id", sa.String(40), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("cost_limit", gwt.Money(), nullable=True),
        sa.Column("token_limit", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", gwt.UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_llm_budgets"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_llm_budgets_tenant_id_tenants",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("tenant_id", "api_key_id", "period", name="uq_llm_budgets_tenant_id"),
    )
    op.create_table(
        "llm_budget_counters",
        sa.Column("budget_id", sa.String(40), nullable=False),
        sa.Column("period_start", sa.String(10), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("cost_limit", gwt.Money(), nullable=True),
        sa.Column("token_limit", sa.BigInteger(), nullable=True),
        sa.Column("spent_cost", gwt.Money(), nullable=False),
        sa.Column("reserved_cost", gwt.Money(), nullable=False),
        sa.Column("spent_tokens", sa.BigInteger(), nullable=False),
        sa.Column("reserved_tokens", sa.BigInteger(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("budget_id", "period_start", name="pk_llm_budget_counters"),
        sa.ForeignKeyConstraint(
            ["budget_id"],
            ["llm_budgets.id"],
            name="fk_llm_budget_counters_budget_id_llm_budgets",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "llm_ledger",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("created_at", gwt.UTCDateTime(), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("api_key_id", sa.String(40), nullable=True),
        sa.Column("workflow_id", sa.String(64), nullable=True),
        sa.Column("node_id", sa.String(64), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("requested_model", sa.String(200), nullable=True),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost", gwt.Money(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("status", sa.String(64), nullable=False),
        sa.Column("estimated", sa.Boolean(), nullable=False),
        sa.Column("streamed", sa.Boolean(), nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_llm_ledger"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_llm_ledger_tenant_id_tenants",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_llm_ledger_tenant_day", "llm_ledger", ["tenant_id", "day"])
    op.create_index("ix_llm_ledger_tenant_model", "llm_ledger", ["tenant_id", "model"])


def downgrade() -> None:
    op.drop_index("ix_llm_ledger_tenant_model", table_name="llm_ledger")
    op.drop_index("ix_llm_ledger_tenant_day", table_name="llm_ledger")
    op.drop_table("llm_ledger")
    op.drop_table("llm_budget_counters")
    op.drop_table("llm_budgets")
    op.drop_index("ix_llm_breaker_events_key_at", table_name="llm_breaker_events")
    op.drop_table("llm_breaker_events")
    op.drop_table("llm_breaker_buckets")
    op.drop_table("llm_breakers")
