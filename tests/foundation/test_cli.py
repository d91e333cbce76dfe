"""The `gasworks` command: every command with --json prints parseable JSON only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gasworks.cli.main import app


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
        return json.loads(result.stdout) if "--json" in args else result

    return invoke


def test_init_prints_an_admin_key_once_and_is_idempotent(cli):
    first = cli("init", "--json")
    assert first["created"] is True
    assert first["key"].startswith("gw_")
    assert first["tenant"]["name"] == "default"
    second = cli("init", "--json")
    assert second["created"] is False
    assert second["key"] is None
    assert second["tenant"]["id"] == first["tenant"]["id"]
    assert len(cli("tenants", "list", "--json")) == 1


def test_tenants_and_keys_lifecycle(cli):
    cli("init", "--json")
    t = cli("tenants", "create", "acme", "--display-name", "Acme Inc", "--json")
    assert t["name"] == "acme" and t["displayName"] == "Acme Inc"
    names = [x["name"] for x in cli("tenants", "list", "--json")]
    assert names == ["default", "acme"]

    created = cli("keys", "create", "--tenant", "acme", "--role", "editor", "--json")
    assert created["key"].startswith("gw_")
    assert created["principal"]["role"] == "editor"
    key_id = created["apiKey"]["id"]

    listed = cli("keys", "list", "--tenant", "acme", "--json")
    assert [k["id"] for k in listed] == [key_id]
    assert created["key"].split("_")[2] not in json.dumps(listed)

    revoked = cli("keys", "revoke", key_id, "--tenant", "acme", "--json")
    assert revoked["revokedAt"] is not None
    # another tenant's key id answers like a missing one
    err = cli("keys", "revoke", key_id, "--tenant", "default", "--json", code=1)
    assert err["error"]["code"] == "NOT_FOUND"


def test_key_with_expiry(cli):
    cli("init", "--json")
    created = cli(
        "keys", "create", "-t", "default", "--expires-at", "2099-01-01T00:00:00", "--json"
    )
    assert created["apiKey"]["expiresAt"].startswith("2099-01-01T00:00:00")
    err = cli(
        "keys", "create", "-t", "default", "--expires-at", "2001-01-01T00:00:00", "--json", code=1
    )
    assert err["error"]["code"] == "VALIDATION_FAILED"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("keys", "list", "--tenant", "nope", "--json"), "NOT_FOUND"),
        (("tenants", "create", "Bad Name!", "--json"), "VALIDATION_FAILED"),
        (("keys", "create", "--tenant", "nope", "--json"), "NOT_FOUND"),
    ],
)
def test_errors_exit_1_with_a_json_error(cli, args, code):
    out = cli(*args, code=1)
    assert out["error"]["code"] == code
    assert out["error"]["message"]


def test_duplicate_tenant_is_already_exists(cli):
    cli("tenants", "create", "twice", "--json")
    assert cli("tenants", "create", "twice", "--json", code=1)["error"]["code"] == "ALREADY_EXISTS"


def test_usage_error_exits_2_and_prints_nothing_on_stdout(cli):
    result = cli("keys", "create", "--tenant", "x", "--role", "emperor", code=2)
    assert result.stdout == ""


def test_error_without_json_is_a_clean_message(cli):
    result = cli("keys", "list", "--tenant", "nope", code=1)
    assert result.stdout == ""
    assert "NOT_FOUND" in result.stderr
    assert "Traceback" not in result.stderr


def test_version_db_and_config_commands(cli):
    from gasworks import __version__
    from gasworks.db.migrate import head_revision

    assert cli("version", "--json") == {"version": __version__}
    assert cli("db", "upgrade", "--json")["revision"] == head_revision()
    current = cli("db", "current", "--json")
    assert current == {"current": head_revision(), "head": head_revision()}
    cfg = cli("config", "show", "--json")
    assert cfg["port"] == 8000
    assert "database_url" in cfg


def test_unreachable_database_is_a_clean_error(tmp_path, monkeypatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        "GASWORKS_DATABASE_URL": f"postgresql://u:sekret@127.0.0.1:{port}/x",
        "GASWORKS_HOME": str(tmp_path),
    }
    result = CliRunner().invoke(app, ["db", "upgrade", "--json"], env=env)
    assert result.exit_code == 1, result.output
    out = json.loads(result.stdout)
    assert out["error"]["code"] == "DATABASE_UNAVAILABLE"
    assert "sekret" not in result.output


def test_real_process_stdout_is_json_only(db_url, tmp_path):
    """A real `gasworks` process: logs never reach stdout, even on a fresh home."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GASWORKS_") or k == "GASWORKS_TEST_POSTGRES_URL"
    }
    env |= {
        "GASWORKS_DATABASE_URL": db_url,
        "GASWORKS_HOME": str(tmp_path / "home"),
        "GASWORKS_LOG_LEVEL": "DEBUG",
    }
    exe = Path(sys.executable).with_name("gasworks")
    proc = subprocess.run(
        [str(exe), "init", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["created"] is True


def test_human_output_of_every_command(cli):
    """Without --json: readable text, and the key appears only where it is created."""
    created = cli("init")
    assert "shown only once" in created.stdout
    assert "already has an administrator" in cli("init").stdout
    cli("tenants", "create", "acme")
    assert "acme" in cli("tenants", "list").stdout
    made = cli("keys", "create", "--tenant", "acme", "--role", "admin")
    key = next(w for w in made.stdout.split() if w.startswith("gw_"))
    listed = cli("keys", "list", "--tenant", "acme").stdout
    assert "active" in listed and key.split("_")[2] not in listed
    key_id = next(w for w in made.stdout.split() if w.startswith("key_"))
    assert "Revoked" in cli("keys", "revoke", key_id, "--tenant", "acme").stdout
    assert "revoked" in cli("keys", "list", "--tenant", "acme").stdout
    assert "current:" in cli("db", "current").stdout
    assert "revision" in cli("db", "upgrade").stdout
    assert "port" in cli("config", "show").stdout
    assert "gasworks" in cli("version").stdout


# --- the first hour (issue 17): one line, never a traceback --------------------------------


def _one_line_error(result: Any, code: str) -> str:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.output and result.stdout == ""
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{code}: "), result.stderr
    assert len(result.stderr.splitlines()) <= 2  # the message, and its details
    return first


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("bad.yaml", 'system: "hi\nuser: [x\n', "line 3, column 1"),
        ("bad.json", '{"system": "x",}', "line 1, column 16"),  # "(line 1, column 16)"
        ("typo.yaml", "sistem: hi\n", "sistem"),
        ("empty.yaml", "", "must hold a mapping"),
    ],
)
def test_bad_prompt_file_is_one_line_with_its_position(cli, tmp_path, name, text, where):
    path = tmp_path / name
    path.write_text(text)
    line = _one_line_error(cli("prompts", "push", str(path), code=1), "VALIDATION_FAILED")
    assert where in line
    err = cli("prompts", "push", str(path), "--json", code=1)["error"]
    assert err["code"] == "VALIDATION_FAILED" and where in err["message"]


def test_workflow_yaml_parse_error_keeps_line_and_column(cli, tmp_path):
    path = tmp_path / "wf.yaml"
    path.write_text("id: x\nnodes:\n  - id: a\n   type: Format\n")
    out = cli("workflows", "validate", str(path), "--json", code=1)
    issue = out["issues"][0]
    assert issue["code"] == "PARSE_ERROR" and (issue["line"], issue["column"]) == (4, 4)
    assert "line 4, column 4" in issue["message"]


def test_unexpected_failure_is_one_internal_line(cli, monkeypatch):
    from gasworks.settings import Settings

    def boom(self):
        raise RuntimeError("a bug")

    monkeypatch.setattr(Settings, "public_dict", boom)
    line = _one_line_error(cli("config", "show", code=1), "INTERNAL")
    assert "RuntimeError" in line and "GASWORKS_DEBUG=1" in line
    assert cli("config", "show", "--json", code=1)["error"]["code"] == "INTERNAL"


def test_unreachable_server_is_one_line(cli, monkeypatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ("chat", "hi", "--server", f"http://127.0.0.1:{port}", "--api-key", "gw_x")
    line = _one_line_error(cli(*args, code=1), "SERVER_UNREACHABLE")
    assert f"127.0.0.1:{port}" in line
    assert cli(*args, "--json", code=1)["error"]["code"] == "SERVER_UNREACHABLE"


def test_postgres_url_without_its_driver_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # as if not installed
    env = {
        "GASWORKS_DATABASE_URL": "postgresql://u:sekret@127.0.0.1:1/x",
        "GASWORKS_HOME": str(tmp_path),
    }
    result = CliRunner().invoke(app, ["db", "current"], env=env)
    line = _one_line_error(result, "MISSING_DEPENDENCY")
    assert "pip install 'gasworks[postgres]'" in line and "sekret" not in result.output


def test_messages_are_not_eaten_as_markup(cli):
    cli("init")
    result = cli("tenants", "create", "Bad Name!", code=1)
    assert "[a-z0-9]" in result.stderr  # the name rule, brackets intact


def test_version_flag_and_help_without_bool_metavar(cli):
    from gasworks import __version__

    assert cli("--version").stdout.strip() == f"gasworks {__version__}"
    help_text = cli("prompts", "push", "--help").stdout
    assert "--json" in help_text and "<bool>" not in help_text


def test_no_database_is_created_implicitly(tmp_path, monkeypatch):
    """Outside init/serve/db upgrade, a missing embedded database is an error naming the home
    it looked in, and nothing is created there."""
    for key in list(os.environ):
        if key.startswith("GASWORKS_") and key != "GASWORKS_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)
    home = tmp_path / "elsewhere"
    env = {"GASWORKS_HOME": str(home)}
    result = CliRunner().invoke(app, ["tenants", "list"], env=env)
    line = _one_line_error(result, "NOT_INITIALIZED")
    assert str(home.resolve()) in line and "gasworks init" in line
    assert not (home / "gasworks.db").exists()
    out = json.loads(CliRunner().invoke(app, ["tenants", "list", "--json"], env=env).stdout)
    assert out["error"]["code"] == "NOT_INITIALIZED"


def test_ids_are_never_cut_in_tables(cli):
    cli("init")
    for i in range(3):
        cli("keys", "create", "--tenant", "default", "--name", f"a rather long key name {i}")
    ids = [k["id"] for k in cli("keys", "list", "--tenant", "default", "--json")]
    listed = cli("keys", "list", "--tenant", "default").stdout
    assert all(i in listed for i in ids)


def test_platform_admin_key_recovers_a_lost_admin_key(cli):
    cli("init")
    made = cli("keys", "create", "--tenant", "default", "--platform-admin", "--json")
    assert made["principal"]["isPlatformAdmin"] is True and made["principal"]["role"] == "owner"
    plain = cli("keys", "create", "--tenant", "default", "--role", "owner", "--json")
    assert plain["principal"]["isPlatformAdmin"] is False


def test_human_mode_logs_are_not_json(cli):
    cli("init")
    result = cli("breakers", "trip", "demo", "--reason", "drill")
    assert "forced_open" in result.stdout
    for line in result.stderr.splitlines():
        assert not line.lstrip().startswith("{"), result.stderr


def test_publish_of_an_invalid_file_shows_the_validate_table(cli, tmp_path):
    cli("init")
    path = tmp_path / "wf.yaml"
    path.write_text("id: broken\nnodes:\n  - id: a\n    type: ModelInvok\nedges: []\n")
    shown = cli("workflows", "validate", str(path), code=1).stdout
    published = cli("workflows", "publish", str(path), code=1)
    assert "UNKNOWN_NODE_TYPE" in published.stdout and "nodes[0].type" in published.stdout
    assert published.stdout == shown
    assert "{" not in published.stderr
    err = cli("workflows", "publish", str(path), "--json", code=1)["error"]
    assert err["code"] == "WORKFLOW_INVALID"


def test_long_operations_show_progress_on_a_terminal_only(monkeypatch):
    import io

    from rich.console import Console
    from rich.status import Status

    from gasworks.cli import output

    tty = Console(file=io.StringIO(), force_terminal=True)
    monkeypatch.setattr(output, "err_console", tty)
    assert isinstance(output.progress("Upgrading…", False), Status)
    assert not isinstance(output.progress("Upgrading…", True), Status)  # --json: nothing
    monkeypatch.setattr(output, "err_console", Console(file=io.StringIO()))  # a pipe
    assert not isinstance(output.progress("Upgrading…", False), Status)


def test_no_python_reprs_in_human_output(cli):
    cli("init")
    shown = cli("models", "show", "gpt-4o").stdout
    assert 'capabilities = {"' in shown  # JSON, not a dict's repr
    assert "{'" not in shown and "None" not in shown
    made = cli("budgets", "set", "--period", "day", "--tokens", "500").stdout
    assert made.strip() == "Limit set: daily 500 tokens for the tenant."
