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


async def test_prompts_through_a_server(
    app: Any, admin_key: str, runtime: Any, tmp_path: Path
) -> None:
    """Every `prompts` command through --server: as the key's tenant, --tenant for its own
    pointers (and only its own), platform-wide pointers for a platform admin."""
    viewer = await _viewer_key(runtime)
    first = tmp_path / "support.yaml"
    first.write_text("system: Be brief.\nuser: ${inputs.user_prompt}\n")
    edited = tmp_path / "support-v2.yaml"
    edited.write_text("system: Be thorough.\nuser: ${inputs.user_prompt}\n")
    async with serve(app) as url:
        call = remote_cli(url)

        async def ok(key: str, *args: str) -> Any:
            r = await call(key, *args, "--json")
            assert r.exit_code == 0, r.output
            return json.loads(r.stdout)

        async def refused(key: str, *args: str) -> dict[str, Any]:
            r = await call(key, *args, "--json")
            assert r.exit_code == 1 and "Traceback" not in r.output, r.output
            return dict(json.loads(r.stdout)["error"])

        out = await ok(admin_key, "prompts", "push", str(first), "--tenant", "default")
        v1 = out["version"]["id"]
        assert out["version"]["number"] == 1
        assert out["pointer"]["level"] == "tenant+model" and out["pointer"]["model"] == "demo"
        out = await ok(
            admin_key, "prompts", "push", str(edited), "--name", "support", "-t", "default"
        )
        v2 = out["version"]["id"]
        assert out["version"]["number"] == 2 and out["pointer"]["activeVersionId"] == v2
        again = await ok(
            admin_key, "prompts", "push", str(edited), "--name", "support", "-t", "default"
        )
        assert again["version"]["created"] is False and again["pointer"]["version"] == 2

        versions = await ok(viewer, "prompts", "versions", "--name", "support")
        assert [v["number"] for v in versions] == [2, 1]
        assert (await ok(viewer, "prompts", "show", "support"))["id"] == v2
        shown = await ok(viewer, "prompts", "show", "support@1")
        assert shown["id"] == v1 and shown["content"]["system"] == "Be brief."
        assert (await ok(viewer, "prompts", "diff", v1, v2))["identical"] is False
        r = await call(viewer, "prompts", "diff", v1, v2)
        assert "\n-Be brief.\n+Be thorough.\n" in r.stdout

        p = await ok(admin_key, "prompts", "rollback", "-t", "default", "--reason", "oops")
        assert p["activeVersionId"] == v1 and p["previousVersionId"] == v2
        history = await ok(viewer, "prompts", "history", "-t", "default")
        assert history[0]["reason"] == "oops" and len(history) == 3
        resolved = await ok(
            viewer, "prompts", "resolve", "-t", "default", "--var", "inputs.user_prompt=hi"
        )
        assert resolved["versionId"] == v1 and resolved["level"] == "tenant+model"
        assert resolved["messages"][-1] == {"role": "user", "content": "hi"}

        p = await ok(
            admin_key, "prompts", "canary", "start", v2, "--percent", "30", "-t", "default"
        )
        assert (p["canaryVersionId"], p["canaryPercent"]) == (v2, 30)
        p = await ok(admin_key, "prompts", "canary", "abort", "-t", "default")
        assert p["canaryVersionId"] is None and p["activeVersionId"] == v1
        p = await ok(
            admin_key, "prompts", "canary", "start", v2, "--percent", "50", "-t", "default"
        )
        p = await ok(admin_key, "prompts", "canary", "promote", "-t", "default")
        assert p["activeVersionId"] == v2 and p["canaryVersionId"] is None

        # a lost compare-and-set: the server's code, dead-lettered, replayed with --rebase
        err = await refused(
            admin_key, "prompts", "deploy", v1, "-t", "default", "--expected-version", "1"
        )
        assert err["code"] == "PROMPT_POINTER_CONFLICT"
        (dead,) = await ok(admin_key, "prompts", "dead-letters", "list")
        assert dead["id"] == err["details"]["deadLetterId"] and dead["status"] == "pending"
        out = await ok(admin_key, "prompts", "dead-letters", "replay", dead["id"], "--rebase")
        assert out["pointer"]["activeVersionId"] == v1
        p = await ok(admin_key, "prompts", "deploy", v2, "-t", "default", "--reason", "back")
        assert p["activeVersionId"] == v2

        chat = await ok(viewer, "prompts", "chat", "hello", "-t", "default")
        assert chat["text"].startswith("[demo]") and chat["outputTokens"] > 0
        assert chat["prompt"]["versionId"] == v2 and chat["prompt"]["level"] == "tenant+model"
        r = await call(viewer, "prompts", "chat", "hello", "-t", "default")
        assert r.exit_code == 0 and r.stdout.startswith("[demo]")
        assert f"prompt tenant+model {v2}" in r.stdout

        archived = await ok(admin_key, "prompts", "archive", v1)
        assert archived["archivedAt"] is not None
        report = await ok(admin_key, "prompts", "retention", "--dry-run", "--days", "0")
        assert report["dryRun"] is True

        # platform-wide pointers (no --tenant) need a platform-admin key
        out = await ok(admin_key, "prompts", "deploy", v2, "--model", "demo")
        assert out["level"] == "model" and out["scopeTenant"] is None
        err = await refused(viewer, "prompts", "deploy", v2)
        assert err["code"] == "FORBIDDEN"
        err = await refused(viewer, "prompts", "retention", "--dry-run")
        assert err["code"] == "FORBIDDEN"
        # --tenant must be the key's tenant: another name is refused, nothing sent
        err = await refused(admin_key, "prompts", "rollback", "-t", "acme")
        assert err["code"] == "BAD_REQUEST" and err["details"]["keyTenant"] == "default"
        r = await call(viewer, "prompts", "show", "nothing-here")
        assert r.exit_code == 1 and r.stderr.startswith("PROMPT_VERSION_NOT_FOUND: ")
        bad = tmp_path / "bad.yaml"
        bad.write_text("sistem: typo\n")
        r = await call(admin_key, "prompts", "push", str(bad), "-t", "default")
        assert r.exit_code == 1 and r.stderr.startswith("VALIDATION_FAILED: ")

        # the calls are in the ledger with their prompt version (usage calls through --server)
        calls = await ok(viewer, "usage", "calls", "--limit", "5")
        assert calls[0]["promptVersionId"] == v2 and calls[0]["model"] == "demo"
        r = await call(viewer, "usage", "calls", "--limit", "5")
        assert r.exit_code == 0 and "demo" in r.stdout


async def test_models_enable_disable_through_a_server(
    app: Any, admin_key: str, runtime: Any
) -> None:
    viewer = await _viewer_key(runtime)
    async with serve(app) as url:
        call = remote_cli(url)
        r = await call(admin_key, "models", "disable", "gpt-4o", "--json")
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["enabled"] is False
        r = await call(viewer, "models", "list", "--json")
        assert "gpt-4o" not in {m["id"] for m in json.loads(r.stdout)}
        r = await call(viewer, "models", "enable", "gpt-4o")
        assert r.exit_code == 1 and r.stderr.startswith("FORBIDDEN: ")
        r = await call(admin_key, "models", "enable", "gpt-4o")
        assert r.exit_code == 0 and "gpt-4o is now enabled" in r.stdout
        r = await call(viewer, "models", "list", "--json")
        assert "gpt-4o" in {m["id"] for m in json.loads(r.stdout)}
        r = await call(admin_key, "models", "disable", "gpt-17", "--json")
        assert json.loads(r.stdout)["error"]["code"] == "MODEL_NOT_FOUND"


async def test_workflow_runs_show_their_prompt_version_through_a_server(
    app: Any, admin_key: str, tmp_path: Path
) -> None:
    """The run's prompt version (``promptVersionId``) in the SDK's run and the CLI's output;
    `workflows graph` and `workflows demo install` through the server too."""
    doc = tmp_path / "wfp.yaml"
    doc.write_text("id: wfp\nnodes:\n  - {id: m, type: ModelInvoke, config: {model: demo}}\n")
    prompt = tmp_path / "wfp-prompt.yaml"
    prompt.write_text("system: Answer in French.\n")
    async with serve(app) as url:
        call = remote_cli(url)
        assert (await call(admin_key, "workflows", "publish", str(doc))).exit_code == 0
        r = await call(admin_key, "workflows", "run", "wfp", "-i", "message=hi", "--json")
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["promptVersionId"] is None
        r = await call(
            admin_key, "prompts", "push", str(prompt), "-t", "default", "-w", "wfp", "--json"
        )
        version = json.loads(r.stdout)["version"]["id"]
        r = await call(admin_key, "workflows", "run", "wfp", "-i", "message=hi", "--json")
        assert json.loads(r.stdout)["promptVersionId"] == version
        r = await call(admin_key, "workflows", "run", "wfp", "-i", "message=hi")
        assert r.exit_code == 0 and f"prompt {version}" in r.stderr

        from gasworks.client import AsyncGasworks

        async with AsyncGasworks(url, admin_key) as gw:
            ran = await gw.run_workflow("wfp", {"message": "again"})
            assert ran["promptVersionId"] == version

        r = await call(admin_key, "workflows", "graph", "wfp", "--json")
        assert r.exit_code == 0 and json.loads(r.stdout)["version"] == 1
        assert "flowchart" in json.loads(r.stdout)["mermaid"]
        r = await call(admin_key, "workflows", "demo", "install", "--json")
        assert r.exit_code == 0, r.output
        installed = json.loads(r.stdout)
        assert {p["workflow"]["slug"] for p in installed["workflows"]} >= {"demo-rag"}
        # the corpus through REST too: demo-handbook, granted to the tenant, four documents
        assert installed["collection"]["name"] == "demo-handbook"
        assert len(installed["documents"]) == 4
        async with AsyncGasworks(url, admin_key) as gw:
            docs = await gw.documents(collection="demo-handbook")
            assert sorted(d["name"] for d in docs) == [
                "expenses.md",
                "leave.md",
                "remote-work.md",
                "security.md",
            ]
        r = await call(admin_key, "workflows", "demo", "install", "--json")  # idempotent
        assert all(d["duplicate"] for d in json.loads(r.stdout)["documents"])


def _commands(group: Any, path: tuple[str, ...] = ()) -> dict[str, Any]:
    subs = getattr(group, "commands", None)
    if not subs:
        return {" ".join(path): group}
    out: dict[str, Any] = {}
    for name, sub in subs.items():
        out.update(_commands(sub, (*path, name)))
    return out


def test_every_command_goes_through_a_server_or_is_the_operators() -> None:
    """A new command has to choose: `--server` (visible: it works remotely) or the hidden
    one that refuses with OPERATOR_ONLY; only these three act on this machine alone."""
    import typer.main

    kinds: dict[str, set[str]] = {"remote": set(), "operator": set(), "none": set()}
    for name, cmd in _commands(typer.main.get_command(cli_app)).items():
        server = next((p for p in cmd.params if p.name == "server"), None)
        kind = "none" if server is None else "operator" if server.hidden else "remote"
        kinds[kind].add(name)
    assert kinds["none"] == {"serve", "version", "config show"}
    assert kinds["operator"] == {
        "init",
        "db upgrade",
        "db current",
        "documents purge-tenant",
        "documents reconcile",
        "worker",
        "blobs rotate-key",
        "blobs rewrap",
    }
    assert {
        "prompts push",
        "prompts canary start",
        "prompts dead-letters replay",
        "models enable",
        "models disable",
        "usage calls",
        "documents upload",
        "documents collections grant",
        "documents dead-letters discard",
    } <= kinds["remote"]
