"""Every remote-capable CLI command against a real in-process server, on both dialects: the
command goes through the SDK as the key's tenant and opens nothing local."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from gasworks.cli.main import app as cli_app
from tests.llm.conftest import serve

NOWHERE = {"GASWORKS_HOME": "/nonexistent/gasworks-home"}  # nothing local may be opened


def remote_cli(url: str) -> Callable[..., Awaitable[Any]]:
    """``await call(key, *args)``: the CLI with ``--server url --api-key key``, in a thread
    (the server runs on the test's loop)."""

    def cli(key: str, *args: str) -> Any:
        return CliRunner().invoke(cli_app, [*args, "--server", url, "--api-key", key], env=NOWHERE)

    async def call(key: str, *args: str) -> Any:
        return await asyncio.to_thread(cli, key, *args)

    return call


async def _viewer_key(runtime: Any) -> str:
    from gasworks.tenancy import service
    from gasworks.tenancy.context import TenantContext
    from gasworks.tenancy.schemas import ApiKeyCreate

    async with runtime.db.session() as s:
        tenant = await service.find_tenant_by_name(s, "default")
        assert tenant is not None
        ctx = TenantContext.system(tenant.id, tenant.name)
        return (await service.create_api_key(s, ctx, ApiKeyCreate(name="viewer"))).key


async def test_workflows_validate_publish_share_through_a_server(
    app: Any, admin_key: str, runtime: Any, tmp_path: Path
) -> None:
    viewer = await _viewer_key(runtime)
    good = tmp_path / "hello.yaml"
    good.write_text("id: hello\nnodes:\n  - {id: f, type: Format, config: {template: 'hi'}}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "id: bad\nnodes:\n  - {id: m, type: ModelInvoke, config: {model: no-such-model}}\n"
    )
    async with serve(app) as url:
        call = remote_cli(url)

        async def slugs(key: str) -> set[str]:
            r = await call(key, "workflows", "list", "--json")
            assert r.exit_code == 0, r.output
            return {w["slug"] for w in json.loads(r.stdout)}

        r = await call(admin_key, "workflows", "validate", str(good), "--json")
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout) == {"valid": True, "issues": []}

        r = await call(admin_key, "workflows", "publish", str(good), "--private", "--json")
        assert r.exit_code == 0, r.output
        out = json.loads(r.stdout)
        assert out["workflow"]["slug"] == "hello" and out["version"]["version"] == 1
        assert "hello" in await slugs(admin_key)
        assert "hello" not in await slugs(viewer)  # private: the viewer's key cannot see it

        r = await call(admin_key, "workflows", "share", "hello", "--json")
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["kind"] == "tenant"
        assert "hello" in await slugs(viewer)

        # the server's errors: one coded line, or a JSON error object under --json
        r = await call(admin_key, "workflows", "publish", str(bad), "--json")
        assert r.exit_code == 1
        err = json.loads(r.stdout)["error"]
        assert err["code"] == "WORKFLOW_INVALID"
        assert "MODEL_NOT_FOUND" in {i["code"] for i in err["details"]["issues"]}
        r = await call(admin_key, "workflows", "publish", str(bad))
        assert r.exit_code == 1 and "MODEL_NOT_FOUND" in r.stdout  # validate's table
        r = await call(viewer, "workflows", "publish", str(good))
        assert r.exit_code == 1 and r.stderr.startswith("FORBIDDEN: ")
        assert "Traceback" not in r.output
        r = await call(admin_key, "workflows", "share", "missing", "--json")
        assert r.exit_code == 1
        assert json.loads(r.stdout)["error"]["code"].endswith("NOT_FOUND")


async def test_tenants_and_keys_through_a_server(app: Any, admin_key: str, runtime: Any) -> None:
    viewer = await _viewer_key(runtime)
    async with serve(app) as url:
        call = remote_cli(url)

        r = await call(admin_key, "tenants", "create", "acme", "--json")
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["name"] == "acme"
        r = await call(admin_key, "tenants", "list", "--json")
        assert {t["name"] for t in json.loads(r.stdout)} == {"default", "acme"}
        r = await call(viewer, "tenants", "list", "--json")
        assert [t["name"] for t in json.loads(r.stdout)] == ["default"]  # its own only

        r = await call(admin_key, "keys", "create", "--role", "editor", "--name", "ci", "--json")
        assert r.exit_code == 0, r.output
        created = json.loads(r.stdout)
        new_key, new_id = created["key"], created["apiKey"]["id"]
        r = await call(admin_key, "keys", "list", "--json")
        listed = {k["id"]: k for k in json.loads(r.stdout)}
        assert new_id in listed and listed[new_id]["revokedAt"] is None
        assert all("key" not in k for k in listed.values())  # never a secret
        assert (await call(new_key, "workflows", "list", "--json")).exit_code == 0

        r = await call(admin_key, "keys", "revoke", new_id, "--force", "--json")
        assert json.loads(r.stdout)["error"]["code"] == "OPERATOR_ONLY"  # nothing revoked
        r = await call(admin_key, "keys", "revoke", new_id, "--json")
        assert r.exit_code == 0 and json.loads(r.stdout)["revokedAt"] is not None
        r = await call(new_key, "workflows", "list", "--json")
        assert r.exit_code == 1
        assert json.loads(r.stdout)["error"]["code"] == "UNAUTHENTICATED"

        # a viewer may not: the server's refusal, one coded line
        r = await call(viewer, "keys", "create")
        assert r.exit_code == 1 and r.stderr.startswith("FORBIDDEN: ")
        r = await call(viewer, "tenants", "create", "other", "--json")
        assert json.loads(r.stdout)["error"]["code"] == "FORBIDDEN"

        # the operator's commands refuse --server before anything is sent
        r = await call(admin_key, "keys", "create", "--platform-admin", "--json")
        assert r.exit_code == 1
        err = json.loads(r.stdout)["error"]
        assert err["code"] == "OPERATOR_ONLY" and "--platform-admin" in err["message"]
        for args in (["db", "upgrade", "--server", url], ["init", "--server", url]):
            r = await asyncio.to_thread(CliRunner().invoke, cli_app, args, env=NOWHERE)
            assert r.exit_code == 1 and r.stderr.startswith("OPERATOR_ONLY: "), r.output
        r = await asyncio.to_thread(
            CliRunner().invoke, cli_app, ["db", "current"], env={**NOWHERE, "GASWORKS_URL": url}
        )
        assert r.exit_code == 1 and "GASWORKS_URL" in r.stderr


def test_local_keys_still_need_a_tenant(tmp_path: Path, monkeypatch: Any, db_url: str) -> None:
    monkeypatch.delenv("GASWORKS_URL", raising=False)
    env = {"GASWORKS_HOME": str(tmp_path / "home"), "GASWORKS_DATABASE_URL": db_url}
    runner = CliRunner()
    assert runner.invoke(cli_app, ["init", "--json"], env=env).exit_code == 0
    r = runner.invoke(cli_app, ["keys", "list", "--json"], env=env)
    assert r.exit_code == 1 and "--tenant" in json.loads(r.stdout)["error"]["message"]
    r = runner.invoke(cli_app, ["keys", "list", "--tenant", "default", "--json"], env=env)
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == 1


async def test_breakers_and_budgets_through_a_server(
    app: Any, admin_key: str, runtime: Any
) -> None:
    viewer = await _viewer_key(runtime)
    async with serve(app) as url:
        call = remote_cli(url)
        r = await call(admin_key, "breakers", "trip", "demo", "-r", "maintenance", "--json")
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["state"] == "forced_open"
        r = await call(admin_key, "breakers", "list", "--json")
        states = {b["breaker"]: b["state"] for b in json.loads(r.stdout)}
        assert states["demo"] == "forced_open"
        r = await call(admin_key, "chat", "--json", "x")  # the server itself now fails fast
        assert r.exit_code == 1 and json.loads(r.stdout)["error"]["code"] == "MODEL_UNAVAILABLE"
        r = await call(admin_key, "breakers", "reset", "demo", "-r", "done")
        assert r.exit_code == 0 and "closed" in r.stdout
        r = await call(admin_key, "breakers", "events", "demo", "--json")
        assert [e["reason"] for e in json.loads(r.stdout)][:2] == ["done", "maintenance"]
        r = await call(viewer, "breakers", "trip", "demo", "-r", "x")
        assert r.exit_code == 1 and r.stderr.startswith("FORBIDDEN: ")
        r = await call(admin_key, "breakers", "trip", "no-such-model", "-r", "x", "--json")
        assert json.loads(r.stdout)["error"]["code"] == "MODEL_NOT_FOUND"

        r = await call(admin_key, "budgets", "set", "--period", "day", "--tokens", "500", "--json")
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["tokenLimit"] == 500
        r = await call(admin_key, "budgets", "show", "--json")
        assert [(b["period"], b["tokenLimit"]) for b in json.loads(r.stdout)] == [("day", 500)]
        r = await call(admin_key, "budgets", "set", "--period", "day")
        assert r.exit_code == 0 and "Limit removed." in r.stdout
        r = await call(admin_key, "budgets", "show", "--json")
        assert json.loads(r.stdout) == []
        r = await call(admin_key, "budgets", "set", "--period", "day", "--cost", "-1", "--json")
        assert json.loads(r.stdout)["error"]["code"] == "VALIDATION_FAILED"
