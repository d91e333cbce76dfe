"""``Gasworks.embed`` / ``AsyncGasworks.embed`` against a real server, and ``gasworks embed``
in-process, on the local model."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from gasworks.cli.main import app as cli_app
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


@pytest.fixture
def cli(tmp_path, monkeypatch, db_url):
    for key in ("GASWORKS_URL", "GASWORKS_API_KEY", "GASWORKS_MODELS_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("GASWORKS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GASWORKS_DATABASE_URL", db_url)
    runner = CliRunner()
    assert runner.invoke(cli_app, ["init", "--json"]).exit_code == 0
    yield runner
    from gasworks.observability.logging import configure_logging

    configure_logging(json=False, level="INFO")


def test_cli_embed(cli) -> None:
    r = cli.invoke(cli_app, ["embed", "How do I reset my password?", "Invoices are due."])
    assert r.exit_code == 0, r.output
    assert "(384 floats)" in r.stdout and "local/all-minilm-l6-v2 · 384 dims" in r.stdout
    r = cli.invoke(cli_app, ["embed", "--json", "-"], input="first line\n\nsecond line\n")
    out = json.loads(r.stdout)
    assert out["dimensions"] == 384 and len(out["vectors"]) == 2 and out["cost"] == "0"
    r = cli.invoke(cli_app, ["embed", "--json", "--dimensions", "12", "x"])
    assert r.exit_code == 1
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "VALIDATION_FAILED" and "384" in err["message"]
