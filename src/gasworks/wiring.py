"""The one place that lists the domains a gasworks process runs, in start order.

The leader-lease heartbeat first (so the lease is returned last), then models (the registry
and gateway), guardrails (they attach to the gateway), prompts (scope keys use the
registry's canonical model ids), retrieval (embeds through the gateway), documents (its
pipeline embeds through the gateway and writes through retrieval), then workflows (they
call models, prompts, retrieval and documents' access scope). The runtime stops them in
reverse. A new domain adds one entry to ``default_domains`` (and its ``tables`` module to
``all_tables``); nothing registers itself on import.
"""

from __future__ import annotations

from sqlalchemy import MetaData

from gasworks.db.engine import Database
from gasworks.documents.domain import DocumentsDomain
from gasworks.documents.scope import DocumentSources
from gasworks.llm.guardrails_runtime import GuardrailsDomain
from gasworks.llm.runtime import ModelsDomain
from gasworks.prompts.service import PromptsDomain
from gasworks.retrieval.runtime import RetrievalDomain
from gasworks.runtime import Domain, LeadershipDomain, Runtime
from gasworks.settings import Settings
from gasworks.workflows import WorkflowsDomain


def default_domains(settings: Settings) -> list[Domain]:
    """The domains of a full gasworks process, in start order."""
    del settings  # every domain reads its settings from the runtime; kept for future choices
    return [
        LeadershipDomain(),
        ModelsDomain(),
        GuardrailsDomain(),
        PromptsDomain(),
        RetrievalDomain(),
        DocumentsDomain(),
        RetrievalDocumentsJoin(),
        WorkflowsDomain(),
    ]


class RetrievalDocumentsJoin:
    """Joins retrieval and documents when both run: retrieval's ``IndexWriter`` (and its index)
    becomes the pipeline's ``SourceWriter`` (the reconciler lists the index's sources through
    it), the pipeline embeds with retrieval's embedder when one is set (same space as search),
    and search uses the documents' grant-based scope plus VectorWrite outputs labelled with a
    readable collection (``DocumentsAndRunOutputs``). Services a caller set before start (tests)
    are kept."""

    name = "retrieval-documents"

    async def start(self, rt: Runtime) -> None:
        from gasworks.documents import domain as documents
        from gasworks.retrieval.runtime import SERVICE as RETRIEVAL
        from gasworks.retrieval.runtime import get_retrieval
        from gasworks.retrieval.search import DocumentsAndRunOutputs, TenantSources

        scope = rt.services.get(documents.ALLOWED_SOURCES)
        if RETRIEVAL not in rt.services or not isinstance(scope, DocumentSources):
            return
        retrieval = get_retrieval(rt)
        rt.services.setdefault(documents.SOURCES, retrieval.writer)
        if retrieval.search.embedder is not None:
            rt.services.setdefault(documents.EMBEDDER, retrieval.search.embedder)
        if isinstance(retrieval.search.scope, TenantSources):  # not a caller's override
            retrieval.search.scope = DocumentsAndRunOutputs(scope, scope, rt.db, retrieval.chunks)

    async def stop(self, rt: Runtime) -> None:
        del rt  # the services go with the domains that own them


def build_runtime(settings: Settings, db: Database | None = None) -> Runtime:
    """A runtime with the default domains (call ``await rt.start()`` before use)."""
    return Runtime(settings, db, domains=default_domains(settings))


def all_tables() -> MetaData:
    """The full metadata, every domain's tables (the migrations env compares against it).

    Here rather than in ``gasworks.db``: the database layer imports no domain."""
    import gasworks.db.leader
    import gasworks.documents.tables
    import gasworks.jobs.tables
    import gasworks.llm.guardrail_tables
    import gasworks.llm.tables
    import gasworks.prompts.tables
    import gasworks.retrieval.tables
    import gasworks.tenancy.tables
    import gasworks.workflows.tables  # noqa: F401
    from gasworks.db.base import Base

    return Base.metadata
