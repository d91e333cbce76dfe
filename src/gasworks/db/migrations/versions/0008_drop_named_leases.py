"""drop named_leases: the reconciler runs under the deployment's leader lease (leader_leases)

Revision ID: 0008_drop_named_leases
Revises: 0007_documents
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gasworks.db.types as gwt

revision = "0008_drop_named_leases"
down_revision = "0007_documents"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("named_leases")


def downgrade() -> None:
    op.create_table(
        "named_leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(80), nullable=False),
        sa.Column("expires_at", gwt.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_named_leases"),
    )
