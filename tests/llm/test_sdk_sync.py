"""The synchronous SDK (``Gasworks``, generated from ``AsyncGasworks``) against a real server on
both dialects: a representative method of every group — tenancy, models and breakers,
budgets, usage, prompts, workflows (a streamed run too) — with the server's errors raised as
their ``gasworks.errors`` classes. Documents, collections and dead letters:
``tests/documents/test_ingestion_ops.py``."""

from __future__ import annotations

import asyncio
import socket
from decimal import Decimal
from typing import Any

import pytest

from gasworks.client import Gasworks
from gasworks.errors import (
    Forbidden,
    GasworksError,
    ModelUnavailable,
    PromptPointerConflict,
    ServerUnreachable,
    WorkflowInvalid,
)
from tests.llm.conftest import serve


async def test_sync_tenancy_models_breakers_budgets_usage(app: Any, admin_key: str) -> None:
    def use(url: str) -> None:
        with Gasworks(url, admin_key) as gw:
            me = gw.me()
            assert me["tenantName"] == "default" and me["isPlatformAdmin"] is True
            assert [t["name"] for t in gw.tenants()] == ["default"]
            assert gw.create_tenant("acme", "Acme")["name"] == "acme"
            created = gw.create_key(name="reader", role="viewer")
            assert created["key"].startswith("gw_") and created["apiKey"]["name"] == "reader"
            listed = gw.keys()  # the API keys (a list, not a dict's keys)
            assert {k["name"] for k in listed} >= {"reader"}

            with Gasworks(url, created["key"]) as viewer:
                assert viewer.me()["role"] == "viewer"
                with pytest.raises(Forbidden):
                    viewer.breaker_action("demo", "trip", "x")
            assert gw.revoke_key(created["apiKey"]["id"])["revokedAt"] is not None

            assert gw.set_model_enabled("gpt-4o", False).enabled is False
            assert "gpt-4o" not in {m.id for m in gw.models()}
            assert "gpt-4o" in {m.id for m in gw.models(include_disabled=True)}
            assert gw.set_model_enabled("gpt-4o", True).enabled is True

            assert gw.breaker_action("demo", "trip", "maintenance")["state"] == "forced_open"
            assert {b["breaker"]: b["state"] for b in gw.breakers()}["demo"] == "forced_open"
            with pytest.raises(ModelUnavailable):
                gw.chat("x", model="demo")
            with pytest.raises(ModelUnavailable):
                list(gw.stream("x", model="demo"))
            gw.breaker_action("demo", "reset", "done")
            assert [e["reason"] for e in gw.breaker_events("demo")][:2] == ["done", "maintenance"]

            budget = gw.set_budget("day", token_limit=500, cost_limit=Decimal("2.5"))
            assert budget is not None and budget["tokenLimit"] == 500
            assert [(b["period"], b["tokenLimit"]) for b in gw.budgets()] == [("day", 500)]
            assert gw.set_budget("day") is None  # no limit at all removes it
            assert gw.budgets() == []

            assert gw.chat("hello", model="demo").text.startswith("[demo]")
            summary = gw.usage(group_by=["model"])
            assert any(row["group"]["model"] == "demo" for row in summary["rows"]), summary
            assert gw.usage_calls(limit=1)[0]["model"] == "demo"

    async with serve(app) as url:
        await asyncio.to_thread(use, url)


async def test_sync_prompts_and_workflows(app: Any, admin_key: str) -> None:
    scope = {"model": "demo", "workflowId": None, "tenantScoped": True}

    def use(url: str) -> None:
        with Gasworks(url, admin_key) as gw:
            # prompts: versions, a compare-and-set pointer, resolve, a streamed prompted chat
            v1 = gw.create_prompt_version("support", {"system": "Be brief."}, "first")
            v2 = gw.create_prompt_version("support", {"system": "Be thorough."})
            assert (v1["number"], v2["number"]) == (1, 2)
            assert [v["number"] for v in gw.prompt_versions(name="support")] == [2, 1]
            assert gw.prompt_diff(v1["id"], v2["id"])["identical"] is False
            move = {"scope": scope, "versionId": v1["id"], "expectedVersion": 0, "reason": "go"}
            assert gw.prompt_pointer_action("move", move)["activeVersionId"] == v1["id"]
            assert gw.prompt_pointer(scope)["version"] == 1
            with pytest.raises(PromptPointerConflict) as lost:  # a stale expected version
                gw.prompt_pointer_action("move", {**move, "versionId": v2["id"]})
            (dead,) = gw.prompt_dead_letters()
            assert dead["id"] == lost.value.details["deadLetterId"]
            replayed = gw.replay_prompt_dead_letter(dead["id"], rebase=True)
            assert replayed["pointer"]["activeVersionId"] == v2["id"]
            assert [h["reason"] for h in gw.prompt_history(scope)][-1] == "go"
            assert gw.resolve_prompt({"model": "demo"})["versionId"] == v2["id"]
            body = {"model": "demo", "variables": {"inputs": {"user_prompt": "hi"}}}
            events = list(gw.stream_prompt_chat(body))
            kinds = [kind for kind, _ in events]
            assert kinds[0] == "prompt" and kinds[-1] == "done" and "delta" in kinds
            assert events[0][1]["versionId"] == v2["id"]

            # workflows: validate, publish, share, run, and a run streamed event by event
            doc = {"id": "hello", "nodes": [{"id": "m", "type": "ModelInvoke"}]}
            doc["nodes"][0]["config"] = {"model": "demo"}
            assert gw.validate_workflow(doc)["valid"] is True
            bad = {"id": "bad", "nodes": [{"id": "m", "type": "NoSuchNode"}]}
            with pytest.raises(WorkflowInvalid):
                gw.publish_workflow(bad)
            assert gw.publish_workflow(doc)["version"]["version"] == 1
            assert gw.share_workflow("hello")["kind"] == "tenant"
            assert "hello" in {w["slug"] for w in gw.workflows()}
            assert "flowchart" in gw.workflow_graph("hello")["mermaid"]
            run = gw.run_workflow("hello", {"message": "hi"})
            assert run["status"] == "succeeded" and run["output"]["text"].startswith("[demo]")
            assert run["promptVersionId"] == v2["id"]  # the tenant's pointer for demo
            streamed = list(gw.stream_workflow("hello", {"message": "hi"}))
            names = [event for _, event, _ in streamed]
            assert names[0] == "run.started" and names[-1] == "run.finished"
            assert [i for i, _, _ in streamed] == sorted(i for i, _, _ in streamed)
            assert streamed[-1][2]["status"] == "succeeded"

    async with serve(app) as url:
        await asyncio.to_thread(use, url)


def test_sync_errors_are_the_gasworks_tree_never_httpx() -> None:
    """A server that is not there: SERVER_UNREACHABLE (a gasworks error), with httpx's own
    exception only as its cause."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with Gasworks(f"http://127.0.0.1:{port}", "gw_test") as gw, pytest.raises(GasworksError) as e:
        gw.tenants()
    assert type(e.value) is ServerUnreachable and e.value.code == "SERVER_UNREACHABLE"
    assert e.value.details == {"server": f"http://127.0.0.1:{port}", "error": "ConnectError"}
