"""Guardrails through the OpenAI-compatible route, against fake provider servers with
injected faults: breakers, fallbacks, budgets, streams (complete and cut), pre-call checks."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select

from gasworks.api.app import create_app
from gasworks.llm.breaker import BreakerState
from gasworks.llm.guardrail_tables import LedgerRow
from gasworks.testing import FakeOpenAI, Fault
from tests.conftest import auth
from tests.guardrails.gateway_env import INPUT_PER_1K, OUTPUT_PER_1K, Env, gateway_settings, started
from tests.llm.conftest import serve


@pytest.fixture
def fakes() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    with FakeOpenAI() as a, FakeOpenAI() as b:
        b.reply.text = "Answer from the backup model."
        yield a, b  # type: ignore[misc]


@pytest.fixture
async def env(tmp_path, db_url, fakes, monkeypatch) -> AsyncIterator[Env]:
    for key in list(os.environ):
        if key.startswith("GASWORKS_") and key != "GASWORKS_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)
    settings = gateway_settings(tmp_path / "home", db_url, fakes[0].url, fakes[1].url)
    async with started(settings) as e:
        yield e


@pytest.fixture
async def client(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime=env.runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gasworks.test") as c:
        yield c


@pytest.fixture
async def key(env: Env) -> str:
    from gasworks.tenancy import service

    async with env.runtime.db.session() as s:
        _, created = await service.bootstrap(s, "default")
    assert created is not None
    return created.key


def body(model: str = "primary", text: str = "Say hello.", **kw: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **kw}


async def ledger(env: Env) -> list[LedgerRow]:
    await env.guardrails.ledger.flush()  # rows are written in batches: write what waits
    async with env.runtime.db.session() as s:
        q = select(LedgerRow).order_by(LedgerRow.created_at, LedgerRow.model)
        return list((await s.execute(q)).scalars())


def price(inp: int, out: int) -> Decimal:
    return (inp * Decimal(INPUT_PER_1K) + out * Decimal(OUTPUT_PER_1K)) / 1000


async def test_breaker_opens_fails_over_half_opens_and_closes(env, client, key, fakes) -> None:
    primary = fakes[0]
    h = auth(key)
    for _ in range(2):
        r = await client.post("/v1/chat/completions", json=body(), headers=h)
        assert r.status_code == 200 and r.json()["model"] == "primary"
    primary.faults.extend([Fault.http(500), Fault.http(503)])
    for _ in range(2):  # the provider fails: the fallback answers
        r = await client.post("/v1/chat/completions", json=body(), headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["model"] == "backup"
        assert r.json()["gasworks"]["fallbacks"] == [
            {"model": "primary", "code": "PROVIDER_UNAVAILABLE"}
        ]
    # 2 failures in 4 calls = 50%: open. The next call does not reach the primary at all.
    (b,) = [
        x
        for x in (await client.get("/api/breakers", headers=h)).json()
        if x["breaker"] == "primary"
    ]
    assert b["state"] == "open" and b["windowCalls"] == 4 and b["windowFailures"] == 2
    sent = len(primary.requests)
    r = await client.post("/v1/chat/completions", json=body(), headers=h)
    assert r.json()["model"] == "backup"
    assert r.json()["choices"][0]["message"]["content"] == "Answer from the backup model."
    assert r.json()["gasworks"]["fallbacks"] == [{"model": "primary", "code": "MODEL_UNAVAILABLE"}]
    assert len(primary.requests) == sent
    # cool-down over: two probes reach the (healthy again) primary and close the breaker
    env.clock.advance(31)
    for _ in range(2):
        r = await client.post("/v1/chat/completions", json=body(), headers=h)
        assert r.json()["model"] == "primary"
    (b,) = [
        x
        for x in (await client.get("/api/breakers", headers=h)).json()
        if x["breaker"] == "primary"
    ]
    assert b["state"] == "closed" and b["windowCalls"] == 0
    events = (await client.get("/api/breakers/events?breaker=primary", headers=h)).json()
    assert [e["toState"] for e in reversed(events)] == ["open", "half_open", "closed"]
    # every provider attempt is in the ledger exactly once, failures included
    rows = await ledger(env)
    assert [(r.model, r.status) for r in rows].count(("primary", "PROVIDER_UNAVAILABLE")) == 2
    assert len(rows) == 2 + 2 * 2 + 1 + 2


async def test_open_breaker_without_fallback_fails_fast_with_503(env, client, key, fakes) -> None:
    h = auth(key)
    r = await client.post("/api/breakers/lonely/trip", json={"reason": "drill"}, headers=h)
    assert r.status_code == 200
    r = await client.post("/v1/chat/completions", json=body("lonely"), headers=h)
    assert r.status_code == 503
    err = r.json()["error"]
    assert err["code"] == "MODEL_UNAVAILABLE" and "lonely" in err["message"]
    assert fakes[0].requests == []
    assert await ledger(env) == []


async def test_streamed_call_is_settled_at_its_real_usage(env, client, key, fakes) -> None:
    primary, _ = fakes
    primary.reply.input_tokens, primary.reply.output_tokens = 123, 45
    h = auth(key)
    await client.put("/api/budgets", json={"period": "day", "cost_limit": "5"}, headers=h)
    r = await client.post("/v1/chat/completions", json=body(stream=True), headers=h)
    assert r.status_code == 200
    assert r.text.rstrip().endswith("data: [DONE]")
    (row,) = await ledger(env)
    assert (row.status, row.streamed, row.estimated) == ("ok", True, False)
    assert (row.input_tokens, row.output_tokens) == (123, 45)
    assert row.cost == price(123, 45)
    assert row.ttft_ms is not None and row.latency_ms >= row.ttft_ms
    (b,) = (await client.get("/api/budgets", headers=h)).json()
    assert Decimal(b["spentCost"]) == price(123, 45)
    # nothing held for the call any more; what remains reserved is this process's lease
    assert Decimal(b["reservedCost"]) == Decimal(b["leasedCost"]) > 0


async def test_cut_stream_is_settled_and_counted_as_a_failure(env, client, key, fakes) -> None:
    primary, _ = fakes
    primary.reply.text = "one two three four five six seven eight nine ten"
    primary.faults.append(Fault.cut_stream(after_chunks=4))
    h = auth(key)
    await client.put("/api/budgets", json={"period": "day", "cost_limit": "5"}, headers=h)
    r = await client.post("/v1/chat/completions", json=body("lonely", stream=True), headers=h)
    events = [ln[6:] for ln in r.text.splitlines() if ln.startswith("data: ")]
    assert json.loads(events[-1])["error"]["code"] == "PROVIDER_STREAM_INTERRUPTED"
    (row,) = await ledger(env)
    assert (row.status, row.streamed, row.estimated) == ("PROVIDER_STREAM_INTERRUPTED", True, True)
    assert row.input_tokens > 0 and row.output_tokens > 0  # what was sent is paid for
    assert row.cost == price(row.input_tokens, row.output_tokens)
    (b,) = (await client.get("/api/budgets", headers=h)).json()
    assert Decimal(b["spentCost"]) == row.cost
    assert Decimal(b["reservedCost"]) == Decimal(b["leasedCost"])  # only the lease is held
    (br,) = [
        x for x in (await client.get("/api/breakers", headers=h)).json() if x["breaker"] == "lonely"
    ]
    assert (br["windowCalls"], br["windowFailures"]) == (1, 1)


async def test_client_leaving_mid_stream_stops_the_upstream_and_is_paid_for(
    env, key, fakes
) -> None:
    """A client that hangs up mid-stream: gasworks closes the upstream call at once (no more
    tokens are paid for) and still settles what was streamed, on a real server."""
    primary, _ = fakes
    primary.reply.text = "one two three four five six seven eight nine ten"
    primary.faults.append(Fault.stall(after_chunks=3, seconds=30))
    h = auth(key)
    async with serve(create_app(runtime=env.runtime)) as url, httpx.AsyncClient() as http:
        await http.put(f"{url}/api/budgets", json={"period": "day", "cost_limit": "5"}, headers=h)
        req = body("lonely", stream=True)
        async with http.stream("POST", f"{url}/v1/chat/completions", json=req, headers=h) as r:
            assert r.status_code == 200
            seen = 0
            async for line in r.aiter_lines():
                seen += line.startswith("data: ")
                if seen == 2:
                    break  # the client has what it wanted and leaves
        async with asyncio.timeout(10):  # the upstream sees the hang-up (it would wait 30 s)
            while primary.abandoned == 0:
                await asyncio.sleep(0.01)
        async with asyncio.timeout(10):  # and the call is settled, not left reserved
            while not (rows := await ledger(env)):
                await asyncio.sleep(0.01)
        (row,) = rows
        assert (row.model, row.status, row.streamed, row.estimated) == (
            "lonely",
            "CANCELLED",
            True,
            True,
        )
        assert row.input_tokens > 0 and row.output_tokens > 0  # what was streamed is paid for
        assert row.cost == price(row.input_tokens, row.output_tokens)
        (b,) = (await http.get(f"{url}/api/budgets", headers=h)).json()
        assert Decimal(b["spentCost"]) == row.cost
        assert Decimal(b["reservedCost"]) == Decimal(b["leasedCost"])  # only the lease is held
        # the server is fine: the next stream is served to its end
        r2 = await http.post(f"{url}/v1/chat/completions", json=req, headers=h)
        assert r2.text.rstrip().endswith("data: [DONE]")


async def test_pre_call_checks_and_budgets_on_the_v1_route(env, client, key, fakes) -> None:
    h = auth(key)
    r = await client.post("/v1/chat/completions", json=body(max_tokens=501), headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "TOKEN_LIMIT_EXCEEDED"
    long = "lorem ipsum dolor sit amet " * 400  # ~2000 tokens > 90% of 2000
    r = await client.post("/v1/chat/completions", json=body(text=long), headers=h)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "CONTEXT_WINDOW_EXCEEDED"
    r = await client.post(
        "/v1/chat/completions", json=body(max_tokens=400, cost_limit="0.001"), headers=h
    )
    assert r.status_code == 402 and r.json()["error"]["code"] == "COST_LIMIT_EXCEEDED"
    # truncation: old history goes, the system message and the question stay
    messages = [
        {"role": "system", "content": "Be brief."},
        *[
            {"role": "user" if i % 2 == 0 else "assistant", "content": f"old {i} " * 150}
            for i in range(10)
        ],
        {"role": "user", "content": "And now?"},
    ]
    r = await client.post(
        "/v1/chat/completions",
        json={"model": "primary", "messages": messages, "truncate": True, "max_tokens": 100},
        headers=h,
    )
    assert r.status_code == 200, r.text
    trunc = r.json()["gasworks"]["truncation"]
    assert trunc["droppedMessages"] > 0 and not trunc["systemTruncated"]
    assert trunc["droppedIndices"][0] == 1  # the oldest first
    sent = fakes[0].requests[-1].json()["messages"]
    assert sent[0]["content"] == "Be brief." and sent[-1]["content"] == "And now?"
    # spend limit of the API key: the call that would cross it is refused before any provider
    await client.put("/api/budgets", json={"period": "month", "cost_limit": "0.001"}, headers=h)
    n = len(fakes[0].requests)
    r = await client.post("/v1/chat/completions", json=body(max_tokens=100), headers=h)
    assert r.status_code == 402 and r.json()["error"]["code"] == "COST_LIMIT_EXCEEDED"
    assert len(fakes[0].requests) == n


async def test_official_openai_sdk_sees_fallbacks_and_budget_errors(env, key, fakes) -> None:
    app = create_app(runtime=env.runtime)
    await env.runtime.services["guardrails"].breakers.set_manual(
        "primary",
        BreakerState.FORCED_OPEN,
        actor="test",
        reason="sdk test",
    )
    async with serve(app) as url:
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
        try:
            done = await client.chat.completions.create(
                model="primary", messages=[{"role": "user", "content": "hi"}]
            )
            assert done.model == "backup"
            stream = await client.chat.completions.create(
                model="primary", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            models = {chunk.model async for chunk in stream}
            assert models == {"backup"}
            with pytest.raises(openai.APIStatusError) as info:
                await client.chat.completions.create(
                    model="backup",
                    messages=[{"role": "user", "content": "hi"}],
                    max_tokens=400,
                    extra_body={"cost_limit": "0.0001"},
                )
            assert info.value.status_code == 402 and info.value.code == "COST_LIMIT_EXCEEDED"
        finally:
            await client.close()
    rows = await ledger(env)
    assert [(r.model, r.streamed) for r in rows] == [("backup", False), ("backup", True)]


async def test_open_breaker_survives_a_restart(tmp_path, db_url, fakes, monkeypatch) -> None:
    for k in list(os.environ):
        if k.startswith("GASWORKS_") and k != "GASWORKS_TEST_POSTGRES_URL":
            monkeypatch.delenv(k)
    settings = gateway_settings(tmp_path / "home", db_url, fakes[0].url, fakes[1].url)
    fakes[0].faults.extend([Fault.http(500)] * 4)
    from gasworks.llm.runtime import get_gateway
    from gasworks.modeltypes import CallScope, ChatRequest, Message
    from tests.guardrails.test_budgets import tenant

    def req() -> ChatRequest:
        return ChatRequest(model="primary", messages=[Message("user", "hi")])

    async with started(settings) as first:
        ctx = await tenant(first.runtime)
        scope = CallScope(tenant_id=ctx.tenant_id, api_key_id=ctx.api_key_id)
        for _ in range(4):
            assert (await get_gateway(first.runtime).chat(scope, req())).model == "backup"
        assert first.guardrails.breakers.state_of("primary").value == "open"
    sent = len(fakes[0].requests)
    async with started(settings) as second:  # a new process: state comes from the database
        result = await get_gateway(second.runtime).chat(scope, req())
        assert result.model == "backup"
        assert result.notes["fallbacks"] == [{"model": "primary", "code": "MODEL_UNAVAILABLE"}]
    assert len(fakes[0].requests) == sent


async def test_breaker_store_errors_fail_open(env, client, key, fakes) -> None:
    async def broken(*args: object, **kw: object) -> None:
        raise RuntimeError("breaker store down")

    store = env.guardrails.breakers.store
    store.snapshot = broken  # type: ignore[method-assign]
    store.flush = broken  # type: ignore[method-assign]
    env.clock.advance(5)  # a sync is due: it fails
    fakes[0].faults.extend([Fault.http(500)] * 6)
    for _ in range(6):  # failures cannot be shared: the breaker never opens, calls go through
        r = await client.post("/v1/chat/completions", json=body("lonely"), headers=auth(key))
        assert r.status_code == 503 and r.json()["error"]["code"] == "PROVIDER_UNAVAILABLE"
    r = await client.post("/v1/chat/completions", json=body("lonely"), headers=auth(key))
    assert r.status_code == 200 and r.json()["model"] == "lonely"
    assert len(fakes[0].requests) == 7


async def test_gasworks_sdk_gets_fallbacks_truncation_and_budget_errors(env, key, fakes) -> None:
    from gasworks.client import AsyncGasworks
    from gasworks.errors import CostLimitExceeded, ModelUnavailable

    app = create_app(runtime=env.runtime)
    transport = httpx.ASGITransport(app=app)
    sdk = AsyncGasworks("http://gasworks.test", api_key=key, transport=transport)
    try:
        await env.guardrails.breakers.set_manual(
            "primary",
            BreakerState.FORCED_OPEN,
            actor="test",
            reason="sdk test",
        )
        result = await sdk.chat("hi", model="primary")
        assert result.model == "backup"
        assert result.notes["fallbacks"] == [{"model": "primary", "code": "MODEL_UNAVAILABLE"}]
        assert result.notes["estimate"]["tokenizer"] == "utf8_bytes"
        chunks = [c async for c in sdk.stream("hi", model="primary")]
        assert chunks[-1].model == "backup" and chunks[-1].cost == price(11, 7)
        notes = chunks[-1].notes or {}
        assert notes["fallbacks"] == [{"model": "primary", "code": "MODEL_UNAVAILABLE"}]
        # "hi" = 2 bytes (1 token) + 3 per message + 3 reply priming (OpenAI accounting): no
        # limit needs the exact count, and the bytes show the prompt fits: the note is that
        # upper bound, not the tokenizer's count
        assert notes["estimate"] == {"inputTokens": 8, "tokenizer": "utf8_bytes", "exact": False}
        history = [{"role": "user", "content": f"old {i} " * 300} for i in range(6)]
        result = await sdk.chat(
            [*history, {"role": "user", "content": "now?"}],
            model="backup",
            system="Be brief.",
            truncate=True,
            max_tokens=100,
        )
        assert result.notes["truncation"]["droppedMessages"] >= 3
        await env.guardrails.breakers.set_manual(
            "lonely", BreakerState.FORCED_OPEN, actor="test", reason="sdk test"
        )
        with pytest.raises(ModelUnavailable):
            await sdk.chat("hi", model="lonely")
        with pytest.raises(CostLimitExceeded):
            await sdk.chat("hi", model="backup", max_tokens=400, cost_limit="0.0001")
    finally:
        await sdk.aclose()
    rows = await ledger(env)
    assert sorted((r.model, r.streamed) for r in rows) == [
        ("backup", False),
        ("backup", False),
        ("backup", True),
    ]
    assert sum((r.cost for r in rows), Decimal(0)) > 0


@pytest.mark.parametrize("stream", [False, True])
async def test_a_bug_in_an_adapter_is_internal_logged_and_not_the_providers(
    env, client, key, fakes, monkeypatch, stream
) -> None:
    from structlog.testing import capture_logs

    from gasworks.llm.providers import openai_compatible

    def bug(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("a bug in our request building")

    monkeypatch.setattr(openai_compatible, "request_params", bug)
    h = auth(key)
    with capture_logs() as logs:
        r = await client.post("/v1/chat/completions", json=body(stream=stream), headers=h)
    assert r.status_code == 500 and r.json()["error"]["code"] == "INTERNAL"
    assert "TypeError" not in r.text
    assert [x for x in logs if x.get("exc_info")], "the bug is logged with its traceback"
    primary, backup = fakes
    assert primary.requests == backup.requests == []  # no retry, no fallback
    (br,) = [
        x
        for x in (await client.get("/api/breakers", headers=h)).json()
        if x["breaker"] == "primary"
    ]
    assert br["windowFailures"] == 0  # the model's breaker does not count our bug
