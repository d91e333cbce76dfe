"""documents (1/2): the job queue (jobs, per-tenant service times, named leases)

Revision ID: 0006_jobs
Revises: 0001_foundation
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gasworks.db.types as gwt

revision = "0006_jobs"
down_revision = "0001_foundation"
branch_labels = ("documents",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(80), nullable=True),
        sa.Column("payload", gwt.JSONType, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_at", gwt.UTCDateTime(), nullable=False),
        sa.Column("lease_token", sa.String(40), nullable=True),
        sa.Column("lease_owner", sa.String(80), nullable=True),
        sa.Column("lease_expires_at", gwt.UTCDateTime(), nullable=True),
        sa.Column("dedupe_key", sa.String(200), nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("history", gwt.JSONType, nullable=False),
        sa.Column("created_at", gwt.UTCDateTime(), nullable=False),
        sa.Column("started_at", gwt.UTCDateTime(), nullable=True),
        sa.Column("dead_at", gwt.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.UniqueConstraint("dedupe_key", name="uq_jobs_dedupe_key"),
    )
    op.create_index("ix_jobs_ready", "jobs", ["status", "run_at"])
    op.create_index("ix_jobs_tenant_ready", "jobs", ["tenant_id", "status", "run_at"])
    op.create_index("ix_jobs_kind_status", "jobs", ["kind", "status"])
    op.create_index("ix_jobs_subject", "jobs", ["tenant_id", "subject"])
    op.create_table(
        "job_tenants",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("last_served_at", gwt.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_job_tenants"),
    )
    op.create_table(
        "named_leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(80), nullable=False),
        sa.Column("expires_at", gwt.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_named_leases"),
    )


def downgrade() -> None:
    op.drop_table("named_leases")
    op.drop_table("job_tenants")
    op.drop_index("ix_jobs_subject", table_name="jobs")
    op.drop_index("ix_jobs_kind_status", table_name="jobs")
    op.drop_index("ix_jobs_tenant_ready", table_name="jobs")
    op.drop_index("ix_jobs_ready", table_name="jobs")
    op.drop_table("jobs")
