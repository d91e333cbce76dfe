from __future__ import annotations

from decimal import Decimal

import pytest

from gasworks.errors import (
    CapabilityNotSupported,
    ModelNotFound,
    ModelUnavailable,
    ProviderBadRequest,
    ProviderRateLimited,
    ProviderStreamInterrupted,
    ProviderUnavailable,
)
from gasworks.llm.gateway import Gateway, RetryPolicy
from gasworks.llm.hooks import CallOutcome
from gasworks.llm.providers.factory import ProviderSet
from gasworks.llm.registry import ModelEntry, ModelRegistry, ResolvedModel, catalog_entries
from gasworks.modeltypes import CallScope, ChatRequest, Message
from gasworks.settings import Settings
from gasworks.testing import BrokenStream, ScriptedProvider

SCOPE = CallScope(tenant_id="ten_1", api_key_id="key_1")


def req(model: str | None = "primary", text: str = "hi", **kw: object) -> ChatRequest:
    return ChatRequest(model=model, messages=[Message("user", text)], **kw)  # type: ignore[arg-type]


class Recorder:
    """A call hook recording what the gateway tells it."""

    def __init__(self, refuse: dict[str, Exception] | None = None) -> None:
        self.refuse = refuse or {}
        self.before: list[str] = []
        self.after: list[tuple[object, str, CallOutcome]] = []

    async def before_call(self, scope: CallScope, model: ResolvedModel, r: ChatRequest) -> object:
        self.before.append(model.id)
        if model.id in self.refuse:
            raise self.refuse[model.id]
        return f"token-{len(self.before)}"

    async def after_call(
        self, token: object, scope: CallScope, model: ResolvedModel, outcome: CallOutcome
    ) -> None:
        self.after.append((token, model.id, outcome))


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def gateway(sleeps: list[float]) -> Gateway:
    entries = [
        *catalog_entries(),
        ModelEntry(
            id="primary",
            provider="openai",
            input_per_1k=Decimal("0.01"),
            output_per_1k=Decimal("0.03"),
            fallbacks=["backup"],
            capabilities={"streaming": True, "function_calling": True},
        ),
        ModelEntry(id="backup", provider="anthropic", input_per_1k=Decimal("0.001")),
        ModelEntry(id="solo", provider="openai", max_retries=1),
    ]
    providers = ProviderSet(Settings())

    async def fake_sleep(s: float) -> None:
        sleeps.append(s)

    return Gateway(
        ModelRegistry(entries, default_model="demo"),
        providers,
        retry=RetryPolicy(max_retries=2, initial=0.1, max_wait=1, retry_after_max=5),
        sleep=fake_sleep,
    )


def script(gateway: Gateway, *steps: object) -> ScriptedProvider:
    p = ScriptedProvider(list(steps))  # type: ignore[arg-type]
    gateway.providers.overrides["openai"] = p
    gateway.providers.overrides["anthropic"] = p
    gateway.providers.forget()
    return p


async def test_demo_model_is_labelled_deterministic_and_free(gateway: Gateway) -> None:
    a = await gateway.chat(SCOPE, req(None, "tell me about pipes"))
    b = await gateway.chat(SCOPE, req("demo", "tell me about pipes"))
    assert a.text == b.text and a.text.startswith("[demo]")
    assert a.demo and a.model == "demo" and a.provider == "demo"
    assert a.usage.input_tokens > 0 and a.usage.output_tokens > 0
    assert a.cost == Decimal(0)


async def test_demo_stream_ends_with_usage_model_and_cost(gateway: Gateway) -> None:
    chunks = [c async for c in gateway.stream(SCOPE, req("demo", "hello"))]
    text = "".join(c.delta for c in chunks)
    assert text == (await gateway.chat(SCOPE, req("demo", "hello"))).text
    last = chunks[-1]
    assert last.finish_reason is not None and last.usage is not None
    assert last.model == "demo" and last.cost == Decimal(0)
    assert all(c.usage is None for c in chunks[:-1])


async def test_cost_is_exact_decimal(gateway: Gateway) -> None:
    script(gateway, "one two three")
    r = await gateway.chat(SCOPE, req())
    # 10 input tokens * 0.01/1K + 3 output tokens * 0.03/1K
    assert r.cost == Decimal("0.00019")


async def test_unknown_model_fails_fast(gateway: Gateway) -> None:
    p = script(gateway)
    with pytest.raises(ModelNotFound) as info:
        await gateway.chat(SCOPE, req("nope-1"))
    assert "nope-1" in info.value.message
    assert p.calls == []


async def test_unsupported_capability_is_refused_before_the_call(gateway: Gateway) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    with pytest.raises(CapabilityNotSupported) as info:
        await gateway.chat(SCOPE, req("demo", tools=tools))
    assert info.value.status == 400 and info.value.details["param"] == "tools"
    with pytest.raises(CapabilityNotSupported):
        await gateway.chat(SCOPE, req("text-embedding-3-small"))


async def test_retryable_errors_are_retried_with_backoff(
    gateway: Gateway, sleeps: list[float]
) -> None:
    p = script(gateway, ProviderUnavailable("500"), ProviderUnavailable("502"), "finally")
    r = await gateway.chat(SCOPE, req())
    assert r.text == "finally" and r.model == "primary"
    assert len(p.calls) == 3
    assert len(sleeps) == 2 and all(0 < s <= 1 for s in sleeps)


async def test_retry_after_is_honoured(gateway: Gateway, sleeps: list[float]) -> None:
    script(gateway, ProviderRateLimited("429", retry_after=3.0), "ok")
    await gateway.chat(SCOPE, req())
    assert sleeps == [3.0]


async def test_retry_after_longer_than_allowed_is_not_waited(
    gateway: Gateway, sleeps: list[float]
) -> None:
    p = script(gateway, ProviderRateLimited("429", retry_after=600), "from backup")
    r = await gateway.chat(SCOPE, req())
    assert sleeps == []
    assert r.model == "backup" and r.notes["fallbacks"][0]["code"] == "PROVIDER_RATE_LIMITED"
    assert [c[0] for c in p.calls] == ["primary", "backup"]


async def test_non_retryable_errors_are_not_retried_nor_fall_back(gateway: Gateway) -> None:
    p = script(gateway, ProviderBadRequest("bad"), "never")
    with pytest.raises(ProviderBadRequest):
        await gateway.chat(SCOPE, req())
    assert len(p.calls) == 1


async def test_exhausted_retries_fall_back_and_report_the_answering_model(
    gateway: Gateway,
) -> None:
    p = script(gateway, *[ProviderUnavailable("down")] * 3, "backup answer")
    r = await gateway.chat(SCOPE, req())
    assert r.model == "backup" and r.provider == "anthropic"
    assert r.notes == {
        "fallbacks": [{"model": "primary", "code": "PROVIDER_UNAVAILABLE"}],
        "requestedModel": "primary",
    }
    assert [c[0] for c in p.calls] == ["primary"] * 3 + ["backup"]


async def test_per_model_retry_count(gateway: Gateway) -> None:
    p = script(gateway, ProviderUnavailable("a"), ProviderUnavailable("b"), "c")
    with pytest.raises(ProviderUnavailable):
        await gateway.chat(SCOPE, req("solo"))
    assert len(p.calls) == 2


async def test_hooks_see_every_attempt_with_outcomes(gateway: Gateway) -> None:
    script(gateway, ProviderUnavailable("x"), "done")
    hook = Recorder()
    gateway.hooks.append(hook)
    r = await gateway.chat(SCOPE, req())
    assert hook.before == ["primary", "primary"]
    (t1, m1, o1), (t2, m2, o2) = hook.after
    assert m1 == m2 == "primary"
    assert (t1, t2) == ("token-1", "token-2")
    assert o1.status == "PROVIDER_UNAVAILABLE" and o1.counts_against_provider and o1.attempt == 1
    assert o2.ok and o2.attempt == 2 and o2.cost == r.cost and o2.usage == r.usage
    assert not o2.streamed


async def test_model_unavailable_from_a_hook_uses_fallbacks(gateway: Gateway) -> None:
    p = script(gateway, "from backup")
    hook = Recorder(refuse={"primary": ModelUnavailable("breaker open")})
    gateway.hooks.append(hook)
    r = await gateway.chat(SCOPE, req())
    assert r.model == "backup"
    assert r.notes["fallbacks"] == [{"model": "primary", "code": "MODEL_UNAVAILABLE"}]
    assert [c[0] for c in p.calls] == ["backup"]  # the refused model was never called
    # the refusing hook's before_call did not return: it gets no after_call for it
    assert [(m, o.status) for _, m, o in hook.after] == [("backup", "ok")]


async def test_other_hook_refusals_reach_the_caller(gateway: Gateway) -> None:
    from gasworks.errors import GasworksError

    class Refused(GasworksError):
        code = "COST_LIMIT_EXCEEDED"
        status = 402

    p = script(gateway, "x")
    first, second = Recorder(), Recorder(refuse={"primary": Refused("too expensive")})
    gateway.hooks += [first, second]
    with pytest.raises(Refused):
        await gateway.chat(SCOPE, req())
    assert p.calls == []
    assert [o.status for _, _, o in first.after] == ["COST_LIMIT_EXCEEDED"]


async def test_stream_retries_before_first_chunk(gateway: Gateway) -> None:
    p = script(gateway, ProviderUnavailable("x"), "all good now")
    hook = Recorder()
    gateway.hooks.append(hook)
    chunks = [c async for c in gateway.stream(SCOPE, req())]
    assert "".join(c.delta for c in chunks) == "all good now"
    assert len(p.calls) == 2
    last = hook.after[-1][2]
    assert last.ok and last.streamed and last.time_to_first_token_ms is not None


async def test_stream_cut_after_first_chunk_reaches_the_caller(gateway: Gateway) -> None:
    cut = ProviderStreamInterrupted("cut")
    p = script(gateway, BrokenStream("one two three four", 2, cut), "never used")
    hook = Recorder()
    gateway.hooks.append(hook)
    got: list[str] = []
    with pytest.raises(ProviderStreamInterrupted):
        async for c in gateway.stream(SCOPE, req()):
            got.append(c.delta)
    assert got == ["one ", "two "]
    assert len(p.calls) == 1
    outcome = hook.after[-1][2]
    assert outcome.status == "PROVIDER_STREAM_INTERRUPTED" and outcome.counts_against_provider
    assert outcome.estimated and outcome.usage.output_tokens > 0


async def test_abandoned_stream_reports_cancelled(gateway: Gateway) -> None:
    script(gateway, "a b c d e f")
    hook = Recorder()
    gateway.hooks.append(hook)
    agen = gateway.stream(SCOPE, req())
    async for _ in agen:
        break
    await agen.aclose()  # type: ignore[attr-defined]
    assert hook.after[-1][2].status == "CANCELLED"


async def test_cancelled_attempt_still_reaches_after_call(gateway: Gateway) -> None:
    import asyncio

    started = asyncio.Event()

    class Hanging(ScriptedProvider):
        async def chat(self, model, req, attempt_timeout):  # type: ignore[override]
            started.set()
            await asyncio.sleep(3600)
            raise AssertionError("not reached")

        async def stream(self, model, req, attempt_timeout):  # type: ignore[override]
            started.set()
            await asyncio.sleep(3600)
            yield  # pragma: no cover

    gateway.providers.overrides["openai"] = Hanging()
    gateway.providers.forget()
    hook = Recorder()
    gateway.hooks.append(hook)

    async def consume_stream() -> None:
        async for _ in gateway.stream(SCOPE, req()):
            pass

    for call in (lambda: gateway.chat(SCOPE, req()), consume_stream):
        started.clear()
        task = asyncio.create_task(call())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [o.status for _, _, o in hook.after] == ["CANCELLED", "CANCELLED"]
