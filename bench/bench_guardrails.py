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

from _common import interleaved, median_us, per_call, per_call_async, record

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.guardrails.fakes import FakeModel, FakeOutcome  # noqa: E402

from gasworks.db.engine import Database  # noqa: E402
from gasworks.db.types import new_id, utcnow  # noqa: E402
from gasworks.llm.breaker import OutcomeKind  # noqa: E402
from gasworks.llm.budgets import BudgetService, BudgetSet, LeasePolicy, Period, set_budget  # noqa: E402
from gasworks.llm.guardrails import Guardrails  # noqa: E402
from gasworks.llm.ledger import Ledger, LedgerEntry  # noqa: E402
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

        async def headline(rounds: int = 9, calls: int = 2000) -> dict[str, float]:
            """The whole hook (2 limits, leased) sustained: the ledger writer's batches and the
            lease top-ups run in the timed window (background writer, drained at the end of
            each round). Interleaved with the floor: the same hook in rounds of 32 calls with
            the ledger flush untimed between rounds (the figure this benchmark used to give)."""
            gs = _guardrails(db, interval=0.05)
            gs.ledger.background = True
            gf = _guardrails(db)
            sus, floor = full(gs, capped_scope), full(gf, capped_scope)
            await sus()
            await gs.ledger.flush()
            await floor()
            await gf.ledger.flush()
            load0 = os.getloadavg()[0]
            a_wall: list[float] = []
            a_cpu: list[float] = []
            b_wall: list[float] = []
            b_cpu: list[float] = []

            async def run_a() -> None:
                c0, t0 = time.process_time(), time.perf_counter()
                for i in range(calls):
                    await sus()
                    if i % 8 == 0:
                        await asyncio.sleep(0)  # a server's loop yields between requests
                await gs.ledger.flush()  # every row of the round written: in the window
                a_wall.append((time.perf_counter() - t0) / calls)
                a_cpu.append((time.process_time() - c0) / calls)

            async def run_b() -> None:
                wall = cpu = 0.0
                for _ in range(calls // 32):
                    c0, t0 = time.process_time(), time.perf_counter()
                    for _ in range(32):
                        await floor()
                    wall += time.perf_counter() - t0
                    cpu += time.process_time() - c0
                    await gf.ledger.flush()  # untimed: the floor leaves it out
                b_wall.append(wall / (calls // 32 * 32))
                b_cpu.append(cpu / (calls // 32 * 32))

            for r in range(rounds):
                for step in (run_a, run_b) if r % 2 == 0 else (run_b, run_a):
                    await step()
            await gs.ledger.close()
            await gf.ledger.close()
            return {
                "sus_wall": median_us(a_wall),
                "sus_cpu": median_us(a_cpu),
                "floor_wall": median_us(b_wall),
                "floor_cpu": median_us(b_cpu),
                "sus_over_floor": statistics.median(
                    a / b for a, b in zip(a_wall, b_wall, strict=True)
                ),
                "load0": load0,
                "load1": os.getloadavg()[0],
            }

        exact = _guardrails(db, leases=False)
        sync = _guardrails(db, interval=0)

        async def flush_exact() -> None:
            await exact.ledger.flush()

        out = {
            **await headline(),
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
    ordinary = _tokens_per_s(enc.encode_ordinary, texts, total)

    counter_nocache = TokenCounter("cl100k_base", cache_size=0, cache_min_chars=10**9)
    miss = _tokens_per_s(counter_nocache.count, texts, total)

    def raw_round() -> None:
        for t in texts:
            enc.encode(t)

    def cold_round() -> None:
        # every text seen for the first time (a new counter: cache insert cost included)
        c = TokenCounter("cl100k_base", cache_size=len(texts) + 10)
        for t in texts:
            c.count(t)

    # the headline: interleaved rounds, raw encode vs a cold counter (no cache hits)
    cmp = interleaved(cold_round, raw_round, n=1, rounds=9)
    cold = total / (cmp.a_us / 1e6)
    raw = total / (cmp.b_us / 1e6)
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
        "cold_vs_raw": cmp.inverse,  # median per round of raw time / cold time
        "est_load0": cmp.load[0],
        "est_load1": cmp.load[1],
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
            ("**`TokenCounter.count`, every text new (cold: the headline)**", est["cold"], raw),
            ("chat, 200 turns (system + last 10 turns resent), raw `encode`", convo, convo),
            (
                "same chat, `TokenCounter.count` (**cache hits**: repeats looked up, not counted)",
                est["convo_ours"],
                convo,
            ),
        ]
    )

    def row(label: str, key: str) -> str:
        pgv = f"{pg[key]:.1f}" if pg else "n/a"
        return f"| {label} | {sqlite[key]:.1f} | {pgv} |"

    def headline_row(label: str, db: dict[str, float]) -> str:
        return (
            f"| {label} | {db['sus_wall']:.1f} µs ({db['sus_cpu']:.1f} µs CPU) | "
            f"{db['floor_wall']:.1f} µs ({db['floor_cpu']:.1f} µs CPU) | "
            f"{db['sus_over_floor']:.1f}x | {db['load0']:.1f} → {db['load1']:.1f} |"
        )

    heads = [headline_row("SQLite (embedded default)", sqlite)]
    if pg:
        heads.append(headline_row("PostgreSQL 16 (local, pgserver; its CPU not counted)", pg))
    headline_table = "\n".join(heads)
    body = f"""
The machine is shared with other work ({os.cpu_count()} cores); the load average is given
beside the interleaved figures. CPU is this process's CPU time per call, every thread of it
(aiosqlite's included); under load the wall time also holds the time spent waiting for a core.

## The whole hook, sustained (headline)

The guardrail hook as the default deployment runs it (`before_call` + `after_call`, 2 spend
limits, lease mode), 2,000 calls per round with the event loop yielding every 8 calls; the
ledger writer runs in the background and is drained at the end of every round, so its batch
transactions and the lease top-ups are inside the timed window. Interleaved (9 alternating
rounds in one process) with the floor: the same hook timed in rounds of 32 calls with the
ledger flush outside the window (what this benchmark reported before issue #19).

| database | sustained per call (headline) | floor (flush untimed) \
| sustained ÷ floor (median per round) | load average |
|---|---|---|---|---|
{headline_table}

## Parts of the hook (median µs; Python no-op call: {noop:.2f} µs)

Not interleaved: each row is its own loop, for the breakdown; rows marked "flush untimed"
leave the ledger writer's batches out of the window and are floors, not costs.

Spend limits: a day and a month limit on the tenant, far from being reached (lease mode at the
default lease settings: blocks of 64 call estimates). "Settlement" swaps the reservation for
the actual usage and queues the call's ledger row; the ledger writer commits rows and
settlements in batches (default every 50 ms or 500 rows).

| path | SQLite (embedded default) | PostgreSQL 16 |
|---|---|---|
{row("hot path: breaker check + budget check (no limits) + breaker record", "hot")}
{row("hot path + pre-call checks (token estimate of a repeated prompt)", "hot_checks")}
{row("check + reservation + settlement, 2 limits, leased (flush untimed: floor)", "lease_rs")}
{row("same, sustained: 20,000 calls, batches + lease top-ups in the window", "lease_sustained")}
{row("same, sustained, leases of 1,024 estimates (`BUDGET_LEASE_CALLS`)", "lease_sustained_1024")}
{row(f"ledger batch transaction ({BATCH} rows + settlements + lease upkeep), per row", "batch_row")}
{row("breaker check + reservation + settlement, 2 limits, leases off (exact)", "exact_rs")}
{row("whole hook, no limits (flush untimed: floor)", "full_free")}
{row("whole hook, 2 limits, leased (flush untimed: floor)", "full_capped")}
{row("whole hook, 2 limits, leases off: 1 reserving transaction per call", "full_exact")}
{row("whole hook, no limits, synchronous ledger (flush interval 0)", "full_sync")}

Target ≤ 50 µs for breaker check + budget reservation + settlement: judge it on the sustained
rows (database work included), not the floors. Near a limit (headroom under 256 call
estimates by default) or with leases off, each call pays one reserving transaction: the
"leases off" rows. The synchronous-ledger row is what every call paid before group commit
(one transaction per call).

## Token estimation (cl100k_base, {int(est["tokens"]):,} tokens of repository text)

| what | tokens/s | vs raw `encode` |
|---|---|---|
{tok_rows}

Raw `encode` and the cold counter are interleaved (9 alternating rounds over the whole text,
load {est["est_load0"]:.1f} → {est["est_load1"]:.1f}); the cold counter's rate relative to
raw is the median of the per-round ratios: {est["cold_vs_raw"]:.2f}x. Target ≥ 90% of raw on
the same text: judge it on that cold row. The chat row is **cache hits** (immutable content
that repeats — the system prompt, resent history — is looked up, not counted again): it is
not a speed claim about counting. The other rows are single loops, not interleaved.
"""
    return record("guardrails", body)


if __name__ == "__main__":
    print(main())
