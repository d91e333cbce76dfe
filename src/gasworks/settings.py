"""Typed settings: ``GASWORKS_*`` environment variables, an optional TOML/YAML config file.

Precedence (highest first): explicit constructor arguments, environment variables, the
config file named by ``GASWORKS_CONFIG_FILE``, defaults. Secrets are ``SecretStr`` and are
never printed (``Settings.public_dict`` masks them).
"""

from __future__ import annotations

import os
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"
    AUTO = "auto"


def _config_file() -> Path | None:
    raw = os.environ.get("GASWORKS_CONFIG_FILE")
    return Path(raw) if raw else None


class Settings(BaseSettings):
    """Every setting of a gasworks deployment. See docs/operations.md for the reference."""

    model_config = SettingsConfigDict(
        env_prefix="GASWORKS_",
        env_nested_delimiter="__",
        extra="ignore",
        case_sensitive=False,
    )

    home: Path = Field(
        default=Path(".gasworks"),
        description="Folder for the embedded database, blobs and keys.",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL. Default: SQLite file under GASWORKS_HOME. "
        "A postgresql:// URL switches to PostgreSQL (asyncpg driver).",
    )
    database_pool_size: int = Field(default=10, ge=1, le=500)
    database_echo: bool = False
    auto_migrate: bool = Field(
        default=True, description="Upgrade the database schema on server start."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    log_format: LogFormat = LogFormat.AUTO
    log_level: str = "INFO"
    environment: str = Field(default="development", description="development or production.")
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP endpoint; tracing is exported when set."
    )
    otel_service_name: str = "gasworks"
    auth_cache_ttl_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long a verified API key is trusted in-process before it is checked "
        "again (bounds how long a revoked key keeps working in another process).",
    )
    key_last_used_resolution_seconds: float = Field(
        default=60.0, ge=0, description="last_used_at is written at most this often per key."
    )
    graphql_max_depth: int = Field(default=10, ge=1, le=50)
    master_key: SecretStr | None = Field(
        default=None,
        description="Base64 master key for envelope encryption. Default: generated once "
        "under GASWORKS_HOME/keys/master.key.",
    )
    models_file: Path | None = Field(default=None, description="YAML file of extra models.")
    default_model: str = Field(default="demo", description="Model used when none is given.")

    # --- workflows ------------------------------------------------------------------------
    workflow_persist_runs: bool = Field(
        default=True,
        description="Persist runs (status, timings, tokens, cost, errors) and their events.",
    )
    workflow_event_flush_seconds: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="While a run streams, its events are written in batches this often "
        "(so a reconnecting client resumes from any server process).",
    )
    workflow_access_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        le=300,
        description="How long a caller's resolved (workflow, version, access) is reused before "
        "the database is asked again. Changes made in the same process apply at once; in "
        "another process after at most this long. 0 disables the cache.",
    )
    workflow_graph_cache_size: int = Field(
        default=256, ge=1, le=100_000, description="Compiled workflow versions kept in memory."
    )

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, v: Path) -> Path:
        return v.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        cfg = _config_file()
        if cfg is not None:
            if cfg.suffix in {".yaml", ".yml"}:
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=cfg))
            else:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cfg))
        sources.append(file_secret_settings)
        return tuple(sources)

    @property
    def resolved_database_url(self) -> str:
        """The async SQLAlchemy URL actually used."""
        if self.database_url is None:
            return f"sqlite+aiosqlite:///{(self.home / 'gasworks.db').resolve()}"
        return normalize_database_url(self.database_url.get_secret_value())

    @property
    def json_logs(self) -> bool:
        if self.log_format is LogFormat.AUTO:
            return self.environment == "production"
        return self.log_format is LogFormat.JSON

    def public_dict(self) -> dict[str, Any]:
        """Settings as a dict safe to print: secrets masked, URLs without passwords."""
        out: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                out[name] = "**********" if value.get_secret_value() else ""
            elif isinstance(value, Path):
                out[name] = str(value)
            else:
                out[name] = value
        out["database_url"] = redact_url(self.resolved_database_url)
        return out


def normalize_database_url(url: str) -> str:
    """Map plain URLs to their async drivers: postgresql:// → postgresql+asyncpg://."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


def redact_url(url: str) -> str:
    """Hide the password of a database URL."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable url>"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
