"""The reconciler: compares the database, the blob store and the vector index, and removes
orphans in either direction.

* a blob under ``<tenant>/documents/<doc>/`` whose document row does not exist, or an artifact
  of a generation the document no longer uses -> removed;
* a vector source ``<doc>@<gen>`` whose document does not exist, is deleted, or does not use
  that generation (neither active nor being built) -> removed;
* a live document whose uploaded blob is missing -> ``failed`` with DOCUMENT_BLOB_MISSING;
* a deleted document with no delete job left (its dead letter discarded, say) -> purged.

An orphan is removed only after it has been one for ``grace`` seconds (``document_orphans``
remembers when it was first seen), because an upload writes its blob just before its row.
Each removal counts in ``gasworks_documents_reconciled_total`` and one audit event per tenant
records what was removed. Periodically, one process of the deployment runs it: the one holding
the leader lease (``gasworks.db.leader``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import delete, select

from gasworks.db.types import utcnow
from gasworks.documents.metrics import RECONCILED
from gasworks.documents.pipeline import Pipeline
from gasworks.documents.schemas import ReconcileOut
from gasworks.documents.service import DELETE, add_event
from gasworks.documents.tables import DocumentRow, OrphanSuspectRow
from gasworks.jobs.tables import JobRow
from gasworks.observability.logging import get_logger

log = get_logger("gasworks.documents.reconcile")

_MISSING = "DOCUMENT_BLOB_MISSING"


@runtime_checkable
class ListsSources(Protocol):
    def sources(self, tenant_id: str) -> AsyncIterator[str]: ...


class Reconciler:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.db = pipeline.db
        self.blobs = pipeline.blobs

    async def _docs(self) -> dict[tuple[str, str], DocumentRow]:
        async with self.db.read_session() as s:
            rows = (await s.scalars(select(DocumentRow))).all()
        return {(r.tenant_id, r.id): r for r in rows}

    async def _due(self, found: dict[str, tuple[str, str]], grace: float) -> set[str]:
        """Record the orphans found now; answer those orphaned for longer than ``grace``.
        Suspects not found again are forgotten."""
        now = utcnow()
        async with self.db.session() as s:
            known = {r.ref: r for r in (await s.scalars(select(OrphanSuspectRow))).all()}
            for ref, row in known.items():
                if ref not in found:
                    await s.delete(row)
            for ref, (tenant, what) in found.items():
                if ref not in known:
                    s.add(OrphanSuspectRow(ref=ref, tenant_id=tenant, what=what, first_seen=now))
        cutoff = now - timedelta(seconds=grace)
        due = {ref for ref in found if ref in known and known[ref].first_seen <= cutoff}
        if grace <= 0:
            due = set(found)
        return due

    async def run(self, grace: float = 600.0) -> ReconcileOut:
        out = ReconcileOut()
        docs = await self._docs()
        found: dict[str, tuple[str, str]] = {}
        # blobs -> rows
        async for key in self.blobs.keys(""):
            parts = key.split("/")
            if len(parts) < 4 or parts[1] != "documents":
                continue
            tenant, doc_id, name = parts[0], parts[2], parts[3]
            row = docs.get((tenant, doc_id))
            if row is None:
                found[f"blob:{key}"] = (tenant, "blob")
            elif name.startswith("g") and row.deleted_at is None:
                gen = name[1:].split("-", 1)[0]
                if gen.isdigit() and int(gen) not in (row.generation, row.pending_generation):
                    found[f"blob:{key}"] = (tenant, "blob")
        # vectors -> rows
        writer = self.pipeline.maybe_writer()
        out.vectors_checked = isinstance(writer, ListsSources)
        tenants = {t for t, _ in docs} | {t for t, _ in found.values()}
        async with self.db.read_session() as s:
            tenants |= set((await s.scalars(select(JobRow.tenant_id).distinct())).all())
        if isinstance(writer, ListsSources):
            for tenant in sorted(tenants):
                async for sid in writer.sources(tenant):
                    doc_id, _, gen = sid.rpartition("@")
                    row = docs.get((tenant, doc_id))
                    live = row is not None and row.deleted_at is None
                    if (
                        not live
                        or not gen.isdigit()
                        or int(gen)
                        not in (
                            row.generation if row else None,
                            row.pending_generation if row else None,
                        )
                    ):
                        found[f"source:{tenant}:{sid}"] = (tenant, "source")
        due = await self._due(found, grace)
        removed: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for ref in sorted(due):
            tenant, what = found[ref]
            if what == "blob":
                await self.blobs.delete(ref.split(":", 1)[1])
                out.blobs_removed += 1
            elif writer is not None:
                sid = ref.split(":", 2)[2]
                await writer.delete_sources(tenant, [sid])
                out.sources_removed += 1
            removed[tenant][what] += 1
            RECONCILED.labels(what).inc()
        # rows -> blobs, and deleted rows nobody is removing
        async with self.db.read_session() as s:
            pending_deletes = set(
                (await s.scalars(select(JobRow.subject).where(JobRow.kind == DELETE))).all()
            )
        for (tenant, doc_id), row in docs.items():
            if row.deleted_at is not None:
                if f"delete:{doc_id}" not in pending_deletes and writer is not None:
                    await self.pipeline.purge_document(tenant, doc_id)
                    out.documents_purged += 1
                    removed[tenant]["document"] += 1
                    RECONCILED.labels("document").inc()
            elif not await self.blobs.exists(row.blob_key) and await self._fail_missing(row):
                out.documents_failed += 1
                removed[tenant]["missing"] += 1
        async with self.db.session() as s:
            await s.execute(delete(OrphanSuspectRow).where(OrphanSuspectRow.ref.in_(due)))
            for tenant, counts in removed.items():
                await add_event(s, tenant, None, "reconciled", removed=dict(counts))
        if due or out.documents_failed or out.documents_purged:
            log.info("documents.reconciled", **out.model_dump())
        return out

    async def _fail_missing(self, row: DocumentRow) -> bool:
        async with self.db.session() as s:
            live: Any = await s.get(DocumentRow, row.id)
            if live is None or live.deleted_at is not None or live.error_code == _MISSING:
                return False
            live.status = "failed"
            live.error_code = _MISSING
            live.error_message = (
                "The uploaded file is missing from the blob store; upload it again."
            )
            await add_event(s, row.tenant_id, row.id, "status", status="failed", code=_MISSING)
            return True
