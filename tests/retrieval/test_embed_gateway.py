"""``Gateway.embed`` in a started runtime (both databases): validation before any call,
batching, ledger rows marked as embeddings with what they served, budgets reserved and
settled, breakers, the default embedding model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from gasworks.errors import (
    CapabilityNotSupported,
    CostLimitExceeded,
    ModelUnavailable,
    ProviderUnavailable,
    ValidationFailed,
)
from gasworks.llm.budgets.ledger import GroupBy, usage
from gasworks.llm.budgets.limits import BudgetSet, Period, list_budgets, set_budget
from gasworks.llm.guardrail_tables import LedgerRow
from gasworks.llm.guardrails_runtime import flush_ledger, get_guardrails
from gasworks.llm.runtime import get_gateway
from gasworks.modeltypes import CallScope
from gasworks.retrieval.types import Embedder, EmbedRequest
from gasworks.runtime import Runtime
from gasworks.settings import Settings
from gasworks.testing import FakeOpenAI, Fault
from gasworks.wiring import build_runtime
from tests.guardrails.test_budgets import tenant

PRICE = Decimal("0.1")  # per 1K tokens: big enough to see


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as f:
        yield f  # type: ignore[misc]


@pytest.fixture
async def rt(settings: Settings, fake: FakeOpenAI, monkeypatch) -> AsyncIterator[Runtime]:
    monkeypatch.setenv("GW_EMBED_KEY", "sk-fake-not-real")
    path = Path(settings.home) / "models.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = {"dimensions": 8, "max_input_tokens": 20, "max_batch": 2}
    path.write_text(
        yaml.safe_dump(
            {
                "models": [
                    {
                        "id": "emb",
                        "provider": "openai_compatible",
                        "base_url": f"{fake.url}/v1",
                        "api_key_env": "GW_EMBED_KEY",
                        "kind": "embedding",
                        "input_per_1k": str(PRICE),
                        "max_retries": 0,
                        "embedding": spec,
                    }
                ]
            }
        )
    )
    s = settings.model_copy(
        update={
            "models_file": path,
            "provider_max_retries": 0,
            "breaker_minimum_calls": 2,
            "breaker_failure_rate_threshold": 0.5,
            "guardrails_maintenance_interval_seconds": 0,
        }
    )
    runtime = build_runtime(s)
    await runtime.start(migrate=False)
    try:
        yield runtime
    finally:
        await runtime.stop()


async def rows(rt: Runtime) -> list[LedgerRow]:
    await flush_ledger(rt)
    async with rt.db.session() as s:
        return list((await s.execute(select(LedgerRow).order_by(LedgerRow.created_at))).scalars())


async def test_the_gateway_is_the_embedder(rt) -> None:
    assert isinstance(get_gateway(rt), Embedder)


async def test_batches_land_on_the_ledger_as_embeddings(rt, fake) -> None:
    ctx = await tenant(rt)
    scope = CallScope(tenant_id=ctx.tenant_id, api_key_id=ctx.api_key_id, run_id="run_1")
    texts = ["one two", "three", "four five six", "seven", "eight nine"]
    req = EmbedRequest("emb", texts, served={"documentId": "doc_1"})
    r = await get_gateway(rt).embed(scope, req)
    assert len(r.vectors) == 5 and r.dimensions == 8 and r.space.key == "emb_8"
    assert [len(x.json()["input"]) for x in fake.requests] == [2, 2, 1]  # max_batch 2
    got = await rows(rt)
    assert len(got) == 3
    assert {(x.kind, x.model, x.status, x.run_id) for x in got} == {
        ("embedding", "emb", "ok", "run_1")
    }
    assert all(x.served == {"documentId": "doc_1"} for x in got)
    assert sum(x.input_tokens for x in got) == r.input_tokens == 9  # a token per word
    assert sum((x.cost for x in got), Decimal(0)) == r.cost == 9 * PRICE / 1000
    async with rt.db.session() as s:
        report = await usage(s, ctx, group_by=[GroupBy.KIND])
    assert [(row.group["kind"], row.calls) for row in report.rows] == [("embedding", 3)]


async def test_embedding_spend_counts_against_budgets(rt) -> None:
    ctx = await tenant(rt)
    async with rt.db.session() as s:
        await set_budget(s, ctx, BudgetSet(period=Period.DAY, cost_limit=Decimal("0.0015")))
    scope = CallScope(tenant_id=ctx.tenant_id)
    gw = get_gateway(rt)
    r = await gw.embed(scope, EmbedRequest("emb", ["a b c d e"] * 2))  # 10 tokens: 0.001
    assert r.cost == Decimal("0.001")
    with pytest.raises(CostLimitExceeded):  # another 0.001 would go over 0.0015
        await gw.embed(scope, EmbedRequest("emb", ["a b c d e"] * 2))
    await flush_ledger(rt)
    async with rt.db.session() as s:
        (b,) = await list_budgets(s, ctx)
    assert b.spent_cost == Decimal("0.001")


async def test_the_request_cost_limit_refuses_before_any_call(rt, fake) -> None:
    ctx = await tenant(rt)
    req = EmbedRequest("emb", ["a b c d e"] * 2, cost_limit=Decimal("0.0009"))
    with pytest.raises(CostLimitExceeded) as info:
        await get_gateway(rt).embed(CallScope(tenant_id=ctx.tenant_id), req)
    assert info.value.details["estimate"] == "0.001"
    assert fake.requests == [] and await rows(rt) == []


@pytest.mark.parametrize(
    ("req", "field"),
    [
        (EmbedRequest("emb", []), "input"),
        (EmbedRequest("emb", ["fine", "  "]), "input"),
        (EmbedRequest("emb", ["word " * 30]), "input"),  # 30 tokens > 20
        (EmbedRequest("emb", ["x"], dimensions=4), "dimensions"),
    ],
)
async def test_bad_input_is_refused_before_any_call(rt, fake, req, field) -> None:
    with pytest.raises(ValidationFailed) as info:
        await get_gateway(rt).embed(CallScope(tenant_id="t"), req)
    assert info.value.details["field"] == field and info.value.status == 422
    assert fake.requests == []


async def test_an_input_over_the_limit_is_named(rt) -> None:
    req = EmbedRequest("emb", ["ok", "word " * 30])
    with pytest.raises(ValidationFailed) as info:
        await get_gateway(rt).embed(CallScope(tenant_id="t"), req)
    details = info.value.details
    assert (details["index"], details["limit"], details["model"]) == (1, 20, "emb")
    assert details["tokens"] >= 30
    assert "never truncates" in info.value.message


async def test_a_chat_model_is_not_an_embedder(rt) -> None:
    with pytest.raises(CapabilityNotSupported):
        await get_gateway(rt).embed(CallScope(tenant_id="t"), EmbedRequest("demo", ["x"]))


async def test_the_default_is_the_deployments_embedding_model(rt) -> None:
    model = get_gateway(rt).registry.resolve_embedding(None)
    assert model.id == "local/all-minilm-l6-v2" == rt.settings.embedding_model


async def test_failures_feed_the_breaker_which_then_refuses(rt, fake) -> None:
    ctx = await tenant(rt)
    scope = CallScope(tenant_id=ctx.tenant_id)
    gw = get_gateway(rt)
    fake.faults.extend([Fault.http(500), Fault.http(500)])
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            await gw.embed(scope, EmbedRequest("emb", ["x"]))
    with pytest.raises(ModelUnavailable):  # open: no call, and no fallback to another space
        await gw.embed(scope, EmbedRequest("emb", ["x"]))
    assert len(fake.requests) == 2
    failed = [x for x in await rows(rt) if x.status != "ok"]
    assert [(x.kind, x.error_code) for x in failed] == [("embedding", "PROVIDER_UNAVAILABLE")] * 2
    assert get_guardrails(rt).breakers is not None


async def test_embed_many_shares_calls_and_keeps_a_ledger_row_per_request(rt, fake) -> None:
    """The documents pipeline's batches: several requests in as few provider calls as
    ``max_batch`` allows (2 here), each with its own outcome, vectors, tokens, cost and ledger
    rows (its ``served``), exactly as if embedded alone."""
    ctx = await tenant(rt)
    scope = CallScope(tenant_id=ctx.tenant_id)
    gw = get_gateway(rt)
    reqs = [
        EmbedRequest("emb", ["one two"], served={"documentId": "d1"}),
        EmbedRequest("emb", ["three", "four five six"], served={"documentId": "d2"}),
        EmbedRequest("emb", ["seven"], served={"documentId": "d3"}),
    ]
    got = await gw.embed_many(scope, reqs)
    assert [len(x.json()["input"]) for x in fake.requests] == [2, 2]  # 4 inputs, 2 calls
    alone = [await gw.embed(scope, r) for r in reqs]  # the same, one request at a time
    for many, one in zip(got, alone, strict=True):
        assert not isinstance(many, Exception)
        assert many.vectors == one.vectors
        assert (many.input_tokens, many.cost) == (one.input_tokens, one.cost)
    ledger = [x for x in await rows(rt) if x.created_at is not None][:4]  # the batched calls
    per_doc: dict[str, int] = {}
    for x in ledger:
        per_doc[x.served["documentId"]] = per_doc.get(x.served["documentId"], 0) + x.input_tokens
    # d2's inputs were split over both calls: a row in each, its tokens its own
    assert per_doc == {"d1": 2, "d2": 4, "d3": 1}
    assert sorted(x.served["documentId"] for x in ledger) == ["d1", "d2", "d2", "d3"]


async def test_embed_many_refuses_a_bad_request_alone_and_fails_a_call_for_its_requests(
    rt, fake
) -> None:
    ctx = await tenant(rt)
    scope = CallScope(tenant_id=ctx.tenant_id)
    gw = get_gateway(rt)
    too_long = " ".join(["word"] * 30)  # over max_input_tokens (20): refused before any call
    got = await gw.embed_many(
        scope,
        [
            EmbedRequest("emb", ["fine"], served={"documentId": "d1"}),
            EmbedRequest("emb", [too_long], served={"documentId": "d2"}),
            EmbedRequest("emb", ["also fine"], served={"documentId": "d3"}),
        ],
    )
    assert isinstance(got[1], ValidationFailed)
    assert not isinstance(got[0], Exception) and not isinstance(got[2], Exception)
    assert [x.json()["input"] for x in fake.requests] == [["fine", "also fine"]]
    fake.faults.append(Fault.http(500))  # the next call fails (no retries here)
    failed = await gw.embed_many(
        scope,
        [
            EmbedRequest("emb", ["a"], served={"documentId": "d1"}),
            EmbedRequest("emb", ["b"], served={"documentId": "d2"}),
        ],
    )
    # the failed call held both: each request answers the failure (the breaker counted one
    # failed call per request, as it would have counted their calls alone)
    assert [type(x).__name__ for x in failed] == ["ProviderUnavailable"] * 2
    errors = [x for x in await rows(rt) if x.status != "ok"]
    assert sorted(x.served["documentId"] for x in errors) == ["d1", "d2"]
