"""Migrations: concurrent upgrades of one fresh database, and the schema matching the tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from gasworks.db.engine import Database
from gasworks.db.migrate import current_revision, head_revision, upgrade
from gasworks.wiring import all_tables
from tests.dbtemplates import DIALECTS


@pytest.fixture(params=DIALECTS)
def empty_db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A database with no schema yet, once per dialect."""
    tpl = request.getfixturevalue(f"{request.param}_template")
    url = tpl.new_empty()
    yield url
    tpl.drop(url)


def _schema_diff(conn: Any) -> list[Any]:
    ctx = MigrationContext.configure(
        conn, opts={"compare_type": True, "include_name": _declared_or_unknown}
    )
    return [d for d in compare_metadata(ctx, all_tables()) if not _ignorable(d)]


def _declared_or_unknown(name: str | None, type_: str, parent: Any) -> bool:
    # pgvector's table (only where the extension exists) is not reflected at all: its
    # ``vector`` column type is unknown to SQLAlchemy
    return not (type_ == "table" and name == "retrieval_vectors")


def _ignorable(diff: Any) -> bool:
    # alembic_version and the dialect- or extension-specific retrieval pieces (see
    # gasworks/retrieval/tables.py) are not part of the declared metadata
    if diff[0] == "remove_table":
        return bool(diff[1].name in {"alembic_version"}) or str(diff[1].name).startswith(
            "retrieval_chunks_fts"
        )
    return bool(diff[0] == "remove_index" and diff[1].name == "ix_retrieval_chunks_fts")


async def _check_schema(url: str) -> None:
    db = Database(url)
    try:
        assert await current_revision(db) == head_revision()
        async with db.engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            assert {"tenants", "principals", "api_keys", "alembic_version"} <= tables
            assert await conn.run_sync(_schema_diff) == []
    finally:
        await db.dispose()


def test_four_processes_upgrading_one_fresh_database_at_once(empty_db_url, tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GASWORKS_") or k == "GASWORKS_TEST_POSTGRES_URL"
    }
    env |= {"GASWORKS_DATABASE_URL": empty_db_url, "GASWORKS_HOME": str(tmp_path)}
    exe = str(Path(sys.executable).with_name("gasworks"))
    procs = [
        subprocess.Popen(
            [exe, "db", "upgrade", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [(p.wait(timeout=180), *p.communicate()) for p in procs]
    for code, out, err in results:
        assert code == 0, err
        assert json.loads(out)["revision"] == head_revision()
        assert "Traceback" not in err
    import asyncio

    asyncio.run(_check_schema(empty_db_url))


async def test_migrated_schema_matches_the_declared_tables(db_url):
    """The hand-written migrations and the ORM tables describe the same schema."""
    await _check_schema(db_url)


async def test_upgrade_is_idempotent(db_url):
    db = Database(db_url)
    try:
        assert await db.upgrade() == head_revision()
        assert await db.upgrade() == head_revision()
    finally:
        await db.dispose()


async def test_downgrade_to_base_and_up_again(empty_db_url):
    """Every migration can be undone (operators roll back a bad deploy)."""
    from alembic import command

    from gasworks.db.migrate import alembic_config

    db = Database(empty_db_url)
    try:
        await db.upgrade()

        def down(conn: Any) -> None:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")

        async with db.engine.connect() as conn:
            await conn.run_sync(down)
            await conn.commit()
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert tables <= {"alembic_version"}
        assert await db.upgrade() == head_revision()
    finally:
        await db.dispose()


async def test_runs_left_running_before_run_leases_are_closed_by_the_first_sweep(empty_db_url):
    """0006_workflow_run_leases gives runs that were `running` an expired lease: the process
    that started them is gone (an upgrade restarts every process)."""
    from datetime import timedelta

    import sqlalchemy as sa

    import gasworks.db.types as gwt
    from gasworks.db.types import utcnow
    from gasworks.tenancy.service import bootstrap
    from gasworks.workflows import leases

    db = Database(empty_db_url)
    try:
        await upgrade(db, "0005_workflows")
        started = utcnow() - timedelta(minutes=5)
        wf = sa.table(
            "workflows",
            *(sa.column(c) for c in ("id", "tenant_id", "slug", "name", "owner_id")),
            sa.column("latest_version", sa.Integer),
            sa.column("created_at", gwt.UTCDateTime()),
            sa.column("updated_at", gwt.UTCDateTime()),
        )
        run = sa.table(
            "workflow_runs",
            *(sa.column(c) for c in ("id", "tenant_id", "workflow_id", "status")),
            sa.column("version", sa.Integer),
            sa.column("steps", sa.Integer),
            sa.column("tokens", sa.Integer),
            sa.column("inputs", gwt.JSONType),
            sa.column("node_timings", gwt.JSONType),
            sa.column("cost", gwt.Money()),
            sa.column("started_at", gwt.UTCDateTime()),
        )
        async with db.session() as s:
            tenant, _ = await bootstrap(s, "default")
            await s.execute(
                wf.insert().values(
                    id="wf_1",
                    tenant_id=tenant.id,
                    slug="w",
                    name="w",
                    owner_id="p",
                    latest_version=1,
                    created_at=started,
                    updated_at=started,
                )
            )
            for rid, status in (("run_old", "running"), ("run_done", "succeeded")):
                await s.execute(
                    run.insert().values(
                        id=rid,
                        tenant_id=tenant.id,
                        workflow_id="wf_1",
                        status=status,
                        version=1,
                        steps=0,
                        tokens=0,
                        inputs={},
                        node_timings=[],
                        cost=0,
                        started_at=started,
                    )
                )
        await db.upgrade()
        async with db.session() as s:
            assert await leases.expired(s, utcnow()) == ["run_old"]
            assert await leases.interrupt(s, "run_old", utcnow())
        async with db.session() as s:
            status = dict((await s.execute(sa.text("SELECT id, status FROM workflow_runs"))).all())
        assert status == {"run_old": "failed", "run_done": "succeeded"}
    finally:
        await db.dispose()
