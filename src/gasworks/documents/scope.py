"""The documents domain as retrieval's ``AllowedSourcesProvider``: search and the VectorSearch
node ask it which sources a caller may retrieve (collections, grants, active generations)."""

from __future__ import annotations

from collections.abc import Sequence

from gasworks.documents.service import DocumentService
from gasworks.retrieval.types import AllowedSet


class DocumentSources:
    def __init__(self, service: DocumentService) -> None:
        self.service = service

    async def allowed_sources(
        self,
        tenant_id: str,
        principal_id: str | None,
        *,
        collections: Sequence[str] | None = None,
        documents: Sequence[str] | None = None,
    ) -> AllowedSet:
        return await self.service.allowed_set(
            tenant_id, principal_id, collections=collections, documents=documents
        )
