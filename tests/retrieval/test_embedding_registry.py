"""Embedding entries in the registry: the spec they must carry, what it allows, batching."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gasworks.llm.gateway import _batches
from gasworks.llm.registry.registry import catalog_entries
from gasworks.modelcard import EmbeddingSpec, ModelEntry, ModelKind


def test_every_catalog_embedding_model_has_a_spec_and_the_default_is_local() -> None:
    entries = {e.id: e for e in catalog_entries()}
    embedders = [e for e in entries.values() if e.kind is ModelKind.EMBEDDING]
    assert {e.id for e in embedders} >= {
        "local/all-minilm-l6-v2",
        "text-embedding-3-small",
        "text-embedding-3-large",
        "bedrock/titan-embed-text-v2",
    }
    assert all(e.embedding is not None and e.capabilities.embeddings for e in embedders)
    local = entries["local/all-minilm-l6-v2"].embedding
    assert local is not None
    assert (local.dimensions, local.max_input_tokens, local.normalized) == (384, 256, True)
    assert entries["local/all-minilm-l6-v2"].input_per_1k == 0
    titan = entries["bedrock/titan-embed-text-v2"].embedding
    assert titan is not None and titan.dimension_choices() == "256, 512, 1024"


def test_an_embedding_entry_needs_its_spec_and_a_chat_entry_none() -> None:
    with pytest.raises(ValidationError, match="embedding model needs"):
        ModelEntry(id="e", provider="openai", kind="embedding")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="only for models of kind"):
        ModelEntry(id="c", provider="openai", embedding={"dimensions": 8})  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        EmbeddingSpec(dimensions=8, reduced_dimensions=[0])


def test_allowed_dimensions() -> None:
    fixed = EmbeddingSpec(dimensions=1024, reduced_dimensions=[256, 512])
    assert [fixed.allows(d) for d in (1024, 512, 256, 300, 2048)] == [1, 1, 1, 0, 0]
    free = EmbeddingSpec(dimensions=1536, reduced_dimensions="any")
    assert free.allows(1) and free.allows(1535) and not free.allows(0) and not free.allows(1537)
    assert free.dimension_choices() == "1 to 1536"


def test_batches_respect_count_and_token_caps() -> None:
    spec = EmbeddingSpec(dimensions=8, max_batch=3, max_batch_tokens=10)
    counts = [4, 4, 4, 1, 1, 1, 1, 10, 2]
    ranges = _batches(counts, spec)
    assert ranges == [(0, 2), (2, 5), (5, 7), (7, 8), (8, 9)]
    assert [lo for lo, _ in ranges][1:] == [hi for _, hi in ranges][:-1]  # contiguous, complete
    for lo, hi in ranges:
        assert hi - lo <= 3 and sum(counts[lo:hi]) <= 10
