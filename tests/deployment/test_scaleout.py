"""The multi-process proof of issue 15: the deployment a growing team runs, stood up whole.

Two `gasworks serve --no-worker` (API only) and two `gasworks worker` processes, each with its
own GASWORKS_HOME (as on separate hosts), share one PostgreSQL database (the pgserver fixture)
and one S3 bucket (moto's server, a real S3 wire implementation); models answer from the fake
OpenAI server (chat and embeddings, through the official SDK). Each test drives both API
processes over HTTP and checks what a user sees and what the three stores hold. Every wait
polls with a deadline; the only duration asserted is the prompt invalidation bound that
docs/operations.md promises.

PostgreSQL only: the deployment is PostgreSQL + S3 (SQLite is one host's database).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from gasworks.db.engine import Database
from gasworks.db.types import utcnow
from gasworks.documents.tables import CollectionDocumentRow, CollectionRow, DocumentRow
from gasworks.jobs.tables import JobRow
from gasworks.llm.guardrail_tables import LedgerRow
from gasworks.retrieval.tables import ChunkRow
from gasworks.retrieval.types import source_id
from gasworks.testing import FakeOpenAI
from gasworks.yamlsafe import dump_yaml
from tests.dbtemplates import DIALECTS
from tests.documents.test_processes import stage_completions
from tests.guardrails import _budget_worker
from tests.guardrails.gateway_env import gateway_settings, model_entries, started
from tests.s3server import CREDENTIALS, free_port, moto_server, new_bucket

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif("postgres" not in DIALECTS, reason="the deployment shares PostgreSQL"),
]

EXE = str(Path(sys.executable).with_name("gasworks"))
START = 120.0  # a process on a loaded 2-core machine
WAIT = 240.0
#: docs/operations.md: a pointer move is seen by every process within this (PostgreSQL)
PROMPT_BOUND = 1.0
LEADER_TTL = 2.0
JOB_LEASE = 3.0


@dataclass
class Deployment:
    url: str
    base: Path
    env: dict[str, str]
    key: str
    s3: str
    bucket: str
    provider: FakeOpenAI
    apis: list[str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        home = self.base / name
        env = self.env | {"GASWORKS_HOME": str(home)}
        log = (self.base / f"{name}.log").open("ab")  # stdout+stderr, read on a failure
        proc = subprocess.Popen([EXE, *args], env=env, stdout=log, stderr=log)
        log.close()
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        path = self.base / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def spawn_worker(self, name: str) -> subprocess.Popen[bytes]:
        return self.spawn(name, "worker", "--concurrency", "4")

    def wait_worker(self, name: str) -> None:
        proc = self.procs[name]
        until(lambda: " ready" in self.log(name), START, f"{name} ready", proc, self)

    def acquired_at(self, name: str) -> float | None:
        """When the process logged taking the leader lease (epoch seconds), if it did."""
        for line in self.log(name).splitlines():
            if '"leader.acquired"' in line:
                stamp = json.loads(line)["timestamp"].replace("Z", "+00:00")
                return datetime.fromisoformat(stamp).timestamp()
        return None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def db(self) -> Database:
        return Database(self.url)

    def s3_keys(self) -> list[str]:
        import boto3

        client = boto3.client("s3", endpoint_url=self.s3, region_name="us-east-1")
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            keys.extend(o["Key"] for o in page.get("Contents", []))
        return keys

    def document_blobs(self) -> Counter[str]:
        """S3 objects per document id (keys ``…/<tenant>/documents/<doc>/…``)."""
        out: Counter[str] = Counter()
        for key in self.s3_keys():
            parts = key.split("/")
            if "documents" in parts:
                out[parts[parts.index("documents") + 1]] += 1
        return out


def until(
    cond: Callable[[], Any],
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    dep: Deployment | None = None,
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            name = next((n for n, p in (dep.procs if dep else {}).items() if p is proc), "?")
            tail = dep.log(name)[-3000:] if dep else ""
            raise AssertionError(f"{what}: the process exited: {tail}")
        assert time.monotonic() < deadline, f"{what}: not reached in {timeout:.0f}s"
        time.sleep(0.1)


async def poll(cond: Callable[[], Any], timeout: float, what: str, *, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = await cond()
        if got:
            return got
        assert time.monotonic() < deadline, f"{what}: not reached in {timeout:.0f}s"
        await asyncio.sleep(every)


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def deployment(postgres_template: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    url = postgres_template.new()
    base = tmp_path_factory.mktemp("deployment")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    with pytest.MonkeyPatch.context() as mp, moto_server() as s3, FakeOpenAI() as provider:
        for k, v in CREDENTIALS.items():  # this process's boto3 (bucket, listing) too
            mp.setenv(k, v)
        bucket = new_bucket(s3)
        # the chat models of the guardrails' end-to-end tests, plus an embedding model
        models = base / "models.yaml"
        entries = model_entries(provider.url, provider.url)
        entries.append(
            {
                "id": "emb",
                "provider": "openai_compatible",
                "base_url": f"{provider.url}/v1",
                "api_key_env": "GW_FAKE_PROVIDER_KEY",
                "kind": "embedding",
                "input_per_1k": "0",
                "max_retries": 0,
                "embedding": {"dimensions": 8, "max_input_tokens": 2000, "max_batch": 64},
            }
        )
        models.write_text(dump_yaml({"models": entries}))
        models.chmod(0o600)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GASWORKS_", "AWS_")) or k == "GASWORKS_TEST_POSTGRES_URL"
        } | {
            **CREDENTIALS,
            "GW_FAKE_PROVIDER_KEY": "sk-fake-not-real",
            "GASWORKS_DATABASE_URL": url,
            # one key for the deployment (each host's GASWORKS_HOME would otherwise make its own)
            "GASWORKS_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
            "GASWORKS_BLOB_URL": f"s3://{bucket}/gasworks",
            "GASWORKS_BLOB_S3_ENDPOINT_URL": s3,
            "GASWORKS_MODELS_FILE": str(models),
            "GASWORKS_MODELS_REFRESH_SECONDS": "0",
            "GASWORKS_EMBEDDING_MODEL": "emb",
            "GASWORKS_VECTOR_INDEX": "pgvector",
            "GASWORKS_PROVIDER_MAX_RETRIES": "0",
            "GASWORKS_AUTH_CACHE_TTL_SECONDS": "0",
            "GASWORKS_LEADER_LEASE_SECONDS": str(LEADER_TTL),
            "GASWORKS_DOCUMENTS_LEASE_SECONDS": str(JOB_LEASE),
            "GASWORKS_DOCUMENTS_POLL_MAX_SECONDS": "0.2",
            "GASWORKS_DOCUMENTS_RETRY_BASE_SECONDS": "0",
            "GASWORKS_LOG_LEVEL": "INFO",
        }
        init = subprocess.run(
            [EXE, "init", "--json"],
            env=env | {"GASWORKS_HOME": str(base / "init")},
            capture_output=True,
            text=True,
            timeout=START,
        )
        assert init.returncode == 0, init.stderr
        dep = Deployment(url, base, env, json.loads(init.stdout)["key"], s3, bucket, provider, [])
        try:
            for i in range(2):
                port = free_port()
                dep.spawn(f"api{i}", "serve", "--no-worker", "--port", str(port))
                dep.apis.append(f"http://127.0.0.1:{port}")
            for i in range(2):
                dep.spawn_worker(f"worker{i}")
            for i in range(2):
                dep.wait_worker(f"worker{i}")
            for i, api in enumerate(dep.apis):
                until(
                    lambda api=api: _ready(api), START, f"api{i} ready", dep.procs[f"api{i}"], dep
                )
            yield dep
        finally:
            for proc in dep.procs.values():
                if proc.poll() is None:
                    proc.terminate()
            for proc in dep.procs.values():
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    postgres_template.drop(url)


async def _count(db: Database, model: Any, *where: Any) -> int:
    async with db.read_session() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


# --- (a) a budget admitting exactly N, through both API processes at once -------------------


async def test_a_budget_of_n_serves_exactly_n_across_both_api_processes(
    deployment: Deployment, tmp_path: Path
) -> None:
    dep = deployment
    admits = 12
    # the per-call cost is the reservation of the guardrails' own precheck (as in race.py);
    # the provider then reports exactly the reserved maximum, so every call costs its estimate
    settings = gateway_settings(tmp_path / "probe", dep.url, dep.provider.url, dep.provider.url)
    async with started(settings.model_copy(update={"background_work": False})) as e:
        from gasworks.llm.runtime import get_registry

        check = e.guardrails.precheck(
            get_registry(e.runtime).resolve("lonely"), _budget_worker.request()
        )
    dep.provider.reply.input_tokens = check.estimate.tokens
    dep.provider.reply.output_tokens = check.max_output
    per_call = check.max_cost
    limit = per_call * admits + per_call / 2
    body = {
        "model": "lonely",
        "messages": [{"role": "user", "content": _budget_worker.PROMPT}],
        "max_tokens": 100,
    }
    async with httpx.AsyncClient(timeout=120, headers=dep.headers()) as c:
        r = await c.put(
            f"{dep.apis[0]}/api/budgets", json={"period": "day", "costLimit": str(limit)}
        )
        assert r.status_code == 200, r.text

        async def call(i: int) -> tuple[int, str]:
            r = await c.post(f"{dep.apis[i % 2]}/v1/chat/completions", json=body)
            code = "" if r.status_code == 200 else r.json()["error"]["code"]
            return r.status_code, code

        results = await asyncio.gather(*(call(i) for i in range(3 * admits)))
        served = [r for r in results if r[0] == 200]
        refused = Counter(code for status, code in results if status != 200)
        assert len(served) == admits, results
        assert set(refused) <= {"COST_LIMIT_EXCEEDED"} and sum(refused.values()) == 2 * admits
        # both processes served some (the limit was shared, not per process)
        db = dep.db()
        try:
            await poll(  # the ledger writers flush in the background
                lambda: _ledger_rows(db, admits), WAIT, "ledger rows of the served calls"
            )
            async with db.read_session() as s:
                ledger = sum((await s.scalars(select(LedgerRow.cost))).all(), Decimal(0))
        finally:
            await db.dispose()
        for api in dep.apis:  # each API process reports the same spend: the ledger's
            budgets = (await c.get(f"{api}/api/budgets")).json()
            assert Decimal(budgets[0]["spentCost"]) == ledger == per_call * admits
        r = await c.put(f"{dep.apis[1]}/api/budgets", json={"period": "day"})
        assert r.status_code == 204, r.text


async def _ledger_rows(db: Database, n: int) -> bool:
    got = await _count(db, LedgerRow, LedgerRow.status == "ok")
    assert got <= n, f"more calls written than served: {got}"
    return got == n


# --- (b) a breaker tripped through one API process refuses on the other ---------------------


async def test_a_breaker_tripped_on_one_api_process_refuses_on_the_other(
    deployment: Deployment,
) -> None:
    dep = deployment
    body = {"model": "lonely", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    async with httpx.AsyncClient(timeout=60, headers=dep.headers()) as c:
        for api in dep.apis:
            r = await c.post(f"{api}/v1/chat/completions", json=body)
            assert r.status_code == 200, r.text  # each process has the breaker closed
        listed = (await c.get(f"{dep.apis[0]}/api/breakers")).json()
        key = next(b["breaker"] for b in listed if b["breaker"].split("@")[0] == "lonely")
        r = await c.post(f"{dep.apis[0]}/api/breakers/{key}/trip", json={"reason": "proof"})
        assert r.status_code == 200, r.text

        async def refused() -> bool:
            r = await c.post(f"{dep.apis[1]}/v1/chat/completions", json=body)
            if r.status_code == 200:
                return False
            err = r.json()["error"]
            assert (r.status_code, err["code"]) == (503, "MODEL_UNAVAILABLE"), r.text
            assert "forced_open" in err["message"]
            return True

        # within the breaker sync interval (GASWORKS_GUARDRAILS_MAINTENANCE_INTERVAL_SECONDS)
        await poll(refused, WAIT, "the other process refuses")
        r = await c.post(f"{dep.apis[1]}/api/breakers/{key}/reset", json={"reason": "proof over"})
        assert r.status_code == 200, r.text
        await poll(
            lambda: _served(c, f"{dep.apis[0]}/v1/chat/completions", body),
            WAIT,
            "the reset is seen by the first process",
        )


async def _served(c: httpx.AsyncClient, url: str, body: dict[str, Any]) -> bool:
    return (await c.post(url, json=body)).status_code == 200


# --- (c) a prompt deployed through one is resolved by the other within the bound ------------


async def test_a_prompt_deployed_on_one_is_resolved_on_the_other_within_the_bound(
    deployment: Deployment,
) -> None:
    dep = deployment
    scope = {"model": "lonely", "workflowId": "proof"}
    async with httpx.AsyncClient(timeout=60, headers=dep.headers()) as c:
        a, b = dep.apis

        async def deploy(content: str, expected: int) -> str:
            v = await c.post(
                f"{a}/api/prompts/versions",
                json={"name": "proof-system", "content": {"system": content}},
            )
            assert v.status_code == 201, v.text
            moved = await c.post(
                f"{a}/api/prompts/pointer/move",
                json={"scope": scope, "versionId": v.json()["id"], "expectedVersion": expected},
            )
            assert moved.status_code == 200, moved.text
            return str(v.json()["id"])

        async def resolved_on_b() -> str | None:
            r = await c.post(f"{b}/api/prompts/resolve", json=scope)
            assert r.status_code == 200, r.text
            return r.json()["versionId"]  # type: ignore[no-any-return]

        first = await deploy("You are version one.", 0)
        await poll(lambda: _is(resolved_on_b, first), WAIT, "first deployment on b")
        for _ in range(3):  # b now serves `first` from its cache
            assert await resolved_on_b() == first
        second = await deploy("You are version two.", 1)
        deployed = time.monotonic()
        # the last resolve that still answered `first` was sent before the move was seen;
        # the first answering `second` ends after it: the move became visible in between
        sent = await poll(
            lambda: _sent_when(resolved_on_b, second), WAIT, "second on b", every=0.01
        )
        assert sent - deployed <= PROMPT_BOUND, f"seen {sent - deployed:.2f}s after the move"


async def _is(get: Callable[[], Any], want: str) -> bool:
    return bool(await get() == want)


async def _sent_when(get: Callable[[], Any], want: str) -> float | None:
    sent = time.monotonic()
    return sent if await get() == want else None


# --- (d) 100 documents while a worker is SIGKILLed and restarted ---------------------------


async def test_100_documents_survive_a_worker_killed_mid_ingestion(
    deployment: Deployment,
) -> None:
    dep = deployment
    db = dep.db()
    try:
        ids: list[str] = []

        async def upload_all() -> None:
            async with httpx.AsyncClient(timeout=120, headers=dep.headers()) as c:
                for batch in range(10):  # alternating API processes, ten files a request
                    files = [
                        ("files", (f"d{n}.txt", f"document {n}\n\nabout gas works {n}".encode()))
                        for n in range(batch * 10, batch * 10 + 10)
                    ]
                    r = await c.post(f"{dep.apis[batch % 2]}/api/documents", files=files)
                    assert r.status_code == 201, r.text
                    ids.extend(d["document"]["id"] for d in r.json()["documents"])

        async def kill_the_busy_leader() -> tuple[str, Any, float]:
            # the worker that leads (periodic tasks), once it holds ingestion jobs
            name, proc = await poll(lambda: _leader_with_jobs(dep, db), WAIT, "busy leader")
            proc.send_signal(signal.SIGKILL)
            killed = time.time()
            assert await asyncio.to_thread(proc.wait, 60) == -signal.SIGKILL
            return name, proc, killed

        _, (victim_name, victim, killed) = await asyncio.gather(
            upload_all(), kill_the_busy_leader()
        )
        assert len(set(ids)) == 100
        survivor = next(
            p for n, p in dep.procs.items() if n.startswith("worker") and p is not victim
        )
        # the survivor takes the leader lease within one lease (+ a heartbeat) of the
        # victim's last renewal: measured by the survivor's own log, not this busy process
        name = next(n for n, p in dep.procs.items() if p is survivor)
        acquired = await poll(lambda: _async(dep.acquired_at(name)), WAIT, "the survivor leads")
        took = acquired - killed
        assert await _leader_pid(db, survivor.pid)
        # (+ 2 s: the survivor's event loop is busy ingesting on a loaded 2-core machine)
        assert took <= LEADER_TTL + LEADER_TTL / 3 + 2.0, f"took over after {took:.1f}s"
        restarted = dep.spawn_worker(victim_name)  # another pid; joins in when it is up
        rows = await poll(lambda: _all_settled(db, ids), WAIT * 2, "all 100 documents settle")
        assert {r.status for r in rows} == {"ready"}, Counter(r.status for r in rows)
        assert restarted.poll() is None, dep.log(victim_name)[-3000:]
        # every stage of every document committed exactly once
        done = await stage_completions(SimpleNamespace(db=db))
        mine = {k: n for k, n in done.items() if k[0] in set(ids)}
        assert len(mine) == 100 * 4 and set(mine.values()) == {1}
        # no duplicate chunk, no duplicate vector: each source holds exactly its chunks
        async with db.read_session() as s:
            chunks = Counter(
                (
                    await s.scalars(
                        select(ChunkRow.source_id).where(ChunkRow.tenant_id == rows[0].tenant_id)
                    )
                ).all()
            )
            vectors = Counter(
                r[0]
                for r in (
                    await s.execute(
                        text("SELECT source_id FROM retrieval_vectors WHERE tenant_id = :t"),
                        {"t": rows[0].tenant_id},
                    )
                ).all()
            )
        for r in rows:
            sid = source_id(r.id, r.generation or 0)
            assert chunks[sid] == r.chunks >= 1 and vectors[sid] == r.chunks, (r.id, r.chunks)
        # no orphan blob: the same objects for every document, none for anything else
        blobs = {k: n for k, n in dep.document_blobs().items() if k in set(ids)}
        assert set(blobs) == set(ids) and len(set(blobs.values())) == 1, blobs
    finally:
        await db.dispose()


async def _leader_with_jobs(dep: Deployment, db: Database) -> tuple[str, Any] | None:
    async with db.read_session() as s:
        holder = await s.scalar(text("SELECT holder FROM leader_leases WHERE name = 'maintenance'"))
        owners = set(
            (await s.scalars(select(JobRow.lease_owner).where(JobRow.status == "running"))).all()
        )
    for name, proc in dep.procs.items():
        if not name.startswith("worker") or proc.poll() is not None:
            continue
        pid = f":{proc.pid}:"
        if holder and pid in holder and any(o and pid in o for o in owners):
            return name, proc
    return None


async def _async(value: Any) -> Any:
    return value


async def _leader_pid(db: Database, pid: int) -> bool:
    async with db.read_session() as s:
        holder = await s.scalar(
            text(
                "SELECT holder FROM leader_leases WHERE name = 'maintenance' AND expires_at > :now"
            ),
            {"now": utcnow()},
        )
    return bool(holder and f":{pid}:" in holder)


async def _all_settled(db: Database, ids: list[str]) -> list[DocumentRow] | None:
    async with db.read_session() as s:
        rows = list((await s.scalars(select(DocumentRow).where(DocumentRow.id.in_(ids)))).all())
    return (
        rows
        if len(rows) == len(ids) and all(r.status in ("ready", "failed") for r in rows)
        else None
    )


# --- (e) a collection deleted while its documents are ingested ------------------------------


async def test_a_collection_deleted_during_ingestion_leaves_nothing(
    deployment: Deployment,
) -> None:
    dep = deployment
    db = dep.db()
    try:
        async with httpx.AsyncClient(timeout=120, headers=dep.headers()) as c:
            r = await c.post(f"{dep.apis[0]}/api/collections", json={"name": "doomed"})
            assert r.status_code == 201, r.text
            col = r.json()["id"]
            files = [
                ("files", (f"c{n}.txt", f"collection doc {n}\n\nsoon gone {n}".encode()))
                for n in range(20)
            ]
            r = await c.post(
                f"{dep.apis[0]}/api/documents", files=files, data={"collection": "doomed"}
            )
            assert r.status_code == 201, r.text
            ids = [d["document"]["id"] for d in r.json()["documents"]]
            # the workers are at it: delete through the other API process now
            r = await c.delete(f"{dep.apis[1]}/api/collections/doomed")
            assert r.status_code in (202, 204), r.text
        tenant = await _tenant_of(db, ids)

        async def nothing_left() -> dict[str, int] | None:
            left = await _leftovers(dep, db, tenant, col, ids)
            return left if not any(left.values()) else None

        try:
            await poll(nothing_left, WAIT * 2, "rows, blobs and vectors of the collection gone")
        except AssertionError as exc:  # say what stayed, and what the processes logged
            left = await _leftovers(dep, db, tenant, col, ids)
            keys = [k for k in dep.s3_keys() if any(i in k for i in ids)]
            raise AssertionError(
                f"{exc}\nleft: {left}\nkeys: {keys[:50]}\n{_log_lines(dep, ids)}"
            ) from None
    finally:
        await db.dispose()


def _log_lines(dep: Deployment, ids: list[str], limit: int = 200) -> str:
    """The processes' warnings and errors, and every line about these documents."""
    out: list[str] = []
    for name in dep.procs:
        for line in dep.log(name).splitlines():
            if any(i in line for i in ids) or '"warning"' in line or '"error"' in line:
                out.append(f"{name}: {line[:500]}")
    return "\n".join(out[-limit:])


async def _tenant_of(db: Database, ids: list[str]) -> str:
    async with db.read_session() as s:
        found = await s.scalar(select(DocumentRow.tenant_id).where(DocumentRow.id.in_(ids)))
    if found is None:  # already purged: any document event names the tenant
        async with db.read_session() as s:
            found = await s.scalar(text("SELECT tenant_id FROM tenants LIMIT 1"))
    return str(found)


async def _leftovers(
    dep: Deployment, db: Database, tenant: str, col: str, ids: list[str]
) -> dict[str, int]:
    sources = [source_id(i, g) for i in ids for g in (1, 2)]
    async with db.read_session() as s:
        vectors = await s.scalar(
            text("SELECT count(*) FROM retrieval_vectors WHERE source_id = ANY(:s)"),
            {"s": sources},
        )
    blobs = dep.document_blobs()
    return {
        "collection": await _count(db, CollectionRow, CollectionRow.id == col),
        "links": await _count(
            db, CollectionDocumentRow, CollectionDocumentRow.collection_id == col
        ),
        "documents": await _count(db, DocumentRow, DocumentRow.id.in_(ids)),
        "jobs": await _count(db, JobRow, JobRow.tenant_id == tenant),
        "chunks": await _count(db, ChunkRow, ChunkRow.source_id.in_(sources)),
        "vectors": int(vectors or 0),
        "blobs": sum(blobs[i] for i in ids),
    }
