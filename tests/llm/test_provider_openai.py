"""The OpenAI adapter (official SDK) and the OpenAI-compatible adapter (plain httpx) against a
fake OpenAI server; behaviour tests run against both (``model``: ``oa`` / ``local``)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from gasworks.errors import (
    ContentFiltered,
    ProviderAuthFailed,
    ProviderBadRequest,
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from gasworks.testing import FakeOpenAI, Fault
from tests.llm.providers_util import SCOPE, ask, collect, gateway_for, text_before_error


def entries(fake: FakeOpenAI, **extra: object) -> list[dict[str, object]]:
    base = {
        "provider": "openai",
        "base_url": f"{fake.url}/v1",
        "input_per_1k": "0.002",
        "output_per_1k": "0.008",
        "cached_input_per_1k": "0.0005",
        "capabilities": {"streaming": True, "json_mode": True, "function_calling": True},
    }
    return [
        {"id": "oa", "provider_model_id": "gpt-test", **base, **extra},
        {
            "id": "local",
            "provider": "openai_compatible",
            "provider_model_id": "llama3.1:8b",
            "base_url": f"{fake.url}/v1",
            "input_per_1k": "0.002",
            "output_per_1k": "0.008",
            "capabilities": base["capabilities"],
            **extra,
        },
    ]


async def test_chat_maps_parameters_usage_and_cost(tmp_path, fake_openai) -> None:
    fake_openai.reply.cached_input_tokens = 1
    gw = gateway_for(tmp_path, entries(fake_openai))
    r = await gw.chat(SCOPE, ask("oa", max_tokens=50, temperature=0.2, stop=["END"], user="u1"))
    assert r.text == "Hello from the fake model."
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.cached_input_tokens) == (11, 7, 1)
    # 10 * 0.002 + 1 * 0.0005 + 7 * 0.008, per 1K
    assert r.cost == Decimal("0.0000765")
    sent = fake_openai.requests[-1].json()
    assert sent["model"] == "gpt-test" and sent["max_completion_tokens"] == 50
    assert sent["temperature"] == 0.2 and sent["stop"] == ["END"] and sent["user"] == "u1"
    assert fake_openai.requests[-1].headers["authorization"] == "Bearer sk-test-not-a-real-key"


@pytest.mark.parametrize("model", ["oa", "local"])
async def test_stream_requests_usage_and_reports_it(tmp_path, fake_openai, model) -> None:
    gw = gateway_for(tmp_path, entries(fake_openai))
    text, last = await collect(gw, ask(model))
    assert text == "Hello from the fake model."
    assert fake_openai.requests[-1].json()["stream_options"] == {"include_usage": True}
    assert last.usage.output_tokens == 7 and not last.usage.estimated
    assert last.cost == Decimal("0.000078")


@pytest.mark.parametrize("model", ["oa", "local"])
async def test_stream_without_usage_is_estimated_and_marked(tmp_path, fake_openai, model) -> None:
    fake_openai.reply.stream_usage = False
    gw = gateway_for(tmp_path, entries(fake_openai))
    _, last = await collect(gw, ask(model))
    assert last.usage.estimated is True
    assert last.usage.input_tokens > 0 and last.usage.output_tokens > 0


async def test_openai_compatible_server_without_key(tmp_path, fake_openai, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    gw = gateway_for(tmp_path, entries(fake_openai))
    r = await gw.chat(SCOPE, ask("local", max_tokens=20))
    assert r.provider == "openai_compatible" and r.text
    sent = fake_openai.requests[-1].json()
    assert sent["model"] == "llama3.1:8b" and sent["max_tokens"] == 20
    assert "max_completion_tokens" not in sent


@pytest.mark.parametrize("model", ["oa", "local"])
async def test_tools_and_json_mode_pass_through(tmp_path, fake_openai, model) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    fake_openai.reply.tool_calls = [call]
    gw = gateway_for(tmp_path, entries(fake_openai))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    r = await gw.chat(
        SCOPE,
        ask(model, tools=tools, tool_choice="auto", response_format={"type": "json_object"}),
    )
    assert r.finish_reason == "tool_calls" and r.tool_calls == [call]
    sent = fake_openai.requests[-1].json()
    assert sent["tools"] == tools and sent["response_format"] == {"type": "json_object"}
    _, last = await collect(gw, ask(model, tools=tools))
    assert last.finish_reason == "tool_calls"


@pytest.mark.parametrize("model", ["oa", "local"])
async def test_exhausted_retries_raise_the_classified_error(tmp_path, fake_openai, model) -> None:
    fake_openai.faults.extend([Fault.rate_limit(retry_after=0)] * 3)
    gw = gateway_for(tmp_path, entries(fake_openai), [], provider_max_retries=2)
    with pytest.raises(ProviderRateLimited) as info:
        await gw.chat(SCOPE, ask(model))
    assert info.value.status == 429 and info.value.retryable
    assert len(fake_openai.requests) == 3


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.http(401, "Incorrect API key provided: sk-test"), ProviderAuthFailed),
        (Fault.http(400, "max_tokens is too large"), ProviderBadRequest),
        (Fault.http(400, "Your request was rejected by our content filter"), ContentFiltered),
    ],
)
@pytest.mark.parametrize("model", ["oa", "local"])
async def test_non_retryable_errors(tmp_path, fake_openai, fault, error, model) -> None:
    fake_openai.faults.append(fault)
    gw = gateway_for(tmp_path, entries(fake_openai), [])
    with pytest.raises(error) as info:
        await gw.chat(SCOPE, ask(model))
    assert len(fake_openai.requests) == 1
    assert "sk-test-not-a-real-key" not in str(info.value.to_dict())


@pytest.mark.parametrize("model", ["oa", "local"])
async def test_slow_first_byte_is_retried(tmp_path, fake_openai, model) -> None:
    fake_openai.faults.append(Fault.slow_first_byte(2.0))
    gw = gateway_for(tmp_path, entries(fake_openai, timeout_seconds=0.2), [])
    r = await gw.chat(SCOPE, ask(model))
    assert r.text and len(fake_openai.requests) == 2


@pytest.mark.parametrize("model", ["oa", "local"])
async def test_stream_cut_before_any_text_is_retried(tmp_path, fake_openai, model) -> None:
    fake_openai.faults.append(Fault.cut_stream(after_chunks=1))  # only the role chunk
    gw = gateway_for(tmp_path, entries(fake_openai), [])
    text, last = await collect(gw, ask(model))
    assert text == "Hello from the fake model." and last.usage.output_tokens == 7
    assert len(fake_openai.requests) == 2


@pytest.mark.parametrize("model", ["oa", "local"])
async def test_stream_stalled_mid_answer_times_out(tmp_path, fake_openai, model) -> None:
    fake_openai.faults.append(Fault.stall(after_chunks=3, seconds=10))
    gw = gateway_for(tmp_path, entries(fake_openai, timeout_seconds=0.3), [])
    text, err = await text_before_error(gw, ask(model), ProviderTimeout)
    assert text == "Hello from " and err.retryable
    assert len(fake_openai.requests) == 1  # text reached the caller: no silent retry
    async with asyncio.timeout(5):  # the upstream was let go (it would wait 10 s)
        while fake_openai.abandoned == 0:
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("model", ["oa", "local"])
async def test_stream_stalled_before_any_text_is_retried(tmp_path, fake_openai, model) -> None:
    fake_openai.faults.append(Fault.stall(after_chunks=1, seconds=10))  # only the role chunk
    gw = gateway_for(tmp_path, entries(fake_openai, timeout_seconds=0.3), [])
    text, last = await collect(gw, ask(model))
    assert text == "Hello from the fake model." and last.usage.output_tokens == 7
    assert len(fake_openai.requests) == 2


@pytest.mark.parametrize("model", ["oa", "local"])
async def test_slow_stream_within_the_read_timeout_completes(tmp_path, fake_openai, model) -> None:
    # each event comes well within the timeout; the whole answer takes longer than it
    fake_openai.faults.append(Fault.slow_stream(0.08))
    gw = gateway_for(tmp_path, entries(fake_openai, timeout_seconds=0.4, max_retries=0))
    text, last = await collect(gw, ask(model))
    assert text == "Hello from the fake model." and last.usage.output_tokens == 7
    assert len(fake_openai.requests) == 1


async def test_sdk_base_url_environment_variable_is_honoured(
    tmp_path, fake_openai, monkeypatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", f"{fake_openai.url}/v1")
    gw = gateway_for(tmp_path, [])
    r = await gw.chat(SCOPE, ask("gpt-4o-mini"))  # a catalog entry, no base_url of its own
    assert r.text == "Hello from the fake model."
    assert fake_openai.requests[-1].json()["model"] == "gpt-4o-mini"
    assert r.cost == Decimal("0.00000585")  # 11 * 0.00015 + 7 * 0.0006, per 1K


async def test_missing_key_is_a_clear_auth_error(tmp_path, fake_openai, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    gw = gateway_for(tmp_path, entries(fake_openai))
    with pytest.raises(ProviderAuthFailed) as info:
        await gw.chat(SCOPE, ask("oa"))
    assert "OPENAI_API_KEY" in info.value.message
    assert fake_openai.requests == []


async def test_key_from_secrets_file(tmp_path, fake_openai, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    secrets = tmp_path / "secrets.env"
    secrets.write_text("# provider keys\nexport OPENAI_API_KEY='sk-from-file'\n")
    gw = gateway_for(tmp_path, entries(fake_openai), secrets_file=secrets)
    await gw.chat(SCOPE, ask("oa"))
    assert fake_openai.requests[-1].headers["authorization"] == "Bearer sk-from-file"


async def test_openai_compatible_goes_through_the_environment_proxy(
    tmp_path, fake_openai, monkeypatch
) -> None:
    # the fake plays the proxy: the upstream's name is never resolved here (the network
    # guard would refuse it), the request goes to the proxy with the upstream's full URL
    monkeypatch.setenv("HTTP_PROXY", fake_openai.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    local = {
        "id": "behind-proxy",
        "provider": "openai_compatible",
        "provider_model_id": "m",
        "base_url": "http://llm.internal.example/v1",
    }
    gw = gateway_for(tmp_path, [local])
    r = await gw.chat(SCOPE, ask("behind-proxy"))
    assert r.text == "Hello from the fake model."
    assert fake_openai.requests[-1].headers["host"] == "llm.internal.example"


async def test_openai_compatible_skips_the_proxy_for_no_proxy_hosts(
    tmp_path, fake_openai, monkeypatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    gw = gateway_for(tmp_path, entries(fake_openai))
    r = await gw.chat(SCOPE, ask("local"))
    assert r.text == "Hello from the fake model."


@pytest.mark.parametrize("model", ["oa", "local"])
async def test_error_event_mid_stream_is_classified(tmp_path, fake_openai, model) -> None:
    # the role chunk, "Hello ", "from ", then `data: {"error": {...}}`
    fake_openai.faults.append(Fault.stream_error(after_chunks=3, message="The server had an error"))
    gw = gateway_for(tmp_path, entries(fake_openai), [])
    text, err = await text_before_error(gw, ask(model), ProviderUnavailable)
    assert text == "Hello from " and "The server had an error" in err.message
    assert len(fake_openai.requests) == 1


@pytest.mark.parametrize("model", ["oa", "local"])
@pytest.mark.parametrize(
    ("error_type", "error"),
    [("rate_limit_error", ProviderRateLimited), ("invalid_request_error", ProviderUnavailable)],
)
async def test_error_event_type_is_read_the_same_by_both_adapters(
    tmp_path, fake_openai, model, error_type, error
) -> None:
    """An in-stream error is classified by its ``type`` whichever adapter reads it (an unknown
    type is a server error, as the official SDK reads it)."""
    fake_openai.faults.append(Fault.stream_error(after_chunks=2, error_type=error_type))
    gw = gateway_for(tmp_path, entries(fake_openai), [])
    _, err = await text_before_error(gw, ask(model), error)
    assert err.retryable


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("model", ["oa", "local"])
@pytest.mark.parametrize("streaming", [False, True])
async def test_refused_connection_is_unavailable_streaming_or_not(
    tmp_path, model, streaming
) -> None:
    """Nothing was streamed yet: a refused connection is PROVIDER_UNAVAILABLE (503) in both
    modes, as the docs say, not a stream interruption."""

    class Down:
        url = f"http://127.0.0.1:{_closed_port()}"

    gw = gateway_for(tmp_path, entries(Down()))  # type: ignore[arg-type]
    with pytest.raises(ProviderUnavailable) as info:
        if streaming:
            await collect(gw, ask(model))
        else:
            await gw.chat(SCOPE, ask(model))
    assert info.value.status == 503


@pytest.mark.parametrize("model", ["oa", "local"])
async def test_logprobs_reach_the_answer_and_the_stream(tmp_path, fake_openai, model) -> None:
    gw = gateway_for(tmp_path, entries(fake_openai))
    r = await gw.chat(SCOPE, ask(model, extra={"logprobs": True, "top_logprobs": 2}))
    sent = fake_openai.requests[-1].json()
    assert sent["logprobs"] is True and sent["top_logprobs"] == 2
    tokens = [t["token"] for t in r.logprobs["content"]]
    assert "".join(tokens) == r.text and len(r.logprobs["content"][0]["top_logprobs"]) == 2
    streamed = [c async for c in gw.stream(SCOPE, ask(model, extra={"logprobs": True}))]
    with_lp = [c for c in streamed if c.logprobs]
    assert "".join(t["token"] for c in with_lp for t in c.logprobs["content"]) == r.text


@pytest.mark.parametrize("model", ["oa", "local"])
@pytest.mark.parametrize(("keepalive", "reused"), [(30.0, True), (0.1, False)])
async def test_idle_provider_connection_is_kept_for_the_provider_keepalive(
    tmp_path, fake_openai, model, keepalive, reused
) -> None:
    gw = gateway_for(tmp_path, entries(fake_openai), provider_keepalive_seconds=keepalive)
    await gw.chat(SCOPE, ask(model))
    await asyncio.sleep(0.5)  # idle: within 30 s, past 0.1 s (the pool then drops it)
    await gw.chat(SCOPE, ask(model))
    first, second = fake_openai.requests[-2:]
    assert first.client is not None
    assert (first.client == second.client) is reused  # the same connection, or a new one


async def test_openai_adapter_leaves_the_sdk_telemetry_headers_out(tmp_path, fake_openai) -> None:
    gw = gateway_for(tmp_path, entries(fake_openai))
    await gw.chat(SCOPE, ask("oa"))
    await collect(gw, ask("oa"))
    for sent in fake_openai.requests[-2:]:
        assert sent.headers["authorization"] == "Bearer sk-test-not-a-real-key"
        assert sent.headers["content-type"] == "application/json"
        assert not [h for h in sent.headers if h.startswith("x-stainless")]


@pytest.mark.parametrize("model", ["oa", "local"])
@pytest.mark.parametrize("stream", [False, True])
async def test_a_body_that_is_not_json_is_a_bad_response(tmp_path, fake_openai, model, stream):
    """Both adapters decode the vendor's bytes themselves: an answer or a stream event that
    is not JSON is ``PROVIDER_BAD_RESPONSE`` (502), never an internal error."""
    fake_openai.faults.append(Fault.malformed())
    gw = gateway_for(tmp_path, entries(fake_openai, max_retries=0), [])
    with pytest.raises(ProviderBadResponse) as info:
        if stream:
            await collect(gw, ask(model))
        else:
            await gw.chat(SCOPE, ask(model))
    assert info.value.details["error"] == "JSONDecodeError"
    assert len(fake_openai.requests) == 1
