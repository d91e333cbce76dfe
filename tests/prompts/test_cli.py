from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from gasworks.cli.main import app


@pytest.fixture
def cli(tmp_path, db_url, monkeypatch):
    for key in list(os.environ):
        if key.startswith("GASWORKS_") and key != "GASWORKS_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("GASWORKS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GASWORKS_DATABASE_URL", db_url)
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True):
        result = runner.invoke(app, [*args, "--json"])
        if ok:
            assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    invoke("init")
    return invoke


def test_push_deploy_rollback_history_resolve(cli, tmp_path):
    f = tmp_path / "support.yaml"
    f.write_text("name: support\nsystem: 'You sell ${slots.product}.'\nuser: '${inputs.q}'\n")
    one = cli(
        "prompts", "push", str(f), "--model", "gpt-4o", "--workflow", "wf", "--tenant", "default"
    )
    assert one["version"]["number"] == 1 and one["pointer"]["version"] == 1
    assert one["pointer"]["level"] == "tenant+workflow+model"
    again = cli(
        "prompts", "push", str(f), "--model", "gpt-4o", "--workflow", "wf", "--tenant", "default"
    )
    assert again["version"]["created"] is False and again["pointer"]["version"] == 1

    f.write_text("name: support\nsystem: 'You sell ${slots.product} only.'\nuser: '${inputs.q}'\n")
    two = cli("prompts", "push", str(f), "-m", "gpt-4o", "-w", "wf", "-t", "default")
    assert two["pointer"]["activeVersionId"] == two["version"]["id"]
    assert two["pointer"]["previousVersionId"] == one["version"]["id"]

    res = cli(
        "prompts", "resolve", "-m", "gpt-4o", "-w", "wf", "-t", "default",
        "--var", "slots.product=bikes", "--var", "inputs.q=hi",
    )  # fmt: skip
    assert res["level"] == "tenant+workflow+model" and res["versionId"] == two["version"]["id"]
    assert res["messages"][0]["content"] == "You sell bikes only."

    back = cli(
        "prompts", "rollback", "-m", "gpt-4o", "-w", "wf", "-t", "default", "--reason", "bad"
    )
    assert back["activeVersionId"] == one["version"]["id"] and back["version"] == 3
    hist = cli("prompts", "history", "-m", "gpt-4o", "-w", "wf", "-t", "default")
    assert [h["seq"] for h in hist] == [3, 2, 1] and hist[0]["reason"] == "bad"
    assert hist[0]["actor"].startswith("cli:")

    diff = cli("prompts", "diff", one["version"]["id"], two["version"]["id"], "-t", "default")
    assert "+You sell ${slots.product} only." in diff["diff"]

    stale = cli(
        "prompts", "deploy", two["version"]["id"], "-m", "gpt-4o", "-w", "wf", "-t", "default",
        "--expected-version", "1", ok=False,
    )  # fmt: skip
    assert stale["error"]["code"] == "PROMPT_POINTER_CONFLICT"
    dead = cli("prompts", "dead-letters", "list", "-t", "default")
    assert [d["reasonCode"] for d in dead] == ["PROMPT_POINTER_CONFLICT"]
    replay = cli("prompts", "dead-letters", "replay", dead[0]["id"], "-t", "default", "--rebase")
    assert replay["pointer"]["activeVersionId"] == two["version"]["id"]


def test_platform_wide_push_and_text_file(cli, tmp_path):
    f = tmp_path / "neutral.txt"
    f.write_text("Be brief.")
    out = cli("prompts", "push", str(f), "--model", "bedrock/us.anthropic.claude-3-haiku")
    assert out["pointer"]["scopeTenant"] is None and out["pointer"]["level"] == "model"
    assert out["pointer"]["model"] == "anthropic.claude-3-haiku"
    res = cli("prompts", "resolve", "--model", "anthropic.claude-3-haiku", "--tenant", "default")
    assert res["level"] == "model" and res["content"]["system"] == "Be brief."
    neutral = cli("prompts", "resolve", "--model", "unknown-model")
    assert neutral["level"] == "neutral" and neutral["versionId"] is None


def test_retention_and_blob_key_rotation_commands(cli, tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("lorem " * 20_000)
    out = cli("prompts", "push", str(big), "--no-deploy", "-t", "default")
    assert out["version"]["storage"] == "blob"
    report = cli("prompts", "retention", "--dry-run")
    assert report == {"deleted": [], "keptInUse": 0, "dryRun": True}
    rot = cli("blobs", "rotate-key")
    assert rot["rewrapped"] == 1 and rot["previousKeyId"] != rot["currentKeyId"]
    shown = cli("prompts", "show", out["version"]["id"], "-t", "default")
    assert shown["content"]["system"] == "lorem " * 20_000
    again = cli("blobs", "rewrap", "--retire")
    assert again["alreadyCurrent"] == 1 and again["retiredKeyIds"] == [rot["previousKeyId"]]


def test_chat_through_the_gateway(cli, tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("system: 'You are terse.'\nuser: 'Asked: ${inputs.user_prompt}'\n")
    pushed = cli("prompts", "push", str(f), "-m", "demo", "-w", "wf", "-t", "default")
    out = cli("prompts", "chat", "is it raining", "-m", "demo", "-w", "wf", "-t", "default")
    assert out["prompt"]["versionId"] == pushed["version"]["id"]
    assert 'You asked about "Asked: is it raining"' in out["text"]


def test_chat_prints_the_answer_as_it_streams(cli, tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("system: 'You are terse.'\nuser: 'Asked: ${inputs.user_prompt}'\n")
    cli("prompts", "push", str(f), "-m", "demo", "-w", "wf", "-t", "default")
    result = CliRunner().invoke(
        app, ["prompts", "chat", "is it raining", "-m", "demo", "-w", "wf", "-t", "default"]
    )
    assert result.exit_code == 0, result.output
    assert 'You asked about "Asked: is it raining"' in result.stdout
    assert "prompt tenant+workflow+model" in result.stdout


def test_show_takes_a_name_a_name_at_a_version_or_an_id(cli, tmp_path):
    f = tmp_path / "support.yaml"
    f.write_text("system: 'one'\n")
    one = cli("prompts", "push", str(f), "-t", "default")["version"]
    f.write_text("system: 'two'\n")
    two = cli("prompts", "push", str(f), "-t", "default")["version"]
    assert cli("prompts", "show", "support", "-t", "default")["id"] == two["id"]
    assert cli("prompts", "show", "support@1", "-t", "default")["id"] == one["id"]
    assert cli("prompts", "show", one["id"], "-t", "default")["content"]["system"] == "one"
    err = cli("prompts", "show", "nope", "-t", "default", ok=False)["error"]
    assert err["code"] == "PROMPT_VERSION_NOT_FOUND"
