"""The OpenAI-compatible gateway over HTTP, on both databases, and with the official client."""

from __future__ import annotations

import json
from decimal import Decimal

import openai
import pytest

from tests.conftest import auth
from tests.llm.conftest import serve


def sse_events(text: str) -> list[str]:
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


async def test_models_list_needs_a_key_and_answers_in_openai_shape(client, admin_key) -> None:
    r = await client.get("/v1/models")
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["code"] == "UNAUTHENTICATED" and err["type"] == "authentication_error"
    assert set(err) == {"message", "type", "param", "code"}
    r = await client.get("/v1/models", headers=auth(admin_key))
    assert r.status_code == 200
    ids = {m["id"] for m in r.json()["data"]}
    assert {"demo", "gpt-4o", "claude-sonnet-4-5", "bedrock/claude-sonnet-4-5"} <= ids


async def test_chat_completion_demo(client, admin_key) -> None:
    body = {"model": "demo", "messages": [{"role": "user", "content": "What is gasworks?"}]}
    r = await client.post("/v1/chat/completions", json=body, headers=auth(admin_key))
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["object"] == "chat.completion" and data["model"] == "demo"
    assert data["choices"][0]["message"]["content"].startswith("[demo]")
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"]["total_tokens"] > 0
    assert data["gasworks"]["demo"] is True and data["system_fingerprint"] == "gasworks-demo"


async def test_default_model_is_used_when_none_given(client, admin_key) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    r = await client.post("/v1/chat/completions", json=body, headers=auth(admin_key))
    assert r.status_code == 200 and r.json()["model"] == "demo"


async def test_unknown_model_is_404_model_not_found(client, admin_key) -> None:
    body = {"model": "gpt-17", "messages": [{"role": "user", "content": "hi"}]}
    r = await client.post("/v1/chat/completions", json=body, headers=auth(admin_key))
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "MODEL_NOT_FOUND" and err["param"] == "model"
    assert "gpt-17" in err["message"]


async def test_invalid_body_is_a_400_class_error_naming_the_field(client, admin_key) -> None:
    r = await client.post(
        "/v1/chat/completions", json={"model": "demo", "messages": []}, headers=auth(admin_key)
    )
    assert r.status_code == 422
    assert r.json()["error"]["param"] == "messages"
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    body = {"model": "demo", "messages": [{"role": "user", "content": "x"}], "tools": tools}
    r = await client.post("/v1/chat/completions", json=body, headers=auth(admin_key))
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "MODEL_CAPABILITY_UNSUPPORTED"


async def test_stream_sse_ends_with_usage_and_done(client, admin_key) -> None:
    body = {
        "model": "demo",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "hey"}],
    }
    r = await client.post("/v1/chat/completions", json=body, headers=auth(admin_key))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text.startswith("[demo]")
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] > 0
    assert Decimal(usage_chunk["gasworks"]["cost"]) == 0


async def test_stream_without_include_usage_sends_no_usage_chunk(app, admin_key) -> None:
    """OpenAI's canonical loop (``chunk.choices[0].delta.content``) must not meet a chunk
    without choices: the usage chunk comes only with ``stream_options.include_usage``."""
    async with serve(app) as url:
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=admin_key, max_retries=0)
        try:
            stream = await client.chat.completions.create(
                model="demo", messages=[{"role": "user", "content": "Hello"}], stream=True
            )
            text = ""
            async for chunk in stream:
                assert chunk.usage is None
                text += chunk.choices[0].delta.content or ""
            assert text.startswith("[demo]") and "None" not in text
        finally:
            await client.close()


async def test_stream_unknown_model_gets_a_real_status(client, admin_key) -> None:
    body = {"model": "nope", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    r = await client.post("/v1/chat/completions", json=body, headers=auth(admin_key))
    assert r.status_code == 404 and r.json()["error"]["code"] == "MODEL_NOT_FOUND"


async def test_official_openai_client_end_to_end(app, admin_key) -> None:
    async with serve(app) as url:
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=admin_key, max_retries=0)
        try:
            models = await client.models.list()
            assert "demo" in [m.id for m in models.data]

            done = await client.chat.completions.create(
                model="demo", messages=[{"role": "user", "content": "Explain retries"}]
            )
            assert done.choices[0].message.content.startswith("[demo]")
            assert done.usage is not None and done.usage.prompt_tokens > 0

            stream = await client.chat.completions.create(
                model="demo",
                messages=[{"role": "user", "content": "Explain retries"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            parts, usage, finish = [], None, None
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    parts.append(choice.delta.content or "")
                    finish = choice.finish_reason or finish
            assert "".join(parts) == done.choices[0].message.content
            assert len([p for p in parts if p]) > 5  # really streamed, chunk by chunk
            assert finish == "stop"
            assert usage is not None and usage.completion_tokens == done.usage.completion_tokens

            with pytest.raises(openai.NotFoundError) as info:
                await client.chat.completions.create(
                    model="no-such-model", messages=[{"role": "user", "content": "x"}]
                )
            assert info.value.code == "MODEL_NOT_FOUND"

            bad = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="gw_wrong", max_retries=0)
            with pytest.raises(openai.AuthenticationError):
                await bad.models.list()
            await bad.close()
        finally:
            await client.close()


# --- the route's fast path (``api.fastpath``): same answers as every other route -------------


async def test_fast_path_refuses_a_missing_key_before_reading_the_body(client) -> None:
    r = await client.post("/v1/chat/completions", content=b"{not json")
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["code"] == "UNAUTHENTICATED" and err["type"] == "authentication_error"
    assert r.headers["x-request-id"]


async def test_fast_path_malformed_json_is_a_validation_error(client, admin_key) -> None:
    r = await client.post(
        "/v1/chat/completions",
        content=b'{"model": "demo", "messages": [',
        headers={**auth(admin_key), "content-type": "application/json"},
    )
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "VALIDATION_FAILED" and err["type"] == "invalid_request_error"
    assert "JSON" in err["message"]


async def test_fast_path_names_nested_fields_as_fastapi_does(client, admin_key) -> None:
    body = {"model": "demo", "messages": [{"role": "robot", "content": "x"}], "n": 2}
    r = await client.post("/v1/chat/completions", json=body, headers=auth(admin_key))
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["param"] == "messages.0.role" and "(and 1 more)" in err["message"]


async def test_body_that_is_not_json_goes_to_the_declared_route(client, admin_key) -> None:
    r = await client.post(
        "/v1/chat/completions",
        content=b"model=demo",
        headers={**auth(admin_key), "content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "VALIDATION_FAILED"
    r = await client.get("/v1/chat/completions", headers=auth(admin_key))
    assert r.status_code == 405 and r.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


async def test_fast_path_reads_a_body_sent_in_pieces(client, admin_key) -> None:
    body = json.dumps({"model": "demo", "messages": [{"role": "user", "content": "hi"}]})

    async def pieces():
        for i in range(0, len(body), 7):
            yield body[i : i + 7].encode()

    headers = {**auth(admin_key), "content-type": "application/json"}
    r = await client.post("/v1/chat/completions", content=pieces(), headers=headers)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]


async def test_fast_path_keeps_the_body_limit(runtime, admin_key) -> None:
    import httpx

    from gasworks.api.app import create_app

    runtime.settings = runtime.settings.model_copy(update={"max_request_bytes": 2048})
    transport = httpx.ASGITransport(app=create_app(runtime=runtime))
    big = {"model": "demo", "messages": [{"role": "user", "content": "x" * 5000}]}

    async def chunks():
        for _ in range(10):
            yield b" " * 1000

    async with httpx.AsyncClient(transport=transport, base_url="http://gasworks.test") as c:
        r = await c.post("/v1/chat/completions", json=big, headers=auth(admin_key))
        assert r.status_code == 413 and r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
        chunked = {**auth(admin_key), "content-type": "application/json"}
        r = await c.post("/v1/chat/completions", content=chunks(), headers=chunked)
        assert r.status_code == 413 and r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
        # without a key the body is never read: refused as unauthenticated, not as too large
        r = await c.post(
            "/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"}
        )
        assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHENTICATED"


async def test_fast_path_requests_are_counted_under_the_route(client, admin_key) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def count(text: str) -> float:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "gasworks_http_requests_total" and s.labels == labels:
                    return float(s.value)
        return 0.0

    labels = {"route": "/v1/chat/completions", "method": "POST", "status": "200"}
    before = count((await client.get("/metrics")).text)
    body = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
    for stream in (False, True):
        r = await client.post(
            "/v1/chat/completions", json={**body, "stream": stream}, headers=auth(admin_key)
        )
        assert r.status_code == 200
    assert count((await client.get("/metrics")).text) == before + 2


async def test_missing_provider_package_is_not_retried_and_names_the_install(
    app, admin_key, monkeypatch
) -> None:
    """A deployment without a provider's SDK: one request (the official client is told not
    to retry), and the answer gives the exact install command."""
    import httpx

    import gasworks.llm.providers.anthropic as adapter

    monkeypatch.setattr(adapter, "anthropic", None)
    sent: list[str] = []

    async def count(request: httpx.Request) -> None:
        sent.append(request.url.path)

    async with serve(app) as url:
        http = httpx.AsyncClient(event_hooks={"request": [count]})
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=admin_key, http_client=http)
        try:
            with pytest.raises(openai.APIStatusError) as info:
                await client.chat.completions.create(
                    model="claude-sonnet-4-5", messages=[{"role": "user", "content": "x"}]
                )
        finally:
            await client.close()
    assert sent == ["/v1/chat/completions"]  # the SDK's default max_retries=2 not used
    assert info.value.code == "MISSING_DEPENDENCY"
    assert "pip install 'gasworks[anthropic]'" in info.value.message
    assert info.value.response.headers["x-should-retry"] == "false"


def test_shipped_catalog_providers_have_their_sdks_installed() -> None:
    """The base install (no extras) carries the official SDK of every provider the shipped
    catalog lists, so each of its models works after `make run`."""
    import importlib.metadata

    from gasworks.llm.registry.registry import catalog_entries

    sdk = {"openai": "openai", "anthropic": "anthropic", "bedrock": "boto3"}
    needed = {sdk[e.provider.value] for e in catalog_entries() if e.provider.value in sdk}
    assert needed == {"openai", "anthropic", "boto3"}
    requires = importlib.metadata.requires("gasworks") or []
    base = {r.split(">")[0].split("[")[0].strip() for r in requires if "extra ==" not in r}
    assert needed <= base


async def test_logprobs_are_refused_where_the_provider_has_none(client, admin_key) -> None:
    body = {"model": "demo", "messages": [{"role": "user", "content": "x"}], "logprobs": True}
    r = await client.post("/v1/chat/completions", json=body, headers=auth(admin_key))
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "MODEL_CAPABILITY_UNSUPPORTED" and err["param"] == "logprobs"


def test_logprobs_are_rendered_in_openai_shape() -> None:
    """The OpenAI client reads ``choices[0].logprobs`` of an answer and of each chunk."""
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    from gasworks.api.openai_wire import ChunkRenderer, render_completion
    from gasworks.modeltypes import ChatResult, FinishReason, StreamChunk, Usage

    lp = {"content": [{"token": "Hi", "logprob": -0.5, "bytes": [72, 105], "top_logprobs": []}]}
    done = render_completion(
        ChatResult("Hi", FinishReason.STOP, Usage(1, 1), "m", "openai", logprobs=lp)
    )
    parsed = ChatCompletion.model_validate(done)
    assert parsed.choices[0].logprobs.content[0].logprob == -0.5
    sse = ChunkRenderer("m", False, False).chunk(StreamChunk(delta="Hi", logprobs=lp))
    chunks = [ChatCompletionChunk.model_validate_json(e) for e in sse_events(sse)]
    assert chunks[-1].choices[0].logprobs.content[0].token == "Hi"
