"""``Gasworks.embed`` / ``AsyncGasworks.embed`` against a real server, on the local model
(``gasworks embed``: tests/llm/test_client_cli.py)."""

from __future__ import annotations

import asyncio

import pytest

from gasworks.client import AsyncGasworks, Gasworks
from gasworks.errors import CapabilityNotSupported, ValidationFailed
from tests.llm.conftest import serve


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_clients_embed(app, admin_key) -> None:
    texts = ["The cat sleeps.", "Stocks fell sharply.", "A kitten is napping."]
    async with serve(app) as url:
        async with AsyncGasworks(url, admin_key) as gw:
            r = await gw.embed(texts)
            assert r.model == "local/all-minilm-l6-v2" and r.provider == "local"
            assert r.dimensions == 384 and len(r.vectors) == 3 and r.input_tokens > 0
            assert dot(r.vectors[0], r.vectors[2]) > dot(r.vectors[0], r.vectors[1])
            q = await gw.embed("sleeping cat", purpose="query")
            assert len(q.vectors) == 1
            with pytest.raises(CapabilityNotSupported):
                await gw.embed("x", model="demo")
            with pytest.raises(ValidationFailed):
                await gw.embed("x", dimensions=7)

        def sync() -> list[list[float]]:
            with Gasworks(url, admin_key) as gw:
                return gw.embed(texts).vectors

        vectors = await asyncio.to_thread(sync)
    # the base64 wire format round-trips float32 exactly
    assert all(dot(a, b) > 0.9999 for a, b in zip(vectors, r.vectors, strict=True))
