"""`gasworks workflows …` on both dialects: validate, publish, run (with --stream), graph, demos."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gasworks.cli.main import app
from gasworks.workflows.demos import demo_text


@pytest.fixture
def cli(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    for key in list(os.environ):
        if key.startswith("GASWORKS_") and key != "GASWORKS_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)
    env = {"GASWORKS_DATABASE_URL": db_url, "GASWORKS_HOME": str(tmp_path / "home")}
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> Any:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
        return result

    return invoke


def test_validate_is_offline_and_lists_every_problem(tmp_path: Path) -> None:
    runner = CliRunner()
    good = tmp_path / "chatbot.yaml"
    good.write_text(demo_text("chatbot"))
    out = runner.invoke(app, ["workflows", "validate", str(good), "--json"])
    assert out.exit_code == 0 and json.loads(out.stdout) == {"valid": True, "issues": []}
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"id": "b", "nodes": [{"id": "a", "type": "X"}, {"id": "a", "type": "Format"}]})
    )
    out = runner.invoke(app, ["workflows", "validate", str(bad), "--json"])
    assert out.exit_code == 1
    codes = {i["code"] for i in json.loads(out.stdout)["issues"]}
    assert codes == {"UNKNOWN_NODE_TYPE", "DUPLICATE_NODE_ID", "INVALID_CONFIG"}
    out = runner.invoke(app, ["workflows", "graph", str(good), "--json"])
    assert json.loads(out.stdout)["mermaid"].startswith("flowchart TD")


def test_publish_run_stream_and_graph(cli: Any, tmp_path: Path) -> None:
    cli("init", "--json")
    installed = json.loads(cli("workflows", "demo", "install", "--json").stdout)
    assert [p["workflow"]["slug"] for p in installed["workflows"]] == [
        "demo-chatbot",
        "demo-support",
        "demo-onboarding",
        "demo-rag",
    ]
    # demo-rag's corpus, queued for the pipeline in a collection the whole tenant may read
    assert installed["collection"]["name"] == "demo-handbook"
    assert [d["document"]["name"] for d in installed["documents"]] == [
        "expenses.md",
        "leave.md",
        "remote-work.md",
        "security.md",
    ]
    assert {d["document"]["status"] for d in installed["documents"]} == {"queued"}
    f = tmp_path / "hello.yaml"
    f.write_text("id: hello\nnodes:\n  - {id: f, type: Format, config: {template: 'hi ${name}'}}\n")
    pub = json.loads(cli("workflows", "publish", str(f), "--json").stdout)
    assert pub["created"] is True and pub["version"]["version"] == 1
    run = json.loads(cli("workflows", "run", "hello", "--input", "name=Ada", "--json").stdout)
    assert run["status"] == "succeeded" and run["output"] == "hi Ada"
    run = json.loads(cli("workflows", "run", "hello", "-i", '{"name": "Bob"}', "--json").stdout)
    assert run["output"] == "hi Bob"
    # streaming: one JSON event per line, chunks from the demo model through the gateway
    out = cli(
        "workflows", "run", "demo-chatbot", "-i", "message=hello", "--stream", "--json"
    ).stdout
    events = [json.loads(line) for line in out.splitlines()]
    assert events[0]["event"] == "run.started" and events[-1]["event"] == "run.finished"
    text = "".join(e["data"]["chunk"] for e in events if e["event"] == "chunk")
    assert text.startswith("[demo]") and events[-1]["data"]["output"] == text
    plain = cli("workflows", "run", "demo-onboarding", "-i", "message=hi", "-c", "c1").stdout
    assert "Welcome! What is your name?" in plain
    graph = cli("workflows", "graph", "demo-support").stdout
    assert "n_route -->|state.intent === 'greeting'| n_greet" in graph
    listed = json.loads(cli("workflows", "list", "--json").stdout)
    assert {w["slug"] for w in listed} == {
        "hello",
        "demo-chatbot",
        "demo-support",
        "demo-onboarding",
        "demo-rag",
    }
    err = cli("workflows", "run", "nope", "--json", code=1)
    assert json.loads(err.stdout)["error"]["code"] == "NOT_FOUND"


async def test_cli_published_workflows_are_the_tenants_and_share_works(
    cli: Any, tmp_path: Path, db_url: str
) -> None:
    """What the operator publishes is visible to the tenant's own keys (unless --private);
    `workflows share` opens a private one to a role."""
    import asyncio

    import httpx

    from gasworks.api.app import create_app
    from gasworks.settings import Settings
    from gasworks.wiring import build_runtime

    def sh(*args: str) -> Any:  # the CLI runs its own event loop: in a thread
        return asyncio.to_thread(cli, *args)

    await sh("init", "--json")
    viewer = json.loads((await sh("keys", "create", "--tenant", "default", "--json")).stdout)["key"]
    for slug, extra in (("open", []), ("closed", ["--private"])):
        f = tmp_path / f"{slug}.yaml"
        f.write_text(f"id: {slug}\nnodes:\n  - {{id: f, type: Format, config: {{template: hi}}}}\n")
        await sh("workflows", "publish", str(f), *extra)
    rt = build_runtime(
        Settings(home=tmp_path / "home", database_url=db_url, auth_cache_ttl_seconds=0)
    )
    await rt.start(migrate=False)
    try:
        transport = httpx.ASGITransport(app=create_app(runtime=rt))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            h = {"Authorization": f"Bearer {viewer}"}

            async def status(slug: str) -> int:
                return (await http.get(f"/api/workflows/{slug}", headers=h)).status_code

            assert (await status("open"), await status("closed")) == (200, 404)
            shared = (await sh("workflows", "share", "closed", "--role", "viewer")).stdout
            assert "shared with role viewer" in shared
            assert await status("closed") == 200
    finally:
        await rt.stop()
