"""leader leases: once-per-deployment work runs where the lease is held

Revision ID: 0007_leader_leases
Revises: 0001_foundation
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gasworks.db.types as gwt

revision = "0007_leader_leases"
down_revision = "0001_foundation"
branch_labels = ("leader_leases",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leader_leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(80), nullable=False),
        sa.Column("expires_at", gwt.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leader_leases"),
    )


def downgrade() -> None:
    op.drop_table("leader_leases")
