"""Settings: defaults, a TOML/YAML config file, environment precedence, masked secrets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gasworks.settings import LogFormat, Settings, normalize_database_url, redact_url


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("GASWORKS_"):
            monkeypatch.delenv(key)


def test_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = Settings()
    assert s.home == Path(".gasworks")
    assert s.port == 8000 and s.host == "127.0.0.1"
    assert (
        s.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path / '.gasworks' / 'gasworks.db'}"
    )
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert s.json_logs is False  # a terminal: readable lines


def test_auto_log_format_is_json_off_a_terminal_and_in_production(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    assert Settings().json_logs is True  # a pipe, a file, a collector
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert Settings(environment="production").json_logs is True
    assert Settings(log_format="console", environment="production").json_logs is False


def test_toml_config_file(tmp_path, monkeypatch):
    cfg = tmp_path / "gasworks.toml"
    cfg.write_text('port = 9001\nlog_format = "json"\nhome = "/srv/gw"\n')
    monkeypatch.setenv("GASWORKS_CONFIG_FILE", str(cfg))
    s = Settings()
    assert s.port == 9001
    assert s.log_format is LogFormat.JSON
    assert s.home == Path("/srv/gw")


def test_yaml_config_file(tmp_path, monkeypatch):
    cfg = tmp_path / "gasworks.yaml"
    cfg.write_text("port: 9002\ngraphql_max_depth: 7\n")
    monkeypatch.setenv("GASWORKS_CONFIG_FILE", str(cfg))
    s = Settings()
    assert s.port == 9002 and s.graphql_max_depth == 7


def test_env_beats_file_and_arguments_beat_env(tmp_path, monkeypatch):
    cfg = tmp_path / "gasworks.toml"
    cfg.write_text("port = 9001\nworkers = 3\n")
    monkeypatch.setenv("GASWORKS_CONFIG_FILE", str(cfg))
    monkeypatch.setenv("GASWORKS_PORT", "9100")
    s = Settings()
    assert s.port == 9100  # env over file
    assert s.workers == 3  # file over default
    assert Settings(port=9200).port == 9200  # explicit over env


def test_missing_config_file_is_a_clear_error(tmp_path, monkeypatch):
    from gasworks.errors import ConfigurationError

    monkeypatch.setenv("GASWORKS_CONFIG_FILE", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigurationError, match=r"nope\.toml"):
        Settings()


def test_invalid_value_names_the_setting(monkeypatch):
    from pydantic import ValidationError

    monkeypatch.setenv("GASWORKS_PORT", "70000")
    with pytest.raises(ValidationError, match="port"):
        Settings()


def test_home_expands_user(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Settings(home=Path("~/gw")).home == tmp_path / "gw"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("postgresql://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
        ("postgres://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
        ("sqlite:////tmp/x.db", "sqlite+aiosqlite:////tmp/x.db"),
        ("postgresql+asyncpg://h/db", "postgresql+asyncpg://h/db"),
    ],
)
def test_database_url_normalisation(raw, expected):
    assert normalize_database_url(raw) == expected


def test_secrets_are_masked_in_public_dict_and_repr(monkeypatch):
    monkeypatch.setenv("GASWORKS_DATABASE_URL", "postgresql://gw:s3cr3t-pw@db.internal:5432/gw")
    monkeypatch.setenv("GASWORKS_MASTER_KEY", "bWFzdGVyLWtleS1zZWNyZXQ=")
    s = Settings()
    shown = json.dumps(s.public_dict(), default=str)
    for secret in ("s3cr3t-pw", "bWFzdGVyLWtleS1zZWNyZXQ="):
        assert secret not in shown
        assert secret not in repr(s)
        assert secret not in str(s)
    assert s.public_dict()["master_key"] == "**********"
    assert "db.internal" in s.public_dict()["database_url"]


def test_config_show_masks_secrets(monkeypatch, tmp_path):
    from gasworks.cli.main import app

    env = {
        "GASWORKS_DATABASE_URL": "postgresql://gw:s3cr3t-pw@db.internal:5432/gw",
        "GASWORKS_MASTER_KEY": "bWFzdGVyLWtleS1zZWNyZXQ=",
        "GASWORKS_HOME": str(tmp_path),
    }
    for args in (["config", "show", "--json"], ["config", "show"]):
        result = CliRunner().invoke(app, args, env=env)
        assert result.exit_code == 0, result.output
        assert "s3cr3t-pw" not in result.output
        assert "bWFzdGVyLWtleS1zZWNyZXQ=" not in result.output
    shown = json.loads(CliRunner().invoke(app, ["config", "show", "--json"], env=env).stdout)
    assert shown["master_key"] == "**********"


def test_redact_url_of_garbage_does_not_raise():
    assert redact_url("::::") == "<unparseable url>"


def test_cli_reports_a_bad_setting_cleanly(tmp_path):
    from gasworks.cli.main import app

    result = CliRunner().invoke(app, ["version"], env={"GASWORKS_PORT": "70000"})
    assert result.exit_code == 1
    assert "CONFIGURATION_ERROR" in result.stderr and "port" in result.stderr
    assert "Traceback" not in result.output


def test_unknown_config_suffix_is_rejected(tmp_path, monkeypatch):
    from gasworks.errors import ConfigurationError

    cfg = tmp_path / "gasworks.ini"
    cfg.write_text("port=1\n")
    monkeypatch.setenv("GASWORKS_CONFIG_FILE", str(cfg))
    with pytest.raises(ConfigurationError, match="toml"):
        Settings()
