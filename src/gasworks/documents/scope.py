"""The documents domain as retrieval's ``SourceScope``: search and the VectorSearch node ask it
which sources a caller may retrieve (collections, grants, active generations)."""

from __future__ import annotations

from collections.abc import Sequence

from gasworks.documents.service import DocumentService
from gasworks.retrieval.types import AllowedSources


class DocumentSources:
    def __init__(self, service: DocumentService) -> None:
        self.service = service

    async def allowed(
        self,
        tenant_id: str,
        principal_id: str | None,
        *,
        collections: Sequence[str] | None = None,
        documents: Sequence[str] | None = None,
    ) -> AllowedSources:
        return await self.service.allowed_set(
            tenant_id, principal_id, collections=collections, documents=documents
        )

    async def readable_collections(self, tenant_id: str, principal_id: str | None) -> set[str]:
        """Names and ids of the live collections the principal may read."""
        return await self.service.readable_collection_keys(tenant_id, principal_id)
