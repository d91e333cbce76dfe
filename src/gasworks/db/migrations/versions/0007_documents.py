"""documents (2/2): documents, collections, membership, grants, events

Revision ID: 0007_documents
Revises: 0006_jobs
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gasworks.db.types as gwt

revision = "0007_documents"
down_revision = "0006_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("media_type", sa.String(100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("blob_key", sa.String(300), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=True),
        sa.Column("pending_generation", sa.Integer(), nullable=True),
        sa.Column("stages", gwt.JSONType, nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=True),
        sa.Column("chunks", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(40), nullable=False),
        sa.Column("created_at", gwt.UTCDateTime(), nullable=False),
        sa.Column("updated_at", gwt.UTCDateTime(), nullable=False),
        sa.Column("deleted_at", gwt.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_documents"),
    )
    op.create_index("ix_documents_tenant_hash", "documents", ["tenant_id", "content_hash"])
    op.create_index("ix_documents_tenant_id", "documents", ["tenant_id"])
    op.create_table(
        "collections",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("owner_id", sa.String(40), nullable=False),
        sa.Column("chunk_tokens", sa.Integer(), nullable=False),
        sa.Column("chunk_overlap", sa.Integer(), nullable=False),
        sa.Column("created_at", gwt.UTCDateTime(), nullable=False),
        sa.Column("deleted_at", gwt.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_collections"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_collections_tenant_id"),
    )
    op.create_index("ix_collections_tenant_id", "collections", ["tenant_id"])
    op.create_table(
        "collection_documents",
        sa.Column("collection_id", sa.String(40), nullable=False),
        sa.Column("document_id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("collection_id", "document_id", name="pk_collection_documents"),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name="fk_collection_documents_collection_id_collections",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name="fk_collection_documents_document_id_documents",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_collection_documents_document_id", "collection_documents", ["document_id"])
    op.create_table(
        "collection_grants",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("collection_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("created_at", gwt.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_collection_grants"),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name="fk_collection_grants_collection_id_collections",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "collection_id", "kind", "subject", name="uq_collection_grants_collection_id"
        ),
    )
    op.create_table(
        "document_events",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("document_id", sa.String(40), nullable=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(40), nullable=True),
        sa.Column("data", gwt.JSONType, nullable=False),
        sa.Column("created_at", gwt.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_document_events"),
    )
    op.create_index(
        "ix_document_events_doc", "document_events", ["tenant_id", "document_id", "seq"]
    )
    op.create_table(
        "document_orphans",
        sa.Column("ref", sa.String(400), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("what", sa.String(16), nullable=False),
        sa.Column("first_seen", gwt.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("ref", name="pk_document_orphans"),
    )


def downgrade() -> None:
    op.drop_table("document_orphans")
    op.drop_index("ix_document_events_doc", table_name="document_events")
    op.drop_table("document_events")
    op.drop_table("collection_grants")
    op.drop_index("ix_collection_documents_document_id", table_name="collection_documents")
    op.drop_table("collection_documents")
    op.drop_index("ix_collections_tenant_id", table_name="collections")
    op.drop_table("collections")
    op.drop_index("ix_documents_tenant_id", table_name="documents")
    op.drop_index("ix_documents_tenant_hash", table_name="documents")
    op.drop_table("documents")
