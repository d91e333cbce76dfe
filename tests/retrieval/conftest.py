from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest


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
    """The runtime with the fake hashing embedder as its ``Embedder`` (until the gateway's
    embeddings land, retrieval tests use it)."""
    from gasworks.retrieval.runtime import EMBEDDER_OVERRIDE
    from gasworks.testing import HashingEmbedder
    from gasworks.wiring import build_runtime

    rt = build_runtime(settings)
    rt.services[EMBEDDER_OVERRIDE] = HashingEmbedder()
    await rt.start(migrate=False)
    yield rt
    await rt.stop()
