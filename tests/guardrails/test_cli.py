"""`gasworks breakers|budgets|usage` with --json, against both dialects."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from typer.testing import CliRunner

from gasworks.cli.main import app

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")


@pytest.fixture(autouse=True)
def _restore_logging():
    """The CLI points logging at CliRunner's stderr, closed after each invoke: restore it."""
    yield
    from gasworks.observability.logging import configure_logging

    configure_logging(json=False, level="INFO")


@pytest.fixture
def cli(settings, monkeypatch):
    monkeypatch.setenv("GASWORKS_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("GASWORKS_HOME", str(settings.home))
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True) -> Any:
        result = runner.invoke(app, [*args, "--json"])
        assert (result.exit_code == 0) is ok, result.output
        # structlog's default (unconfigured) logger also prints to stdout: skip its lines
        lines = [ln for ln in result.stdout.splitlines() if not LOG_LINE.match(ln)]
        return json.loads("\n".join(lines))

    invoke("init")
    return invoke


def test_breakers_trip_list_reset_events(cli) -> None:
    out = cli("breakers", "trip", "gpt-4o", "--reason", "vendor incident")
    assert out["state"] == "forced_open"
    (b,) = [x for x in cli("breakers", "list") if x["breaker"] == "gpt-4o"]
    assert (b["breaker"], b["state"], b["reason"]) == (
        "gpt-4o",
        "forced_open",
        "vendor incident",
    )
    assert cli("breakers", "reset", "gpt-4o", "--reason", "resolved")["state"] == "closed"
    events = cli("breakers", "events", "gpt-4o")
    assert [(e["toState"], e["reason"]) for e in events] == [
        ("closed", "resolved"),
        ("forced_open", "vendor incident"),
    ]
    assert all(e["actor"].startswith("cli:") and e["manual"] for e in events)


def test_breaker_action_needs_reason(cli) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["breakers", "trip", "demo"])
    assert result.exit_code != 0
    err = cli("breakers", "trip", "no-such-model", "--reason", "x", ok=False)
    assert err["error"]["code"] == "MODEL_NOT_FOUND"


def test_budgets_set_show_remove_and_usage(cli) -> None:
    out = cli("budgets", "set", "--period", "day", "--cost", "12.5", "--tokens", "1000")
    assert out["costLimit"] == "12.5" and out["tokenLimit"] == 1000
    (b,) = cli("budgets", "show")
    assert b["period"] == "day" and b["spentCost"] == "0"
    err = cli("budgets", "set", "--period", "day", "--cost", "abc", ok=False)
    assert err["error"]["code"] == "VALIDATION_FAILED"
    err = cli("budgets", "show", "--tenant", "nope", ok=False)
    assert err["error"]["code"] == "NOT_FOUND"
    assert cli("budgets", "set", "--period", "day") is None
    assert cli("budgets", "show") == []
    report = cli("usage", "summary", "--by", "model", "--by", "day")
    assert report["rows"] == [] and report["total"]["calls"] == 0
    assert cli("usage", "calls") == []
