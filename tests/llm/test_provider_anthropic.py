"""The Anthropic adapter against a fake Messages server, through the official SDK."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from gasworks.errors import (
    ProviderAuthFailed,
    ProviderBadRequest,
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderUnavailable,
)
from gasworks.modeltypes import ChatRequest, Message
from gasworks.testing import FakeAnthropic, Fault
from tests.llm.providers_util import SCOPE, ask, collect, gateway_for, text_before_error


def entries(fake: FakeAnthropic, **extra: object) -> list[dict[str, object]]:
    return [
        {
            "id": "claude",
            "provider": "anthropic",
            "provider_model_id": "claude-test-1",
            "base_url": fake.url,
            "input_per_1k": "0.003",
            "output_per_1k": "0.015",
            "cached_input_per_1k": "0.0003",
            "max_output_tokens": 1000,
            "capabilities": {"streaming": True, "function_calling": True},
            **extra,
        }
    ]


async def test_chat_maps_system_tools_and_usage(tmp_path, fake_anthropic) -> None:
    fake_anthropic.reply.cached_input_tokens = 5
    gw = gateway_for(tmp_path, entries(fake_anthropic))
    tools = [
        {
            "type": "function",
            "function": {"name": "lookup", "description": "d", "parameters": {"type": "object"}},
        }
    ]
    req = ChatRequest(
        model="claude",
        messages=[Message("system", "Be brief."), Message("user", "hi")],
        tools=tools,
        tool_choice="required",
        stop=["END"],
    )
    r = await gw.chat(SCOPE, req)
    assert r.text == "Hello from the fake model." and r.provider == "anthropic"
    assert (r.usage.input_tokens, r.usage.cached_input_tokens, r.usage.output_tokens) == (11, 5, 7)
    # 6 * 0.003 + 5 * 0.0003 + 7 * 0.015, per 1K
    assert r.cost == Decimal("0.000124500")
    sent = fake_anthropic.requests[-1].json()
    assert sent["system"] == "Be brief." and sent["messages"] == [{"role": "user", "content": "hi"}]
    assert sent["max_tokens"] == 1000  # required by Anthropic: the model's limit when not given
    assert sent["tools"] == [
        {"name": "lookup", "input_schema": {"type": "object"}, "description": "d"}
    ]
    assert sent["tool_choice"] == {"type": "any"} and sent["stop_sequences"] == ["END"]
    headers = fake_anthropic.requests[-1].headers
    # the SDK sends the key as x-api-key or as a bearer token depending on its version
    assert "sk-ant-test-not-a-real-key" in headers.get("x-api-key", headers.get("authorization"))
    assert headers["anthropic-version"]  # the SDK's API version header, sent without create()


async def test_tool_use_comes_back_in_openai_form(tmp_path, fake_anthropic) -> None:
    call = {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    fake_anthropic.reply.tool_calls = [call]
    gw = gateway_for(tmp_path, entries(fake_anthropic))
    r = await gw.chat(SCOPE, ask("claude"))
    assert r.finish_reason == "tool_calls"
    assert r.tool_calls is not None and json.loads(r.tool_calls[0]["function"]["arguments"]) == {
        "a": 1
    }
    chunks = [c async for c in gw.stream(SCOPE, ask("claude"))]
    calls = [tc for c in chunks if c.tool_calls for tc in c.tool_calls]
    assert calls[0]["id"] == "toolu_1" and calls[0]["function"]["name"] == "f"
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"a": 1}
    assert chunks[-1].finish_reason == "tool_calls"


async def test_stream_usage_is_exact(tmp_path, fake_anthropic) -> None:
    gw = gateway_for(tmp_path, entries(fake_anthropic))
    text, last = await collect(gw, ask("claude"))
    assert text == "Hello from the fake model."
    assert (last.usage.input_tokens, last.usage.output_tokens) == (11, 7)
    assert not last.usage.estimated
    assert fake_anthropic.requests[-1].json()["stream"] is True


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.http(529, "Overloaded"), ProviderUnavailable),
        (Fault.http(500), ProviderUnavailable),
        (Fault.rate_limit(retry_after=0), ProviderRateLimited),
        (Fault.http(401, "invalid x-api-key"), ProviderAuthFailed),
    ],
)
async def test_errors_are_classified(tmp_path, fake_anthropic, fault, error) -> None:
    fake_anthropic.faults.append(fault)
    gw = gateway_for(tmp_path, entries(fake_anthropic, max_retries=0))
    with pytest.raises(error):
        await gw.chat(SCOPE, ask("claude"))


async def test_overloaded_is_retried(tmp_path, fake_anthropic) -> None:
    fake_anthropic.faults.append(Fault.http(529, "Overloaded"))
    sleeps: list[float] = []
    gw = gateway_for(tmp_path, entries(fake_anthropic), sleeps)
    assert (await gw.chat(SCOPE, ask("claude"))).text
    assert len(sleeps) == 1 and len(fake_anthropic.requests) == 2


async def test_event_not_in_the_documented_shape_is_a_bad_response(
    tmp_path, fake_anthropic
) -> None:
    events = fake_anthropic._events("claude-test-1")
    broken = b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0}\n\n'
    fake_anthropic._events = lambda model: [*events[:3], broken, *events[3:]]
    gw = gateway_for(tmp_path, entries(fake_anthropic, max_retries=0))
    with pytest.raises(ProviderBadResponse) as info:
        await collect(gw, ask("claude"))
    assert info.value.details["error"] == "KeyError"


@pytest.mark.parametrize(
    ("error_type", "error", "status"),
    [
        ("overloaded_error", ProviderUnavailable, 529),
        ("rate_limit_error", ProviderRateLimited, 429),
        ("api_error", ProviderUnavailable, 500),
        ("invalid_request_error", ProviderBadRequest, 400),
    ],
)
async def test_error_event_mid_stream_is_classified(
    tmp_path, fake_anthropic, error_type, error, status
) -> None:
    # message_start, content_block_start, ping, "Hello ", "from ", then an `error` event
    fault = Fault.stream_error(after_chunks=5, error_type=error_type, message="Overloaded")
    fake_anthropic.faults.append(fault)
    gw = gateway_for(tmp_path, entries(fake_anthropic), [])
    text, err = await text_before_error(gw, ask("claude"), error)
    assert text == "Hello from "
    assert err.details["providerStatus"] == status and "Overloaded" in err.message
    assert len(fake_anthropic.requests) == 1  # text reached the caller: no silent retry


async def test_overloaded_event_before_any_text_is_retried(tmp_path, fake_anthropic) -> None:
    fake_anthropic.faults.append(Fault.stream_error(after_chunks=1))  # after message_start
    gw = gateway_for(tmp_path, entries(fake_anthropic), [])
    text, last = await collect(gw, ask("claude"))
    assert text == "Hello from the fake model." and last.usage.output_tokens == 7
    assert len(fake_anthropic.requests) == 2


async def test_parallel_tool_calls_stream_with_their_own_indexes(tmp_path, fake_anthropic) -> None:
    fake_anthropic.reply.tool_calls = [
        {"id": "toolu_a", "function": {"name": "f", "arguments": '{"a": 1}'}},
        {"id": "toolu_b", "function": {"name": "g", "arguments": '{"b": [2]}'}},
    ]
    gw = gateway_for(tmp_path, entries(fake_anthropic))
    chunks = [c async for c in gw.stream(SCOPE, ask("claude"))]
    calls = [tc for c in chunks if c.tool_calls for tc in c.tool_calls]
    heads = [(c["index"], c["id"], c["function"]["name"]) for c in calls if "id" in c]
    assert heads == [(0, "toolu_a", "f"), (1, "toolu_b", "g")]
    args = {
        i: "".join(c["function"]["arguments"] for c in calls if c["index"] == i) for i in (0, 1)
    }
    assert json.loads(args[0]) == {"a": 1} and json.loads(args[1]) == {"b": [2]}
    assert chunks[-1].finish_reason == "tool_calls"


async def test_out_of_range_temperature_is_refused_not_changed(tmp_path, fake_anthropic) -> None:
    gw = gateway_for(tmp_path, entries(fake_anthropic))
    with pytest.raises(ProviderBadRequest) as info:
        await gw.chat(SCOPE, ask("claude", temperature=1.5))
    assert info.value.status == 400 and info.value.details["param"] == "temperature"
    assert fake_anthropic.requests == []


async def test_prompt_cache_writes_are_priced_at_their_rate(tmp_path, fake_anthropic) -> None:
    fake_anthropic.reply.input_tokens = 3000
    fake_anthropic.reply.cached_input_tokens = 1000
    fake_anthropic.reply.cache_write_input_tokens = 1000
    fake_anthropic.reply.output_tokens = 0
    gw = gateway_for(tmp_path, entries(fake_anthropic, cache_write_per_1k="0.00375"))
    r = await gw.chat(SCOPE, ask("claude"))
    assert (r.usage.input_tokens, r.usage.cache_write_input_tokens) == (3000, 1000)
    # 1000 * 0.003 + 1000 * 0.0003 + 1000 * 0.00375, per 1K
    assert r.cost == Decimal("0.00705")
    _, last = await collect(gw, ask("claude"))
    assert last.cost == Decimal("0.00705")
