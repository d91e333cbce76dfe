"""``POST /v1/embeddings`` on the local model, with the official ``openai`` client (both
databases), and its errors in OpenAI's shape."""

from __future__ import annotations

import base64
import math
from array import array

import openai
import pytest
from sqlalchemy import select

from gasworks.llm.guardrail_tables import LedgerRow
from gasworks.llm.guardrails_runtime import flush_ledger
from tests.conftest import auth
from tests.llm.conftest import serve


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_official_client_single_batch_and_base64(app, runtime, admin_key) -> None:
    async with serve(app) as url:
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=admin_key, max_retries=0)
        try:
            one = await client.embeddings.create(
                model="local/all-minilm-l6-v2", input="How do I reset my password?"
            )
            assert one.model == "local/all-minilm-l6-v2" and len(one.data) == 1
            v = one.data[0].embedding
            assert len(v) == 384 and abs(math.sqrt(dot(v, v)) - 1) < 1e-4
            assert one.usage.prompt_tokens == one.usage.total_tokens > 0

            texts = ["The cat sleeps.", "Stocks fell sharply.", "A kitten is napping."]
            batch = await client.embeddings.create(
                model="local/all-minilm-l6-v2", input=texts, encoding_format="float"
            )
            vs = [d.embedding for d in sorted(batch.data, key=lambda d: d.index)]
            assert dot(vs[0], vs[2]) > dot(vs[0], vs[1])

            # explicit base64: the client hands the string back as is
            raw = await client.embeddings.create(
                model="local/all-minilm-l6-v2", input=texts, encoding_format="base64"
            )
            floats = array("f")
            floats.frombytes(base64.b64decode(raw.data[2].embedding))  # type: ignore[arg-type]
            assert dot(list(floats), vs[2]) > 0.9999

            # dimensions: the local model has one size, named in the error
            with pytest.raises(openai.UnprocessableEntityError) as info:
                await client.embeddings.create(
                    model="local/all-minilm-l6-v2", input="x", dimensions=128
                )
            err = info.value.body
            assert err["code"] == "VALIDATION_FAILED" and err["param"] == "dimensions"
            assert "384" in err["message"]
        finally:
            await client.close()
    await flush_ledger(runtime)
    async with runtime.db.session() as s:
        rows = list((await s.execute(select(LedgerRow))).scalars())
    assert len(rows) == 3 and {r.kind for r in rows} == {"embedding"}
    assert all(r.request_id for r in rows)


async def test_default_model_and_gasworks_extensions(client, admin_key) -> None:
    r = await client.post(
        "/v1/embeddings",
        json={"input": ["a question"], "purpose": "query"},
        headers=auth(admin_key),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "local/all-minilm-l6-v2" and body["object"] == "list"
    assert body["gasworks"] == {"provider": "local", "cost": "0", "dimensions": 384}


@pytest.mark.parametrize(
    ("payload", "status", "code", "param"),
    [
        ({"input": []}, 422, "VALIDATION_FAILED", "input"),
        ({"input": ["ok", ""]}, 422, "VALIDATION_FAILED", "input"),
        ({"input": [[1, 2, 3]]}, 422, "VALIDATION_FAILED", "input"),
        ({"input": "word " * 300}, 422, "VALIDATION_FAILED", "input"),
        ({"input": "x", "model": "nope"}, 404, "MODEL_NOT_FOUND", "model"),
        ({"input": "x", "model": "demo"}, 400, "MODEL_CAPABILITY_UNSUPPORTED", "model"),
        ({"input": "x", "encoding_format": "int8"}, 422, "VALIDATION_FAILED", "encoding_format"),
    ],
)
async def test_errors_in_openai_shape(client, admin_key, payload, status, code, param) -> None:
    r = await client.post("/v1/embeddings", json=payload, headers=auth(admin_key))
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert (err["code"], err["param"]) == (code, param)


async def test_needs_a_key(client) -> None:
    r = await client.post("/v1/embeddings", json={"input": "x"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHENTICATED"


async def test_models_list_marks_embedding_models(client, admin_key) -> None:
    r = await client.get("/v1/models", headers=auth(admin_key))
    cards = {m["id"]: m["gasworks"] for m in r.json()["data"]}
    local = cards["local/all-minilm-l6-v2"]
    assert local["kind"] == "embedding" and local["defaultEmbeddingModel"] is True
    assert local["embedding"]["dimensions"] == 384
    assert local["embedding"]["maxInputTokens"] == 256
    small = cards["text-embedding-3-small"]
    assert small["embedding"]["reducedDimensions"] == "any"
    assert small["defaultEmbeddingModel"] is False
    assert "embedding" not in cards["demo"]
