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


CONFIG_SUFFIXES = (".toml", ".yaml", ".yml")


def _config_file() -> Path | None:
    """The file named by ``GASWORKS_CONFIG_FILE``; a missing one is an error, not a no-op."""
    raw = os.environ.get("GASWORKS_CONFIG_FILE")
    if not raw:
        return None
    path = Path(raw).expanduser()
    if path.suffix not in CONFIG_SUFFIXES:
        from gasworks.errors import ConfigurationError

        raise ConfigurationError(
            f"GASWORKS_CONFIG_FILE={raw}: use a .toml, .yaml or .yml file.",
            details={"config_file": raw},
        )
    if not path.is_file():
        from gasworks.errors import ConfigurationError

        raise ConfigurationError(
            f"GASWORKS_CONFIG_FILE={raw} does not exist or is not a file.",
            details={"config_file": raw},
        )
    return path


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
    database_pool_size: int = Field(
        default=10,
        ge=1,
        le=500,
        description="PostgreSQL connections kept per process (as many again may overflow).",
    )
    database_echo: bool = Field(default=False, description="Log every SQL statement (debug).")
    auto_migrate: bool = Field(
        default=True, description="Upgrade the database schema on server start."
    )
    host: str = Field(default="127.0.0.1", description="Address `gasworks serve` binds.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `gasworks serve` binds.")
    workers: int = Field(
        default=1, ge=1, le=64, description="Server worker processes of `gasworks serve`."
    )
    log_format: LogFormat = Field(
        default=LogFormat.AUTO,
        description="json, console, or auto (json when GASWORKS_ENVIRONMENT=production).",
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    environment: str = Field(default="development", description="development or production.")
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP endpoint; tracing is exported when set."
    )
    otel_service_name: str = Field(
        default="gasworks", description="service.name of exported traces."
    )
    auth_cache_ttl_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long a verified API key is trusted in-process before it is checked "
        "again (bounds how long a revoked key keeps working in another process).",
    )
    key_last_used_resolution_seconds: float = Field(
        default=60.0, ge=0, description="last_used_at is written at most this often per key."
    )
    max_request_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted (413 PAYLOAD_TOO_LARGE above); a route may "
        "set its own limit.",
    )
    graphql_max_depth: int = Field(
        default=10, ge=1, le=50, description="Deepest GraphQL query accepted (introspection aside)."
    )
    master_key: SecretStr | None = Field(
        default=None,
        description="Base64 master key for envelope encryption. Default: generated once "
        "under GASWORKS_HOME/keys/master.key.",
    )
    models_file: Path | None = Field(default=None, description="YAML file of extra models.")
    default_model: str = Field(default="demo", description="Model used when none is given.")

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
