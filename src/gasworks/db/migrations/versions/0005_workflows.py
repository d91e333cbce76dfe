"""workflows: workflows, versions, shares, runs, run events, conversations

Revision ID: 0005_workflows
Revises: 0001_foundation
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gasworks.db.types as gwt

revision = "0005_workflows"
down_revision = "0001_foundation"
branch_labels = ("workflows",)
depends_on = None


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="CASCADE"
    )


def _workflow_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["workflow_id"],
        ["workflows.id"],
        name=f"fk_{table}_workflow_id_workflows",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "workflows",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("owner_id", sa.String(40), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("created_at", gwt.UTCDateTime(), nullable=False),
        sa.Column("updated_at", gwt.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workflows"),
        _tenant_fk("workflows"),
        sa.UniqueConstraint("tenant_id", "slug", name="uq_workflows_tenant_id"),
    )
    op.create_table(
        "workflow_versions",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("workflow_id", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", gwt.JSONType, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(40), nullable=False),
        sa.Column("created_at", gwt.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workflow_versions"),
        _tenant_fk("workflow_versions"),
        _workflow_fk("workflow_versions"),
        sa.UniqueConstraint("workflow_id", "version", name="uq_workflow_versions_workflow_id"),
    )
    op.create_table(
        "workflow_shares",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("workflow_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("created_at", gwt.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workflow_shares"),
        _tenant_fk("workflow_shares"),
        _workflow_fk("workflow_shares"),
        sa.UniqueConstraint(
            "workflow_id", "kind", "subject", name="uq_workflow_shares_workflow_id"
        ),
    )
    op.create_table(
        "workflow_runs",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("workflow_id", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("principal_id", sa.String(40), nullable=True),
        sa.Column("conversation_id", sa.String(100), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("inputs", gwt.JSONType, nullable=False),
        sa.Column("output", gwt.JSONType, nullable=True),
        sa.Column("error", gwt.JSONType, nullable=True),
        sa.Column("node_timings", gwt.JSONType, nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("cost", gwt.Money(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("started_at", gwt.UTCDateTime(), nullable=False),
        sa.Column("finished_at", gwt.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_workflow_runs"),
        _tenant_fk("workflow_runs"),
        _workflow_fk("workflow_runs"),
    )
    op.create_index(
        "ix_workflow_runs_tenant_workflow",
        "workflow_runs",
        ["tenant_id", "workflow_id", "started_at"],
    )
    op.create_table(
        "workflow_run_events",
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("data", gwt.JSONType, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "seq", name="pk_workflow_run_events"),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["workflow_runs.id"],
            name="fk_workflow_run_events_run_id_workflow_runs",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "conversations",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("workflow_id", sa.String(40), nullable=False),
        sa.Column("turn", sa.Integer(), nullable=False),
        sa.Column("data", gwt.JSONType, nullable=False),
        sa.Column("created_at", gwt.UTCDateTime(), nullable=False),
        sa.Column("updated_at", gwt.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_conversations"),
        _tenant_fk("conversations"),
    )
    op.create_table(
        "conversation_messages",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("conversation_id", sa.String(100), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("run_id", sa.String(40), nullable=True),
        sa.Column("created_at", gwt.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "conversation_id", "seq", name="pk_conversation_messages"
        ),
    )


def downgrade() -> None:
    op.drop_table("conversation_messages")
    op.drop_table("conversations")
    op.drop_table("workflow_run_events")
    op.drop_index("ix_workflow_runs_tenant_workflow", table_name="workflow_runs")
    op.drop_table("workflow_runs")
    op.drop_table("workflow_shares")
    op.drop_table("workflow_versions")
    op.drop_table("workflows")
