"""The embedding adapters against the fake vendors (real SDKs, real wire formats): OpenAI
(``openai`` SDK), an OpenAI-compatible server (aiohttp), Bedrock Titan v2 and Cohere v3
(boto3 InvokeModel). Every adapter goes through the same fault table: 429 with Retry-After,
5xx, a refused connection, a timeout, a malformed body."""

from __future__ import annotations

import math
import socket
from decimal import Decimal
from typing import Any

import pytest

from gasworks.errors import (
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    ValidationFailed,
)
from gasworks.modeltypes import EmbedRequest
from gasworks.testing import FakeBedrock, FakeOpenAI, Fault
from gasworks.testing.fake_vectors import fake_vector
from tests.llm.providers_util import SCOPE, gateway_for

OPENAI_MODELS = ("oa-embed", "compat-embed")
BEDROCK_MODELS = ("titan", "cohere")


def openai_entries(url: str, **extra: Any) -> list[dict[str, Any]]:
    spec = {"dimensions": 8, "reduced_dimensions": [4], "max_input_tokens": 50, "max_batch": 3}
    common = {"kind": "embedding", "input_per_1k": "0.02", "embedding": spec, **extra}
    return [
        {"id": "oa-embed", "provider": "openai", "base_url": f"{url}/v1", **common},
        {
            "id": "compat-embed",
            "provider": "openai_compatible",
            "provider_model_id": "nomic-embed-text",
            "base_url": f"{url}/v1",
            **common,
        },
    ]


def bedrock_entries(**extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": "titan",
            "provider": "bedrock",
            "provider_model_id": "amazon.titan-embed-text-v2:0",
            "kind": "embedding",
            "input_per_1k": "0.02",
            "embedding": {
                "dimensions": 1024,
                "reduced_dimensions": [256, 512],
                "max_input_tokens": 8192,
                "max_batch": 3,
            },
            **extra,
        },
        {
            "id": "cohere",
            "provider": "bedrock",
            "provider_model_id": "cohere.embed-english-v3",
            "kind": "embedding",
            "input_per_1k": "0.02",
            "embedding": {"dimensions": 1024, "max_input_tokens": 512, "max_batch": 3},
            **extra,
        },
    ]


class Vendor:
    """One model under test and the fake it talks to."""

    def __init__(self, model: str, fake: FakeOpenAI | FakeBedrock) -> None:
        self.model, self.fake = model, fake

    def gateway(self, tmp_path: Any, sleeps: list[float] | None = None, **entry: Any) -> Any:
        if self.model in OPENAI_MODELS:
            return gateway_for(tmp_path, openai_entries(self.fake.url, **entry), sleeps)
        return gateway_for(
            tmp_path, bedrock_entries(**entry), sleeps, bedrock_endpoint_url=self.fake.url
        )

    def gateway_at(self, tmp_path: Any, url: str, **entry: Any) -> Any:
        if self.model in OPENAI_MODELS:
            return gateway_for(tmp_path, openai_entries(url, **entry))
        return gateway_for(tmp_path, bedrock_entries(**entry), bedrock_endpoint_url=url)

    @property
    def calls(self) -> int:
        return len(self.fake.requests)


@pytest.fixture(params=OPENAI_MODELS + BEDROCK_MODELS)
def vendor(request: pytest.FixtureRequest, fake_openai, fake_bedrock) -> Vendor:
    fake = fake_openai if request.param in OPENAI_MODELS else fake_bedrock
    return Vendor(request.param, fake)


def _norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


async def test_vectors_arrive_in_input_order_batched_and_priced(tmp_path, vendor) -> None:
    gw = vendor.gateway(tmp_path)
    texts = ["alpha one", "beta two words", "gamma", "delta four five", "epsilon"]
    r = await gw.embed(SCOPE, EmbedRequest(vendor.model, texts, served={"documentId": "d1"}))
    native = 8 if vendor.model in OPENAI_MODELS else 1024
    assert r.model == vendor.model and r.dimensions == native and len(r.vectors) == 5
    for text, v in zip(texts, r.vectors, strict=True):
        expected = fake_vector(text, native)
        assert abs(_norm(v) - 1) < 1e-6  # every entry says normalized
        assert sum(a * b for a, b in zip(v, expected, strict=True)) > 0.9999
    # max_batch 3: two provider calls (Titan: one invocation per text)
    assert vendor.calls == (5 if vendor.model == "titan" else 2)
    # the fakes count a token per word: 11 words; Cohere reports none, so the gateway's count
    assert r.input_tokens > 0 and r.cost == Decimal(r.input_tokens) * Decimal("0.02") / 1000


async def test_reduced_dimensions_are_asked_of_the_provider(tmp_path, vendor) -> None:
    gw = vendor.gateway(tmp_path)
    if vendor.model == "cohere":  # one size: refused before any call
        with pytest.raises(ValidationFailed, match="1024"):
            await gw.embed(SCOPE, EmbedRequest(vendor.model, ["x"], dimensions=256))
        assert vendor.calls == 0
        return
    dims = 4 if vendor.model in OPENAI_MODELS else 256
    r = await gw.embed(SCOPE, EmbedRequest(vendor.model, ["short text"], dimensions=dims))
    assert r.dimensions == dims and len(r.vectors[0]) == dims
    sent = vendor.fake.requests[-1].json()
    assert sent["dimensions"] == dims
    with pytest.raises(ValidationFailed) as info:
        await gw.embed(SCOPE, EmbedRequest(vendor.model, ["x"], dimensions=dims + 1))
    assert info.value.details["field"] == "dimensions"


async def test_wire_details(tmp_path, fake_openai, fake_bedrock) -> None:
    gw = gateway_for(
        tmp_path,
        openai_entries(fake_openai.url) + bedrock_entries(),
        bedrock_endpoint_url=fake_bedrock.url,
    )
    await gw.embed(SCOPE, EmbedRequest("oa-embed", ["a"]))
    sent = fake_openai.requests[-1].json()
    # base64 floats on the wire; the native size is not sent
    assert sent["encoding_format"] == "base64" and "dimensions" not in sent
    assert fake_openai.requests[-1].headers["authorization"] == "Bearer sk-test-not-a-real-key"
    await gw.embed(SCOPE, EmbedRequest("compat-embed", ["a"]))
    sent = fake_openai.requests[-1].json()
    assert sent["model"] == "nomic-embed-text" and "encoding_format" not in sent
    await gw.embed(SCOPE, EmbedRequest("cohere", ["a"], purpose="query"))
    sent = fake_bedrock.requests[-1].json()
    assert sent["input_type"] == "search_query" and sent["truncate"] == "NONE"
    await gw.embed(SCOPE, EmbedRequest("titan", ["a"]))
    assert fake_bedrock.requests[-1].json() == {"inputText": "a", "normalize": True}
    assert fake_bedrock.model_ids[-1] == "amazon.titan-embed-text-v2:0"


async def test_429_retry_after_is_honoured(tmp_path, vendor) -> None:
    vendor.fake.faults.append(Fault.rate_limit(retry_after=2))
    sleeps: list[float] = []
    gw = vendor.gateway(tmp_path, sleeps)
    r = await gw.embed(SCOPE, EmbedRequest(vendor.model, ["one"]))
    assert len(r.vectors) == 1 and sleeps == [2.0]


async def test_429_exhausted_is_rate_limited(tmp_path, vendor) -> None:
    vendor.fake.faults.extend([Fault.rate_limit(retry_after=0)] * 2)
    gw = vendor.gateway(tmp_path, [], max_retries=1)
    with pytest.raises(ProviderRateLimited):
        await gw.embed(SCOPE, EmbedRequest(vendor.model, ["one"]))
    assert vendor.calls == 2


async def test_5xx_is_retried_then_succeeds(tmp_path, vendor) -> None:
    vendor.fake.faults.extend([Fault.http(500), Fault.http(503)])
    sleeps: list[float] = []
    gw = vendor.gateway(tmp_path, sleeps)
    r = await gw.embed(SCOPE, EmbedRequest(vendor.model, ["one"]))
    assert len(r.vectors) == 1 and vendor.calls == 3 and len(sleeps) == 2


async def test_5xx_without_retries_is_unavailable(tmp_path, vendor) -> None:
    vendor.fake.faults.append(Fault.http(503))
    gw = vendor.gateway(tmp_path, [], max_retries=0)
    with pytest.raises(ProviderUnavailable) as info:
        await gw.embed(SCOPE, EmbedRequest(vendor.model, ["one"]))
    assert info.value.status == 503 and info.value.retryable


async def test_refused_connection_is_unavailable(tmp_path, vendor) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gw = vendor.gateway_at(tmp_path, f"http://127.0.0.1:{port}", max_retries=0)
    with pytest.raises(ProviderUnavailable):
        await gw.embed(SCOPE, EmbedRequest(vendor.model, ["one"]))


async def test_timeout_is_provider_timeout(tmp_path, vendor) -> None:
    vendor.fake.faults.append(Fault.slow_first_byte(2.0))
    gw = vendor.gateway(tmp_path, [], timeout_seconds=0.3, max_retries=0)
    with pytest.raises(ProviderTimeout) as info:
        await gw.embed(SCOPE, EmbedRequest(vendor.model, ["one"]))
    assert info.value.status == 504


async def test_malformed_body_is_bad_response(tmp_path, vendor) -> None:
    vendor.fake.faults.append(Fault.malformed())
    gw = vendor.gateway(tmp_path, [], max_retries=0)
    with pytest.raises(ProviderBadResponse) as info:
        await gw.embed(SCOPE, EmbedRequest(vendor.model, ["one"]))
    assert info.value.status == 502
