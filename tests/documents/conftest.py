from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gasworks.testing import FakeEmbedder, MemorySources


@pytest.fixture
def doc_settings(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    from gasworks.settings import Settings

    for key in list(os.environ):
        if key.startswith("GASWORKS_") and key != "GASWORKS_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)
    return Settings(
        home=tmp_path / "home",
        database_url=db_url,
        auth_cache_ttl_seconds=0,
        documents_run_workers=False,
        documents_retry_base_seconds=0,
        documents_max_attempts=3,
        documents_parse_cpu_seconds=20,
        documents_ocr_engine="none",
    )


@pytest.fixture
async def drt(doc_settings: Any) -> AsyncIterator[Any]:
    """A runtime whose documents pipeline embeds with FakeEmbedder into MemorySources."""
    from gasworks.documents.domain import EMBEDDER, SOURCES
    from gasworks.wiring import build_runtime

    rt = build_runtime(doc_settings)
    rt.services[EMBEDDER] = FakeEmbedder()
    rt.services[SOURCES] = MemorySources()
    await rt.start(migrate=False)
    yield rt
    await rt.stop()
