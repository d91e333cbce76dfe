"""retrieval: chunks with their keyword index; pgvector's table where the extension exists

Revision ID: 0006_retrieval
Revises: 0001_foundation
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gasworks.db.types as gwt

revision = "0006_retrieval"
down_revision = "0001_foundation"
branch_labels = ("retrieval",)
depends_on = None


def _vector_available(bind: sa.engine.Connection) -> bool:
    """pgvector is installed, or installable by this role (then it is created)."""
    if bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'vector'")).first():
        return True
    if not bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
    ).first():
        return False
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
    except sa.exc.DBAPIError:  # not allowed for this role: the embedded index serves instead
        return False
    return True


def upgrade() -> None:
    op.create_table(
        "retrieval_chunks",
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("chunk_id", sa.String(200), nullable=False),
        sa.Column("source_id", sa.String(300), nullable=False),
        sa.Column("document_id", sa.String(200), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("page", sa.Integer(), nullable=True),
        sa.Column("start_offset", sa.Integer(), nullable=True),
        sa.Column("end_offset", sa.Integer(), nullable=True),
        sa.Column("heading", sa.Text(), nullable=True),
        sa.Column("metadata", gwt.JSONType, nullable=False),
        sa.Column("created_at", gwt.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "chunk_id", name="pk_retrieval_chunks"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_retrieval_chunks_tenant_id_tenants",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_retrieval_chunks_tenant_source", "retrieval_chunks", ["tenant_id", "source_id"]
    )
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE retrieval_chunks_fts USING fts5("
            "chunk_id UNINDEXED, tenant_id UNINDEXED, source_id UNINDEXED, text, "
            "tokenize = 'unicode61 remove_diacritics 2')"
        )
        return
    op.execute(
        "CREATE INDEX ix_retrieval_chunks_fts ON retrieval_chunks "
        "USING gin (to_tsvector('simple', text))"
    )
    if _vector_available(bind):
        op.execute(
            "CREATE TABLE retrieval_vectors ("
            " tenant_id varchar(40) NOT NULL,"
            " space varchar(200) NOT NULL,"
            " chunk_id varchar(200) NOT NULL,"
            " source_id varchar(300) NOT NULL,"
            " embedding vector NOT NULL,"
            " CONSTRAINT pk_retrieval_vectors PRIMARY KEY (tenant_id, space, chunk_id))"
        )
        op.execute(
            "CREATE INDEX ix_retrieval_vectors_source "
            "ON retrieval_vectors (tenant_id, space, source_id)"
        )
        op.execute(
            "CREATE INDEX ix_retrieval_vectors_tenant_source "
            "ON retrieval_vectors (tenant_id, source_id)"
        )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS retrieval_chunks_fts")
    else:
        op.execute("DROP TABLE IF EXISTS retrieval_vectors")  # and its per-space HNSW indexes
    op.drop_table("retrieval_chunks")
