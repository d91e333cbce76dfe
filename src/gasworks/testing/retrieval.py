"""In-process fakes of retrieval's roles for the documents pipeline's tests: a deterministic
embedder and a source store that counts what it holds (and can fail on demand)."""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import AsyncIterator, Collection, Sequence
from decimal import Decimal

from gasworks.errors import GasworksError
from gasworks.modeltypes import CallScope
from gasworks.retrieval.types import Chunk, EmbedRequest, EmbedResult, Space


class FakeEmbedder:
    """``Embedder``: a unit vector from the text's hash (same text, same vector). ``fail`` is a
    list of errors raised by the next calls, in order."""

    def __init__(self, dimensions: int = 8, model: str = "fake-embed") -> None:
        self.dimensions = dimensions
        self.model = model
        self.calls = 0
        self.inputs = 0
        self.fail: list[GasworksError] = []
        #: an input containing the key fails the whole call it is in with the value
        self.poison: dict[str, GasworksError] = {}
        #: inputs per call, in order
        self.call_sizes: list[int] = []

    def vector(self, text: str) -> list[float]:
        digest = hashlib.sha256(text.encode()).digest()
        raw = [b - 127.5 for b in digest[: self.dimensions]]
        norm = math.sqrt(sum(x * x for x in raw)) or 1.0
        return [x / norm for x in raw]

    async def embed(self, scope: CallScope, req: EmbedRequest) -> EmbedResult:
        self.calls += 1
        self.call_sizes.append(len(req.inputs))
        if self.fail:
            raise self.fail.pop(0)
        self._check_poison(req.inputs)
        self.inputs += len(req.inputs)
        return self._result(req)

    async def embed_many(
        self, scope: CallScope, reqs: Sequence[EmbedRequest]
    ) -> list[EmbedResult | GasworksError]:
        """All requests in one call, like a provider given one batch: an error (``fail``, or
        a ``poison`` input of any request) fails every request of the call."""
        self.calls += 1
        self.call_sizes.append(sum(len(r.inputs) for r in reqs))
        try:
            if self.fail:
                raise self.fail.pop(0)
            for r in reqs:
                self._check_poison(r.inputs)
        except GasworksError as exc:
            return [exc] * len(reqs)
        self.inputs += sum(len(r.inputs) for r in reqs)
        return [self._result(r) for r in reqs]

    def _check_poison(self, inputs: Sequence[str]) -> None:
        for marker, error in self.poison.items():
            if any(marker in t for t in inputs):
                raise error

    def _result(self, req: EmbedRequest) -> EmbedResult:
        return EmbedResult(
            model=self.model,
            provider="fake",
            vectors=[self.vector(t) for t in req.inputs],
            dimensions=self.dimensions,
            input_tokens=sum(len(t) // 4 for t in req.inputs),
            cost=Decimal(0),
        )


class MemorySources:
    """``SourceWriter`` keeping chunks and vectors per tenant and source, idempotent by chunk
    id; ``writes`` counts calls (a duplicate delivery writes the same ids again)."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, dict[str, tuple[Chunk, list[float]]]]] = {}
        self.writes = 0
        self.fail: list[GasworksError] = []
        self._lock = asyncio.Lock()

    async def write_source(
        self,
        tenant_id: str,
        space: Space,
        chunks: Sequence[Chunk],
        vectors: Sequence[Sequence[float]],
    ) -> None:
        if self.fail:
            raise self.fail.pop(0)
        async with self._lock:
            self.writes += 1
            tenant = self.data.setdefault(tenant_id, {})
            for c, v in zip(chunks, vectors, strict=True):
                tenant.setdefault(c.source_id, {})[c.chunk_id] = (c, list(v))

    async def delete_sources(self, tenant_id: str, source_ids: Collection[str]) -> int:
        async with self._lock:
            tenant = self.data.get(tenant_id, {})
            n = 0
            for sid in source_ids:
                n += len(tenant.pop(sid, {}))
            return n

    async def sources(self, tenant_id: str) -> AsyncIterator[str]:
        for sid in list(self.data.get(tenant_id, {})):
            yield sid

    def count(self, tenant_id: str | None = None) -> int:
        tenants = [tenant_id] if tenant_id else list(self.data)
        return sum(len(c) for t in tenants for c in self.data.get(t, {}).values())

    def texts(self, tenant_id: str, source: str) -> list[str]:
        return [c.text for c, _ in self.data.get(tenant_id, {}).get(source, {}).values()]


class FakeTextract:
    """boto3's Textract client shape: answers LINE blocks with ``text``."""

    def __init__(self, text: str = "scanned text") -> None:
        self.text = text
        self.calls = 0

    def detect_document_text(self, **kwargs: object) -> dict[str, object]:
        self.calls += 1
        document = kwargs.get("Document")
        assert isinstance(document, dict) and isinstance(document.get("Bytes"), bytes)
        return {"Blocks": [{"BlockType": "LINE", "Text": self.text}]}
