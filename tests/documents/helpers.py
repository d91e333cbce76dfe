from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy import func, select

from gasworks.documents.domain import Documents, get_documents
from gasworks.documents.schemas import UploadResult
from gasworks.documents.tables import CollectionDocumentRow, DocumentRow
from gasworks.jobs.tables import JobRow
from gasworks.tenancy.context import Role, TenantContext


def ctx(tenant: str = "ten_a", who: str = "prn_editor", role: Role = Role.EDITOR) -> TenantContext:
    return TenantContext(tenant_id=tenant, principal_id=who, role=role)


ADMIN = ctx(who="prn_admin", role=Role.ADMIN)


async def _pieces(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def upload(
    rt: Any, name: str, data: bytes, c: TenantContext = ADMIN, **kw: Any
) -> UploadResult:
    return await get_documents(rt).service.upload(c, name, _pieces(data), **kw)


async def drain(rt: Any, limit: int = 500) -> int:
    """Run queued jobs in this process until none is ready; how many ran."""
    docs: Documents = get_documents(rt)
    worker = docs.new_worker(rt.settings, worker_id="test-worker")
    handlers = docs.pipeline.handlers()
    for n in range(limit):
        job = await docs.queue.claim(
            worker.worker_id, handlers.keys(), 30, starters=docs.pipeline.starters()
        )
        if job is None:
            return n
        await worker.run_job(job)
    raise AssertionError("the queue did not drain")


async def rows(rt: Any, model: Any, *where: Any) -> int:
    async with rt.db.read_session() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def blob_keys(rt: Any, tenant: str = "ten_a") -> list[str]:
    store = get_documents(rt).service.blobs
    return [k async for k in store.keys(f"{tenant}/documents/")]


async def leftovers(rt: Any, tenant: str = "ten_a") -> dict[str, int]:
    """Rows, blobs and vectors of the tenant's documents, counted in all three stores."""
    from gasworks.documents.domain import SOURCES

    return {
        "documents": await rows(rt, DocumentRow, DocumentRow.tenant_id == tenant),
        "links": await rows(rt, CollectionDocumentRow, CollectionDocumentRow.tenant_id == tenant),
        "jobs": await rows(rt, JobRow, JobRow.tenant_id == tenant),
        "blobs": len(await blob_keys(rt, tenant)),
        "vectors": rt.services[SOURCES].count(tenant),
    }


async def after_lease_expiry_all_ready(rt: Any, ids: list[str]) -> None:
    """ "Restart" after a killed worker: its leases run out, the queue drains, and every
    document ends ready with exactly its chunks in the vector store (nothing duplicated)."""
    from datetime import timedelta

    from gasworks.documents.domain import SOURCES
    from gasworks.retrieval.types import source_id

    docs = get_documents(rt)
    base = docs.queue.clock
    docs.queue.clock = lambda: base() + timedelta(seconds=31)
    await drain(rt)
    sources = rt.services[SOURCES]
    for doc_id in ids:
        doc = await docs.service.get(ADMIN, doc_id)
        assert doc.status == "ready"
        assert len(sources.data["ten_a"][source_id(doc_id, 1)]) == doc.chunks


def broken_chunking(fails: int | None = None) -> Callable[[], None]:
    """Make the pipeline's chunker raise: its first ``fails`` calls, or every call (``None``).
    Returns the undo."""
    import gasworks.documents.pipeline as pipeline

    names = vars(pipeline)
    real = names["chunk"]
    calls: list[int] = []

    def broken(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if fails is None or len(calls) <= fails:
            raise RuntimeError("chunker broken")
        return real(*args, **kwargs)

    names["chunk"] = broken
    return lambda: names.__setitem__("chunk", real)
