"""The Bedrock adapter (boto3 Converse / ConverseStream) against a fake Bedrock runtime."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from gasworks.errors import (
    ProviderAuthFailed,
    ProviderBadRequest,
    ProviderRateLimited,
    ProviderUnavailable,
)
from gasworks.modeltypes import ChatRequest, Message
from gasworks.testing import FakeBedrock, Fault
from tests.llm.providers_util import SCOPE, ask, collect, gateway_for, text_before_error

SONNET = "anthropic.claude-sonnet-4-5-20250929-v1:0"


def gw(tmp_path, fake: FakeBedrock, sleeps=None, **settings):
    return gateway_for(tmp_path, [], sleeps, bedrock_endpoint_url=fake.url, **settings)


async def test_us_profile_is_called_as_asked_and_priced_at_its_own_rate(
    tmp_path, fake_bedrock
) -> None:
    fake_bedrock.reply.input_tokens, fake_bedrock.reply.output_tokens = 1000, 1000
    g = gw(tmp_path, fake_bedrock)
    us = await g.chat(SCOPE, ask(f"us.{SONNET}"))
    glob = await g.chat(SCOPE, ask(f"global.{SONNET}"))
    assert fake_bedrock.model_ids == [f"us.{SONNET}", f"global.{SONNET}"]
    assert us.model == glob.model == "bedrock/claude-sonnet-4-5"
    assert us.cost == Decimal("0.0198")  # US geographic profile: +10 %
    assert glob.cost == Decimal("0.018")  # global profile: base rate


async def test_converse_maps_messages_and_usage(tmp_path, fake_bedrock) -> None:
    fake_bedrock.reply.cached_input_tokens = 4
    g = gw(tmp_path, fake_bedrock)
    req = ChatRequest(
        model="bedrock/claude-haiku-4-5",
        messages=[Message("system", "Be brief."), Message("user", "hi")],
        max_tokens=64,
        temperature=0.5,
        stop=["END"],
    )
    r = await g.chat(SCOPE, req)
    assert r.text == "Hello from the fake model." and r.provider == "bedrock"
    assert (r.usage.input_tokens, r.usage.cached_input_tokens, r.usage.output_tokens) == (11, 4, 7)
    sent = fake_bedrock.requests[-1].json()
    assert sent["system"] == [{"text": "Be brief."}]
    assert sent["messages"] == [{"role": "user", "content": [{"text": "hi"}]}]
    assert sent["inferenceConfig"] == {
        "maxTokens": 64,
        "temperature": 0.5,
        "stopSequences": ["END"],
    }
    assert fake_bedrock.requests[-1].headers["authorization"].startswith("AWS4-HMAC-SHA256")


async def test_converse_stream_over_event_stream(tmp_path, fake_bedrock) -> None:
    g = gw(tmp_path, fake_bedrock)
    text, last = await collect(g, ask(f"us.{SONNET}"))
    assert text == "Hello from the fake model."
    assert last.usage.output_tokens == 7 and not last.usage.estimated
    assert fake_bedrock.requests[-1].path.endswith("/converse-stream")


async def test_tool_use_round_trip(tmp_path, fake_bedrock) -> None:
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"q": "x"}'}}
    fake_bedrock.reply.tool_calls = [call]
    g = gw(tmp_path, fake_bedrock)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    r = await g.chat(SCOPE, ask("bedrock/claude-haiku-4-5", tools=tools, tool_choice="auto"))
    assert r.finish_reason == "tool_calls"
    assert r.tool_calls == [call | {"function": {"name": "f", "arguments": '{"q": "x"}'}}]
    sent = fake_bedrock.requests[-1].json()["toolConfig"]
    assert sent["tools"][0]["toolSpec"]["name"] == "f" and sent["toolChoice"] == {"auto": {}}
    chunks = [c async for c in g.stream(SCOPE, ask("bedrock/claude-haiku-4-5", tools=tools))]
    args = "".join(
        tc["function"]["arguments"] for c in chunks if c.tool_calls for tc in c.tool_calls
    )
    assert json.loads(args) == {"q": "x"}


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.http(429, "slow down"), ProviderRateLimited),
        (Fault.http(500), ProviderUnavailable),
        (Fault.http(503), ProviderUnavailable),
        (Fault.http(403, "denied"), ProviderAuthFailed),
        (Fault.http(400, "bad input"), ProviderBadRequest),
    ],
)
async def test_aws_errors_are_classified(tmp_path, fake_bedrock, fault, error) -> None:
    fake_bedrock.faults.append(fault)
    g = gw(tmp_path, fake_bedrock, provider_max_retries=0)
    with pytest.raises(error):
        await g.chat(SCOPE, ask("bedrock/nova-lite"))
    assert len(fake_bedrock.requests) == 1  # botocore's own retries are off


async def test_throttling_is_retried(tmp_path, fake_bedrock) -> None:
    fake_bedrock.faults.extend([Fault.http(429, "slow down"), Fault.http(500)])
    sleeps: list[float] = []
    g = gw(tmp_path, fake_bedrock, sleeps)
    assert (await g.chat(SCOPE, ask("bedrock/nova-lite"))).text
    assert len(sleeps) == 2 and len(fake_bedrock.requests) == 3


@pytest.mark.parametrize(
    ("exception_type", "error"),
    [
        ("throttlingException", ProviderRateLimited),
        ("serviceUnavailableException", ProviderUnavailable),
        ("validationException", ProviderBadRequest),
    ],
)
async def test_exception_event_mid_stream_is_classified(
    tmp_path, fake_bedrock, exception_type, error
) -> None:
    fake_bedrock.faults.append(Fault.stream_error(after_chunks=3, error_type=exception_type))
    g = gw(tmp_path, fake_bedrock, [])
    text, _ = await text_before_error(g, ask("bedrock/nova-lite"), error)
    assert text == "Hello from "
    assert len(fake_bedrock.requests) == 1
