"""Real worker processes: one SIGKILLed in each stage, then a fresh one finishes every document
with no duplicate chunk or vector; two processes share 200 documents, each processed once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gasworks.documents.domain import get_documents
from gasworks.documents.tables import DocumentEventRow, DocumentRow
from gasworks.jobs import RetryPolicy
from gasworks.retrieval.types import source_id
from tests.documents import samples
from tests.documents._worker import FileSources
from tests.documents.helpers import upload

ROOT = Path(__file__).resolve().parents[2]


def spawn(drt: Any, sources: Path, **env: str) -> subprocess.Popen[bytes]:
    s = drt.settings
    full = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GASWORKS_")},
        "GASWORKS_HOME": str(s.home),
        "GASWORKS_DATABASE_URL": s.resolved_database_url,
        "GASWORKS_DOCUMENTS_LEASE_SECONDS": "1",
        "GASWORKS_DOCUMENTS_RETRY_BASE_SECONDS": "0",
        "GASWORKS_DOCUMENTS_POLL_MAX_SECONDS": "0.2",
        "GASWORKS_DOCUMENTS_WORKER_CONCURRENCY": "4",
        "GASWORKS_LOG_LEVEL": "WARNING",
        "GW_TEST_SOURCES": str(sources),
        **env,
    }
    with sources.with_suffix(".log").open("ab") as log:  # the workers' stderr, for a failure
        return subprocess.Popen(
            [sys.executable, "-m", "tests.documents._worker"],
            cwd=ROOT,
            env=full,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


async def wait_all(drt: Any, ids: list[str], timeout: float = 300) -> list[DocumentRow]:
    async def poll() -> list[DocumentRow]:
        while True:
            async with drt.db.read_session() as s:
                rows = (await s.scalars(select(DocumentRow).where(DocumentRow.id.in_(ids)))).all()
            if all(r.status in ("ready", "failed") for r in rows):
                return list(rows)
            await asyncio.sleep(0.1)

    return await asyncio.wait_for(poll(), timeout)


async def stage_completions(drt: Any) -> Counter[tuple[str, str]]:
    async with drt.db.read_session() as s:
        events = (
            await s.scalars(select(DocumentEventRow).where(DocumentEventRow.kind == "stage.done"))
        ).all()
    return Counter((e.document_id or "", str(e.data["stage"])) for e in events)


STAGES = ["documents.extract", "documents.chunk", "documents.embed", "documents.index"]


@pytest.mark.timeout(600)
async def test_sigkill_in_each_stage_then_restart_ends_ready_without_duplicates(
    drt: Any, tmp_path: Path
) -> None:
    """One worker process after another is SIGKILLed inside a stage (after the stage's work,
    before its commit): extract, then chunk, embed and index. Each next process first takes
    over the dead one's job when its lease expires. A last, healthy process finishes."""
    sources_file = tmp_path / "sources.jsonl"
    # four processes die one after the other, each holding up to four jobs in flight: one
    # document's job may lose an attempt to each kill (a dead letter after three, whose
    # document would never end), so every job here has more attempts than there are kills
    q = get_documents(drt).queue
    q.policies = dict.fromkeys(q.policies, RetryPolicy(max_attempts=6, base_delay=0))
    attempts = {"GASWORKS_DOCUMENTS_MAX_ATTEMPTS": "6"}
    ids = [
        (await upload(drt, f"{i}.md", samples.MARKDOWN + bytes([65 + i]))).document.id
        for i in range(3)
    ]
    for stage in STAGES:
        # the chunk and index stages run inside the extract and embed jobs; their own jobs
        # exist when that part failed there, so it fails once in the process killed in them
        part = {"documents.chunk": "chunk", "documents.index": "index"}.get(stage, "")
        doomed = spawn(drt, sources_file, GW_TEST_KILL_AT=stage, GW_TEST_FAIL_ONCE=part, **attempts)
        assert await asyncio.to_thread(doomed.wait, 120) == -9  # died by SIGKILL in `stage`
    # the dead ones' 1 s leases let the last process take over at once; its own leases are long,
    # so on a loaded machine a slow heartbeat never hands its jobs back and forth with itself
    fresh = spawn(drt, sources_file, GASWORKS_DOCUMENTS_LEASE_SECONDS="30", **attempts)
    try:
        rows = await wait_all(drt, ids)
    finally:
        fresh.terminate()
        await asyncio.to_thread(fresh.wait, 30)
    assert {r.status for r in rows} == {"ready"}
    held, _ = FileSources(sources_file).state()
    for r in rows:
        assert len(held[("ten_a", source_id(r.id, 1))]) == r.chunks
    assert set(held) == {("ten_a", source_id(r.id, 1)) for r in rows}
    # every stage of every document committed exactly once, though each was killed once
    done = await stage_completions(drt)
    assert set(done.values()) == {1} and len(done) == 3 * 4
    async with drt.db.read_session() as s:
        history = [
            e.data for e in (await s.scalars(select(DocumentEventRow))).all() if e.kind == "status"
        ]
    assert len(history) > 3 * 4  # stages were started more than once (the killed attempts)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_two_worker_processes_share_200_documents_each_processed_once(
    drt: Any, tmp_path: Path
) -> None:
    if get_documents(drt).service.db.dialect.name != "postgresql":
        pytest.skip("scale-out workers share PostgreSQL")
    sources_file = tmp_path / "sources.jsonl"
    ids = []
    for i in range(200):
        ids.append(
            (await upload(drt, f"{i}.txt", f"document number {i}\n\nbody {i}".encode())).document.id
        )
    lease = {"GASWORKS_DOCUMENTS_LEASE_SECONDS": "15"}  # no kills here: no lease churn either
    workers = [spawn(drt, sources_file, **lease), spawn(drt, sources_file, **lease)]
    try:
        rows = await wait_all(drt, ids, timeout=600)
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            await asyncio.to_thread(w.wait, 30)
    assert {r.status for r in rows} == {"ready"}
    done = await stage_completions(drt)
    assert len(done) == 200 * 4 and set(done.values()) == {1}
    held, writes = FileSources(sources_file).state()
    assert len(held) == 200 and writes == 200  # each index stage wrote once
    pids = {line for line in sources_file.read_text().splitlines()}
    assert len({__import__("json").loads(p)["pid"] for p in pids}) == 2  # both took part
