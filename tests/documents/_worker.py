"""A `gasworks worker`-like process for tests: FakeEmbedder + a file-backed source store
shared by every process of the test, optionally SIGKILLing itself in one stage (after the
stage's work, before its commit)."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Collection, Sequence
from pathlib import Path
from typing import Any

from gasworks.retrieval.types import Chunk, Space
from gasworks.testing import FakeEmbedder


class FileSources:
    """A SourceWriter whose state is an append-only JSON-lines file (any process)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _append(self, entry: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.write(json.dumps(entry) + "\n")

    async def write_source(
        self, tenant_id: str, space: Space, chunks: Sequence[Chunk], vectors: Sequence[Any]
    ) -> None:
        by_source: dict[str, list[str]] = {}
        for c in chunks:
            by_source.setdefault(c.source_id, []).append(c.chunk_id)
        for sid, ids in by_source.items():
            self._append({"tenant": tenant_id, "source": sid, "chunks": ids, "pid": os.getpid()})

    async def delete_sources(self, tenant_id: str, source_ids: Collection[str]) -> int:
        self._append({"tenant": tenant_id, "delete": list(source_ids)})
        return 0

    def state(self) -> tuple[dict[tuple[str, str], set[str]], int]:
        """(chunk ids per (tenant, source), number of writes)."""
        held: dict[tuple[str, str], set[str]] = {}
        writes = 0
        if not self.path.exists():
            return held, 0
        for line in self.path.read_text().splitlines():
            e = json.loads(line)
            if "delete" in e:
                for sid in e["delete"]:
                    held.pop((e["tenant"], sid), None)
            else:
                writes += 1
                held.setdefault((e["tenant"], e["source"]), set()).update(e["chunks"])
        return held, writes

    async def sources(self, tenant_id: str) -> AsyncIterator[str]:
        for t, sid in self.state()[0]:
            if t == tenant_id:
                yield sid


async def main() -> None:
    from gasworks.documents.domain import EMBEDDER, SOURCES, get_documents
    from gasworks.settings import Settings
    from gasworks.wiring import build_runtime

    settings = Settings(documents_run_workers=False)
    rt = build_runtime(settings)
    rt.services[EMBEDDER] = FakeEmbedder()
    rt.services[SOURCES] = FileSources(Path(os.environ["GW_TEST_SOURCES"]))
    await rt.start(migrate=False)
    docs = get_documents(rt)
    kill_at = os.environ.get("GW_TEST_KILL_AT")
    if kill_at:  # a stage completes its job in its commit's transaction (``finish_sync``)
        real = docs.queue.finish_sync

        def dying(session: Any, job: Any) -> None:
            if job.kind == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            real(session, job)

        docs.queue.finish_sync = dying  # type: ignore[method-assign]
    fail_once = os.environ.get("GW_TEST_FAIL_ONCE")
    if fail_once == "chunk":  # the chunking inside the extract job: a chunk job takes over
        from tests.documents.helpers import broken_chunking

        broken_chunking(1)
    if fail_once == "index":  # the indexing inside the embed job: an index job takes over
        sources = rt.services[SOURCES]
        real_write = sources.write_source
        writes: list[int] = []

        async def write_once_broken(*args: Any) -> None:
            writes.append(1)
            if len(writes) == 1:
                raise RuntimeError("index broken once")
            await real_write(*args)

        sources.write_source = write_once_broken
    worker = docs.new_worker(settings)
    worker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await rt.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
