"""A tiny corpus written through the real writer (chunk store + vector index) with the fake
hashing embedder, shared by the search, API and node tests."""

from __future__ import annotations

from typing import Any

from gasworks.modeltypes import CallScope
from gasworks.retrieval.types import Chunk, EmbedRequest, source_id
from gasworks.testing import HashingEmbedder

DOCS: dict[str, list[str]] = {
    "doc-boilers": [
        "The boiler pressure must stay below three bar during operation.",
        "Bleed the radiators once a year to release trapped air.",
    ],
    "doc-gas": [
        "Town gas was made by heating coal in retorts at the gasworks.",
        "The gasholder stored gas at low pressure for the evening peak.",
    ],
    "doc-secret": [
        "Boiler pressure secret: the override code is 4711.",
    ],
}


async def write_corpus(
    rt: Any, tenant_id: str, embedder: HashingEmbedder, docs: dict[str, list[str]] = DOCS
) -> None:
    from gasworks.retrieval.runtime import get_retrieval

    writer = get_retrieval(rt).writer
    for doc, texts in docs.items():
        src = source_id(doc, 1)
        chunks = [
            Chunk(
                chunk_id=f"{src}#{i}",
                source_id=src,
                document_id=doc,
                ordinal=i,
                text=t,
                page=i + 1,
                start=0,
                end=len(t),
                heading="Intro" if i == 0 else None,
                metadata={"lang": "en", "part": i},
            )
            for i, t in enumerate(texts)
        ]
        result = await embedder.embed(
            CallScope(tenant_id=tenant_id), EmbedRequest(model=None, inputs=texts)
        )
        await writer.write_source(tenant_id, result.space, chunks, result.vectors)
