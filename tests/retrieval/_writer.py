"""Writes batches to an embedded index forever, printing each committed batch (killed by the
crash test)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from gasworks.retrieval.embedded import EmbeddedVectorIndex
from gasworks.retrieval.testing import SPACE, records, unit_vectors

BATCH = 50


async def main(root: Path) -> None:
    index = EmbeddedVectorIndex(root, ann_min_rows=100, exact_max_rows=0, save_every=120)
    n = 0
    while True:
        vecs = unit_vectors(BATCH, SPACE.dimensions, n)
        batch = records(vecs, f"s{n % 7}@1", prefix=f"b{n}-")
        if n % 3 == 2:  # rewrite an earlier batch: deletes and inserts in one transaction
            batch = records(vecs, f"s{n % 7}@1", prefix=f"b{n - 1}-")
        await index.upsert("t1", SPACE, batch)
        print(n, flush=True)
        n += 1


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
