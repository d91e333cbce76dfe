"""prompts: versions, pointers, pointer history, audit, dead letters, invalidations

Revision ID: 0004_prompts
Revises: 0001_foundation
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gasworks.db.types as gwt

revision = "0004_prompts"
down_revision = "0001_foundation"
branch_labels = ("prompts",)
depends_on = None


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="CASCADE"
    )


def _version_fk(table: str, column: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        ["prompt_versions.id"],
        name=f"fk_{table}_{column}_prompt_versions",
        ondelete="RESTRICT",
    )


def upgrade() -> None:
    op.create_table(
        "prompt_versions",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("storage", sa.String(8), nullable=False),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("blob_key", sa.String(400), nullable=True),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", gwt.UTCDateTime(), nullable=False),
        sa.Column("archived_at", gwt.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_versions"),
        _tenant_fk("prompt_versions"),
        sa.UniqueConstraint("tenant_id", "name", "content_hash", name="uq_prompt_versions_hash"),
        sa.UniqueConstraint("tenant_id", "name", "number", name="uq_prompt_versions_number"),
    )
    op.create_index("ix_prompt_versions_archived", "prompt_versions", ["archived_at"])
    op.create_table(
        "prompt_pointers",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("scope_tenant", sa.String(40), nullable=False),
        sa.Column("scope_workflow", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("active_version_id", sa.String(40), nullable=False),
        sa.Column("previous_version_id", sa.String(40), nullable=True),
        sa.Column("canary_version_id", sa.String(40), nullable=True),
        sa.Column("canary_percent", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", gwt.UTCDateTime(), nullable=False),
        sa.Column("updated_at", gwt.UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_pointers"),
        _tenant_fk("prompt_pointers"),
        _version_fk("prompt_pointers", "active_version_id"),
        _version_fk("prompt_pointers", "previous_version_id"),
        _version_fk("prompt_pointers", "canary_version_id"),
        sa.UniqueConstraint(
            "scope_tenant", "scope_workflow", "model", name="uq_prompt_pointers_scope"
        ),
    )
    op.create_index("ix_prompt_pointers_tenant", "prompt_pointers", ["tenant_id"])
    op.create_table(
        "prompt_pointer_history",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("pointer_id", sa.String(40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_version_id", sa.String(40), nullable=True),
        sa.Column("to_version_id", sa.String(40), nullable=True),
        sa.Column("canary_version_id", sa.String(40), nullable=True),
        sa.Column("canary_percent", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", gwt.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_pointer_history"),
        _tenant_fk("prompt_pointer_history"),
        sa.ForeignKeyConstraint(
            ["pointer_id"],
            ["prompt_pointers.id"],
            name="fk_prompt_pointer_history_pointer_id_prompt_pointers",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("pointer_id", "seq", name="uq_prompt_pointer_history_seq"),
    )
    op.create_table(
        "prompt_audit",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("object_type", sa.String(32), nullable=False),
        sa.Column("object_id", sa.String(40), nullable=False),
        sa.Column("details", gwt.JSONType, nullable=False),
        sa.Column("at", gwt.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_audit"),
        _tenant_fk("prompt_audit"),
    )
    op.create_index("ix_prompt_audit_tenant_at", "prompt_audit", ["tenant_id", "at"])
    op.create_table(
        "prompt_dead_letters",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("request", gwt.JSONType, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason_code", sa.String(64), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", gwt.UTCDateTime(), nullable=False),
        sa.Column("last_attempt_at", gwt.UTCDateTime(), nullable=False),
        sa.Column("result", gwt.JSONType, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_dead_letters"),
        _tenant_fk("prompt_dead_letters"),
    )
    op.create_index("ix_prompt_dead_letters_tenant", "prompt_dead_letters", ["tenant_id", "status"])
    op.create_table(
        "prompt_invalidations",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scope_tenant", sa.String(40), nullable=False),
        sa.Column("scope_workflow", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("at", gwt.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_prompt_invalidations"),
    )
    op.create_index("ix_prompt_invalidations_at", "prompt_invalidations", ["at"])


def downgrade() -> None:
    op.drop_index("ix_prompt_invalidations_at", table_name="prompt_invalidations")
    op.drop_table("prompt_invalidations")
    op.drop_index("ix_prompt_dead_letters_tenant", table_name="prompt_dead_letters")
    op.drop_table("prompt_dead_letters")
    op.drop_index("ix_prompt_audit_tenant_at", table_name="prompt_audit")
    op.drop_table("prompt_audit")
    op.drop_table("prompt_pointer_history")
    op.drop_index("ix_prompt_pointers_tenant", table_name="prompt_pointers")
    op.drop_table("prompt_pointers")
    op.drop_index("ix_prompt_versions_archived", table_name="prompt_versions")
    op.drop_table("prompt_versions")
