"""Chunks never exceed what the embedding model accepts (issue #13: a Markdown section of ~390
model tokens used to end ``failed`` with VALIDATION_FAILED under the 400-token default)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from gasworks.documents.chunking import ChunkConfig, chunk
from gasworks.documents.domain import SOURCES, get_documents
from gasworks.documents.extractors.types import Extracted
from gasworks.documents.schemas import CollectionIn
from gasworks.errors import ValidationFailed
from gasworks.llm.tokens import get_encoding
from gasworks.modeltypes import EmbedInputLimit
from gasworks.retrieval.types import source_id
from tests.documents.helpers import ADMIN, drain, upload

# one paragraph of ordinary prose, one section: about 370 cl100k_base tokens and 360 of the
# model's, under the old 400-token default and over the model's 256
_WHAT = ["holder", "valve", "pressure", "district", "main", "meter", "retort", "purifier"]
SECTION = " ".join(
    f"The {_WHAT[i % 8]} of works number {i} was inspected by the district engineer, who "
    f"found the seals sound and the gauges reading true."
    for i in range(14)
)


def _gateway_mode(rt: Any) -> EmbedInputLimit:
    from gasworks.llm.runtime import get_gateway

    del rt.services["documents.embedder"]  # embed through the gateway: the real local model
    limit = get_gateway(rt).embedding_input_limit(None)
    assert (limit.model, limit.max_tokens, limit.exact) == ("local/all-minilm-l6-v2", 256, True)
    return limit


async def test_a_long_section_becomes_ready_with_the_local_model(drt: Any) -> None:
    limit = _gateway_mode(drt)
    enc = get_encoding("cl100k_base")
    assert enc is not None
    (model_tokens,) = limit.count([SECTION])
    # what the 400-token default used to put in one chunk, and the model refused
    assert len(enc.encode(SECTION)) <= 400 and model_tokens > 256

    docs = get_documents(drt)
    col = await docs.service.create_collection(ADMIN, CollectionIn(name="kb"))
    doc = (
        await upload(drt, "holders.md", f"# Holders\n\n{SECTION}\n".encode(), collections=[col.id])
    ).document
    bare = (await upload(drt, "bare.md", f"# Bare\n\n{SECTION} Again.\n".encode())).document
    await drain(drt)
    for d in (doc, bare):
        got = await docs.service.get(ADMIN, d.id)
        assert got.status == "ready", (got.error_code, got.error_message)
        texts = drt.services[SOURCES].texts("ten_a", source_id(d.id, 1))
        assert len(texts) >= 2
        assert max(limit.count(texts)) <= 256
        assert "works number 13 was" in " ".join(texts)  # nothing cut off


async def test_a_collection_size_over_the_models_limit_is_refused(drt: Any) -> None:
    _gateway_mode(drt)
    svc = get_documents(drt).service
    with pytest.raises(ValidationFailed) as refused:
        await svc.create_collection(ADMIN, CollectionIn(name="big", chunk_tokens=512))
    assert refused.value.details["path"] == "body.chunkTokens"
    assert refused.value.details["limit"] == 256
    assert "local/all-minilm-l6-v2" in refused.value.message
    assert not [c.name for c in await svc.list_collections(ADMIN) if c.name == "big"]

    assert (await svc.create_collection(ADMIN, CollectionIn(name="d"))).chunk_tokens == 256
    sized = await svc.create_collection(ADMIN, CollectionIn(name="s", chunk_tokens=200))
    assert sized.chunk_tokens == 200
    with pytest.raises(ValidationFailed):  # the overlap rule against the resolved size
        await svc.create_collection(ADMIN, CollectionIn(name="o", chunk_overlap=300))


async def test_without_a_model_limit_the_default_stays_400(drt: Any) -> None:
    svc = get_documents(drt).service  # FakeEmbedder states no limit
    assert (await svc.create_collection(ADMIN, CollectionIn(name="d"))).chunk_tokens == 400


def _chars(max_tokens: int, *, exact: bool, per_join: int = 0) -> EmbedInputLimit:
    """A model counting a token per 4 characters, plus ``per_join`` per blank line (a count the
    pieces' sum undercounts, so the chunker's final check must catch it)."""

    def count(texts: Sequence[str]) -> list[int]:
        return [2 + -(-len(t) // 4) + per_join * t.count("\n\n") for t in texts]

    return EmbedInputLimit("fake/chars", max_tokens, count, exact)


@pytest.mark.parametrize(
    ("exact", "per_join", "cap"), [(True, 0, 100), (False, 0, 90), (True, 40, 100)]
)
def test_every_chunk_fits_the_models_count(exact: bool, per_join: int, cap: int) -> None:
    limit = _chars(100, exact=exact, per_join=per_join)
    blocks = [
        {"text": f"Sentence number {i} says something. " * 3, "heading": "H"} for i in range(40)
    ]
    blocks.append({"text": "x" * 5000, "heading": "H"})  # one word longer than any chunk
    doc = Extracted.from_dict({"blocks": blocks})
    out = chunk("doc", 1, doc, ChunkConfig(max_tokens=400, overlap=50, limit=limit))
    sizes = limit.count([c.text for c in out])
    assert max(sizes) <= cap  # an estimate is filled to 90% only
    assert max(sizes) > cap // 2  # not needlessly small
    joined = "".join(c.text for c in out)
    assert joined.count("x") >= 5000 and "Sentence number 39" in joined
    # the same input gives the same chunks (ids are idempotent)
    again = chunk("doc", 1, doc, ChunkConfig(max_tokens=400, overlap=50, limit=limit))
    assert [c.chunk_id for c in again] == [c.chunk_id for c in out]
