"""browser sessions: the web console's signed-in browsers

Revision ID: 0006_browser_sessions
Revises: 0001_foundation
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gasworks.db.types as gwt

revision = "0006_browser_sessions"
down_revision = "0001_foundation"
branch_labels = ("browser_sessions",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "browser_sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("api_key_id", sa.String(40), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", gwt.UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", gwt.UTCDateTime(), nullable=False),
        sa.Column("expires_at", gwt.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_browser_sessions"),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name="fk_browser_sessions_api_key_id_api_keys",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_browser_sessions_api_key", "browser_sessions", ["api_key_id"])


def downgrade() -> None:
    op.drop_index("ix_browser_sessions_api_key", table_name="browser_sessions")
    op.drop_table("browser_sessions")
