"""prompt invalidations notify listeners (PostgreSQL): a trigger sends NOTIFY on each insert

Revision ID: 0005_prompt_notify
Revises: 0004_prompts
Create Date: 2026-12-02

Each process LISTENs on the channel and polls the invalidation table when told (at commit),
so an idle process polls rarely (``GASWORKS_PROMPT_INVALIDATION_IDLE_POLL_SECONDS``). Nothing on
SQLite (one host; its processes poll at ``GASWORKS_PROMPT_INVALIDATION_POLL_SECONDS``).
"""

from __future__ import annotations

from alembic import op

revision = "0005_prompt_notify"
down_revision = "0004_prompts"
branch_labels = None
depends_on = None

#: the channel (also in gasworks.prompts.resolver.CHANNEL)
CHANNEL = "gasworks_prompt_invalidations"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE OR REPLACE FUNCTION gasworks_prompt_invalidation_notify() RETURNS trigger "
        f"LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('{CHANNEL}', ''); RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER prompt_invalidations_notify AFTER INSERT ON prompt_invalidations "
        "FOR EACH STATEMENT EXECUTE FUNCTION gasworks_prompt_invalidation_notify()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS prompt_invalidations_notify ON prompt_invalidations")
    op.execute("DROP FUNCTION IF EXISTS gasworks_prompt_invalidation_notify()")
