"""Guardrail overhead per call, and token estimation throughput against raw tiktoken.

1. Overhead per call (median µs), embedded SQLite and PostgreSQL:
   - the in-process hot path: breaker check + budget check + breaker record, with no spend
     limit configured for the caller (the limits list is cached) — no database round trip;
   - the same plus the pre-call checks (token estimate of a repeated prompt, context window);
   - breaker check + budget reservation + settlement with 2 spend limits in **lease mode**
     (reserved and settled in memory against the process's lease; the ledger row queued):
     median per call, and *sustained* (every call of a long run, with the ledger writer's
     batches and the lease top-ups it triggers running in the background, amortised);
   - the ledger writer's batch transaction (rows + settlements + lease upkeep), per row;
   - the whole hook (``before_call`` + ``after_call``): no limits / 2 limits leased / 2 limits
     with leases off (one reserving transaction per call) / the synchronous ledger
     (``ledger_flush_interval_ms = 0``, one transaction per call: what every call paid before
     group commit).
2. Token estimation: ``TokenCounter.count`` vs ``tiktoken.Encoding.encode`` on the same texts,
   (a) every text new (cache misses), (b) a chat whose system prompt and history repeat.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

from _common import median_us, per_call, per_call_async, record

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.guardrails.fakes import FakeModel, FakeOutcome  # noqa: E402

from gasworks.db.engine import Database  # noqa: E402
from gasworks.db.types import new_id, utcnow  # noqa: E402
from gasworks.llm.breaker import OutcomeKind  # noqa: E402
from gasworks.llm.budgets.ledger import Ledger, LedgerEntry  # noqa: E402
from gasworks.llm.budgets.limits import BudgetService, BudgetSet, LeasePolicy, Period, set_budget  # noqa: E402
from gasworks.llm.guardrails import Guardrails  # noqa: E402
from gasworks.llm.tokens import TokenCounter, get_encoding  # noqa: E402
from gasworks.modeltypes import CallScope, ChatRequest, Message, Usage  # noqa: E402
from gasworks.tenancy import service  # noqa: E402
from gasworks.tenancy.context import Role, TenantContext  # noqa: E402

N_FAST = 20_000
N_DB = 300
N_SUSTAINED = 20_000
BATCH = 500


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


def _guardrails(
    db: Database, *, leases: bool = True, interval: float = 0.05, lease_calls: int = 64
) -> Guardrails:
    policy = LeasePolicy(calls=lease_calls if leases else 0)
    budgets = BudgetService(db, leases=policy)
    # background=False: batches are written between timed rounds (untimed) unless asked
    ledger = Ledger(db, budgets, flush_interval=interval, background=interval <= 0)
    return Guardrails(db, budgets=budgets, ledger=ledger)


async def _overhead(url: str) -> dict[str, float]:
    db = Database(url)
    try:
        await db.upgrade()
        free = await _tenant(db, f"free-{uuid.uuid4().hex[:6]}")
        capped = await _tenant(db, f"capped-{uuid.uuid4().hex[:6]}")
        async with db.session() as s:
            await set_budget(s, capped, BudgetSet(period=Period.DAY, cost_limit=Decimal(10**6)))
            await set_budget(s, capped, BudgetSet(period=Period.MONTH, cost_limit=Decimal(10**7)))
        g = _guardrails(db)
        model = FakeModel()
        key = model.id
        free_scope = CallScope(tenant_id=free.tenant_id, api_key_id=free.api_key_id)
        capped_scope = CallScope(tenant_id=capped.tenant_id, api_key_id=capped.api_key_id)

        def entry(tenant_id: str) -> LedgerEntry:
            return LedgerEntry(
                id=new_id("call"),
                tenant_id=tenant_id,
                model=model.id,
                provider=model.provider,
                status="ok",
                created_at=utcnow(),
                input_tokens=300,
                output_tokens=120,
                cost=Decimal("0.005"),
                latency_ms=100.0,
            )

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

        def reserve_settle(gr: Guardrails) -> Callable[[], Awaitable[None]]:
            async def one() -> None:
                permit = await gr.breakers.check(key)
                r = await gr.budgets.reserve(
                    capped.tenant_id, capped.api_key_id, Decimal("0.01"), 500
                )
                await gr.breakers.record(permit, OutcomeKind.SUCCESS, latency_ms=100.0)
                await gr.ledger.record(entry(capped.tenant_id), r)

            return one

        usage = Usage(input_tokens=300, output_tokens=120)
        outcome = FakeOutcome(usage=usage, cost=model.cost(usage), latency_ms=100.0)

        def full(gr: Guardrails, scope: CallScope) -> Callable[[], Awaitable[None]]:
            async def one() -> None:
                token = await gr.before_call(scope, model, _request())
                await gr.after_call(token, scope, model, outcome)

            return one

        async def flush() -> None:
            await g.ledger.flush()

        async def batch_per_row() -> float:
            samples = []
            for _ in range(5):
                for _ in range(BATCH):
                    await reserve_settle(g)()
                t0 = time.perf_counter()
                await g.ledger.flush()
                samples.append((time.perf_counter() - t0) / BATCH)
            return statistics.median(samples) * 1e6

        async def sustained(lease_calls: int = 64) -> float:
            gs = _guardrails(db, interval=0.05, lease_calls=lease_calls)
            gs.ledger.background = True
            one = reserve_settle(gs)
            await one()
            await gs.ledger.flush()
            t0 = time.perf_counter()
            for i in range(N_SUSTAINED):
                await one()
                if i % 8 == 0:
                    await asyncio.sleep(0)  # a server's loop yields between requests
            await gs.ledger.close()  # everything written, leases returned: in the timing
            return (time.perf_counter() - t0) / N_SUSTAINED * 1e6

        exact = _guardrails(db, leases=False)
        sync = _guardrails(db, interval=0)

        async def flush_exact() -> None:
            await exact.ledger.flush()

        out = {
            "hot": median_us(await per_call_async(hot, n=N_FAST)),
            "hot_checks": median_us(await per_call_async(hot_checks, n=N_FAST // 4)),
            "lease_rs": median_us(
                await per_call_async(reserve_settle(g), n=32, rounds=300, between=flush)
            ),
            "lease_sustained": await sustained(),
            "lease_sustained_1024": await sustained(1024),
            "batch_row": await batch_per_row(),
            "exact_rs": median_us(
                await per_call_async(reserve_settle(exact), n=20, rounds=15, between=flush_exact)
            ),
            "full_free": median_us(
                await per_call_async(full(g, free_scope), n=200, rounds=25, between=flush)
            ),
            "full_capped": median_us(
                await per_call_async(full(g, capped_scope), n=32, rounds=150, between=flush)
            ),
            "full_exact": median_us(
                await per_call_async(
                    full(exact, capped_scope), n=20, rounds=15, between=flush_exact
                )
            ),
            "full_sync": median_us(await per_call_async(full(sync, free_scope), n=20, rounds=15)),
        }
        for gr in (g, exact, sync):
            await gr.ledger.close()
        return out
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
    # its own throw-away server (stopped by main), never the test suite's shared one
    pg_dir = Path(tempfile.mkdtemp(prefix="gw-bench-pg-"))
    server = pgserver.get_server(pg_dir, cleanup_mode="stop")
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
    try:
        pg = asyncio.run(_overhead(pg_url)) if pg_url else None
    finally:
        if server is not None:
            server.cleanup()  # stop the PostgreSQL this benchmark started
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

Spend limits: a day and a month limit on the tenant, far from being reached (lease mode at the
default lease settings: blocks of 64 call estimates). "Settlement" swaps the reservation for
the actual usage and queues the call's ledger row; the ledger writer commits rows and
settlements in batches (default every 200 ms or 500 rows).

| path | SQLite (embedded default) | PostgreSQL 16 |
|---|---|---|
{row("hot path: breaker check + budget check (no limits) + breaker record", "hot")}
{row("hot path + pre-call checks (token estimate of a repeated prompt)", "hot_checks")}
{row("**breaker check + reservation + settlement, 2 limits, leased** (memory)", "lease_rs")}
{row("same, sustained: 20,000 calls, batches + lease top-ups amortised", "lease_sustained")}
{row("same, sustained, leases of 1,024 estimates (`BUDGET_LEASE_CALLS`)", "lease_sustained_1024")}
{row(f"ledger batch transaction ({BATCH} rows + settlements + lease upkeep), per row", "batch_row")}
{row("breaker check + reservation + settlement, 2 limits, leases off (exact)", "exact_rs")}
{row("whole hook, no limits: checks + breaker + ledger row queued", "full_free")}
{row("whole hook, 2 limits, leased", "full_capped")}
{row("whole hook, 2 limits, leases off: 1 reserving transaction per call", "full_exact")}
{row("whole hook, no limits, synchronous ledger (flush interval 0)", "full_sync")}

Target ≤ 50 µs in-process for breaker check + budget reservation + settlement: met in lease
mode (the bold row). Its database work is the batch row (amortised per call) and the lease
top-ups; the sustained row is the honest total of a long run on one event loop, database
transactions included (they run in the driver's thread / the server while the loop goes on).
Near a limit (headroom under 256 call estimates by default) or with leases off, each call
pays one reserving transaction: the "leases off" rows. The synchronous-ledger row is what
every call paid before group commit (one transaction per call; ~1.4 ms of it on SQLite is
the async engine's per-transaction floor, about 19 event-loop round trips to aiosqlite's
thread). Before leases and group commit (same machine, 2026-11-26): reservation +
settlement with 2 limits 6,291 µs (SQLite) / 5,807 µs (PostgreSQL); whole hook without
limits 2,157 / 1,911 µs; with 2 limits 10,462 / 7,828 µs.

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
