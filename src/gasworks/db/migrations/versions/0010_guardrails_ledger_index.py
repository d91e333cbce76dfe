"""guardrails: the ledger's prompt-version index holds only rows with a prompt version (issue #19)

Every model call inserts one ``llm_ledger`` row, and each index of the table is one more
B-tree to update in that insert. ``ix_llm_ledger_tenant_prompt_version`` (0003) held every
row, though most calls (the gateway's, embeddings, unprompted chat) have no prompt version:
it becomes partial (``WHERE prompt_version_id IS NOT NULL``, on SQLite and PostgreSQL), so a
call without one updates three indexes instead of four. A lookup of a prompt version's rows
(``prompt_version_id = :x``) implies the condition, so both planners can still use it.

Revision ID: 0010_guardrails_ledger_index
Revises: 0003_guardrails_attempts
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_guardrails_ledger_index"
down_revision = "0003_guardrails_attempts"
branch_labels = None
depends_on = None

INDEX = "ix_llm_ledger_tenant_prompt_version"
HAS_VERSION = "prompt_version_id IS NOT NULL"


def upgrade() -> None:
    op.drop_index(INDEX, table_name="llm_ledger")
    op.create_index(
        INDEX,
        "llm_ledger",
        ["tenant_id", "prompt_version_id"],
        sqlite_where=sa.text(HAS_VERSION),
        postgresql_where=sa.text(HAS_VERSION),
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="llm_ledger")
    op.create_index(INDEX, "llm_ledger", ["tenant_id", "prompt_version_id"])
