"""The Python SDK against a real server, and the CLI in-process and through a server."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from gasworks.cli.main import app as cli_app
from gasworks.client import AsyncGasworks, Gasworks
from gasworks.errors import CapabilityNotSupported, ModelNotFound, Unauthenticated
from tests.llm.conftest import serve


async def test_async_client(app, admin_key) -> None:
    async with serve(app) as url, AsyncGasworks(url, admin_key) as gw:
        r = await gw.chat("What is a gas holder?", model="demo", max_tokens=200)
        assert r.text.startswith("[demo]") and r.demo and r.model == "demo"
        assert r.usage.output_tokens > 0 and r.cost == Decimal(0)

        chunks = [c async for c in gw.stream("What is a gas holder?", model="demo")]
        assert "".join(c.delta for c in chunks) == r.text
        last = chunks[-1]
        assert last.finish_reason == "stop" and last.usage == r.usage and last.model == "demo"

        ids = [m.id for m in await gw.models()]
        assert "demo" in ids and "gpt-4o" in ids
        assert (await gw.model("bedrock/claude-sonnet-4-5")).provider == "bedrock"

        with pytest.raises(ModelNotFound) as info:
            await gw.chat("x", model="missing-model")
        assert "missing-model" in info.value.message
        with pytest.raises(ModelNotFound):
            async for _ in gw.stream("x", model="missing-model"):
                pass
        with pytest.raises(CapabilityNotSupported):
            await gw.chat(
                "x", model="demo", tools=[{"type": "function", "function": {"name": "f"}}]
            )
    async with serve(app) as url, AsyncGasworks(url, "gw_invalid") as bad:
        with pytest.raises(Unauthenticated):
            await bad.models()


async def test_sync_client(app, admin_key) -> None:
    def use(url: str) -> tuple[str, str, int]:
        with Gasworks(url, admin_key) as gw:
            text = gw.chat([{"role": "user", "content": "hello"}], system="Be brief.").text
            streamed = "".join(c.delta for c in gw.stream("hello", system="Be brief."))
            return text, streamed, len(gw.models())

    async with serve(app) as url:
        text, streamed, n = await asyncio.to_thread(use, url)
    assert text == streamed and text.startswith("[demo]") and n > 10


@pytest.fixture
def cli_env(tmp_path, monkeypatch, db_url):
    for key in ("GASWORKS_URL", "GASWORKS_API_KEY", "GASWORKS_MODELS_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("GASWORKS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GASWORKS_DATABASE_URL", db_url)
    runner = CliRunner()
    assert runner.invoke(cli_app, ["init", "--json"]).exit_code == 0
    yield runner
    # the CLI points structlog at the stderr CliRunner swapped in (closed now): point it back
    from gasworks.observability.logging import configure_logging

    configure_logging(json=False, level="INFO")


def test_cli_models_and_chat_in_process(cli_env) -> None:
    r = cli_env.invoke(cli_app, ["models", "list", "--json"])
    assert r.exit_code == 0, r.output
    assert "demo" in [m["id"] for m in json.loads(r.stdout)]
    r = cli_env.invoke(
        cli_app, ["models", "show", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "--json"]
    )
    assert r.exit_code == 0 and json.loads(r.stdout)["id"] == "bedrock/claude-sonnet-4-5"

    r = cli_env.invoke(cli_app, ["chat", "--model", "demo", "What is gasworks?"])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("[demo]")
    r = cli_env.invoke(cli_app, ["chat", "--json", "What is gasworks?"])
    out = json.loads(r.stdout)
    assert out["model"] == "demo" and out["text"].startswith("[demo]") and out["cost"] == "0"

    r = cli_env.invoke(cli_app, ["chat", "--model", "nope", "--json", "x"])
    assert r.exit_code == 1
    assert json.loads(r.stdout)["error"]["code"] == "MODEL_NOT_FOUND"


def test_cli_disable_and_enable(cli_env) -> None:
    r = cli_env.invoke(cli_app, ["models", "disable", "demo", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["enabled"] is False
    r = cli_env.invoke(cli_app, ["chat", "--json", "x"])  # the default model is now disabled
    assert r.exit_code == 1 and json.loads(r.stdout)["error"]["code"] == "MODEL_NOT_FOUND"
    r = cli_env.invoke(cli_app, ["models", "enable", "demo"])
    assert r.exit_code == 0 and "enabled" in r.stdout
    assert cli_env.invoke(cli_app, ["chat", "x"]).exit_code == 0


def test_cli_through_a_server(cli_env, tmp_path, monkeypatch) -> None:
    import socket
    import threading

    import uvicorn

    from gasworks.api.app import create_app
    from gasworks.settings import Settings

    # a fresh tenant and key through the CLI, then a real server in its own thread and loop
    r = cli_env.invoke(cli_app, ["keys", "create", "--tenant", "default", "--json"])
    # (foundation CLI commands log to stdout before logging is configured: skip to the JSON)
    key = json.loads(r.stdout[r.stdout.index("{") :])["key"]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(Settings()), log_level="critical", lifespan="on")
    )
    thread = threading.Thread(target=lambda: server.run(sockets=[sock]), daemon=True)
    thread.start()
    try:
        while not server.started:
            thread.join(0.02)
        url = f"http://127.0.0.1:{port}"
        r = cli_env.invoke(cli_app, ["chat", "--server", url, "--api-key", key, "Hello there"])
        assert r.exit_code == 0, r.output
        assert r.stdout.startswith("[demo]")
        r = cli_env.invoke(cli_app, ["models", "list", "--server", url, "--api-key", key, "--json"])
        assert "gpt-4o" in [m["id"] for m in json.loads(r.stdout)]
        r = cli_env.invoke(
            cli_app, ["chat", "--server", url, "--api-key", key, "-m", "nope", "--json", "x"]
        )
        assert r.exit_code == 1 and json.loads(r.stdout)["error"]["code"] == "MODEL_NOT_FOUND"
    finally:
        server.should_exit = True
        thread.join(10)


def test_cli_embed(cli_env) -> None:
    r = cli_env.invoke(cli_app, ["embed", "How do I reset my password?", "Invoices are due."])
    assert r.exit_code == 0, r.output
    assert "(384 floats)" in r.stdout and "local/all-minilm-l6-v2 · 384 dims" in r.stdout
    r = cli_env.invoke(cli_app, ["embed", "--json", "-"], input="first line\n\nsecond line\n")
    out = json.loads(r.stdout)
    assert out["dimensions"] == 384 and len(out["vectors"]) == 2 and out["cost"] == "0"
    r = cli_env.invoke(cli_app, ["embed", "--json", "--dimensions", "12", "x"])
    assert r.exit_code == 1
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "VALIDATION_FAILED" and "384" in err["message"]


async def test_workflow_runs_through_a_server_with_the_sdk_and_the_cli(
    app, admin_key, runtime
) -> None:
    """`gasworks workflows run --server … --api-key …` runs on the server as the key's
    tenant, streamed or not, with nothing local."""
    from gasworks.tenancy import service as tenancy
    from gasworks.tenancy.context import TenantContext
    from gasworks.workflows.demos import install_demos

    async with runtime.db.session() as s:
        tenant = await tenancy.find_tenant_by_name(s, "default")
        await install_demos(s, TenantContext.system(tenant.id, "default"))
    env = {"GASWORKS_HOME": "/nonexistent/gasworks-home"}  # nothing local is opened
    async with serve(app) as url:
        async with AsyncGasworks(url, admin_key) as gw:
            out = await gw.run_workflow("demo-support", {"message": "hello"})
            assert out["status"] == "succeeded" and out["output"].startswith("Hello!")
        args = ["workflows", "run", "demo-chatbot", "-i", "message=hi", "--server", url]
        args += ["--api-key", admin_key]

        def cli(*extra: str):
            return CliRunner().invoke(cli_app, [*args, *extra], env=env)

        plain = await asyncio.to_thread(cli, "--json")
        assert plain.exit_code == 0, plain.output
        assert json.loads(plain.stdout)["output"].startswith("[demo]")
        streamed = await asyncio.to_thread(cli, "--stream")
        assert streamed.exit_code == 0, streamed.output
        assert streamed.stdout.startswith("[demo]") and "succeeded" in streamed.stderr
        events = await asyncio.to_thread(cli, "--stream", "--json")
        kinds = [json.loads(line)["event"] for line in events.stdout.splitlines()]
        assert kinds[0] == "run.started" and kinds[-1] == "run.finished" and "chunk" in kinds

        def remote(*cmd: str):
            return CliRunner().invoke(
                cli_app, [*cmd, "--server", url, "--api-key", admin_key, "--json"], env=env
            )

        listed = await asyncio.to_thread(remote, "workflows", "list")
        assert listed.exit_code == 0, listed.output
        assert {w["slug"] for w in json.loads(listed.stdout)} >= {"demo-chatbot", "demo-support"}
        usage = await asyncio.to_thread(remote, "usage", "summary", "--by", "model")
        assert usage.exit_code == 0, usage.output
        (row,) = json.loads(usage.stdout)["rows"]
        assert row["group"] == {"model": "demo"} and row["requests"] == 3
