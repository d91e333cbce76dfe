"""models: platform-wide model registry overlays

Revision ID: 0002_models
Revises: 0001_foundation
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import gasworks.db.types as gwt

revision = "0002_models"
down_revision = "0001_foundation"
branch_labels = ("models",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_overlays",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column(
            "patch", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_by_api", sa.Boolean(), nullable=False),
        sa.Column("created_at", gwt.UTCDateTime(), nullable=False),
        sa.Column("updated_at", gwt.UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(40), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_model_overlays"),
    )


def downgrade() -> None:
    op.drop_table("model_overlays")
