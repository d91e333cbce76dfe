"""Provider credentials by *name*: from the environment or a secrets file, never stored.

Registry entries and settings hold only the name of a credential (``OPENAI_API_KEY``); the
value is read here when a provider client is built, kept as a ``SecretStr`` and handed to the
SDK. It never appears in a log, a response, an error or the database.

The secrets file (``GASWORKS_SECRETS_FILE``) is a YAML/JSON mapping or a dotenv-style
``NAME=value`` file readable only by the service account. Environment variables win over it.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import SecretStr

from gasworks.errors import ConfigurationError
from gasworks.yamlsafe import DataParseError, load_data


class Credentials:
    def __init__(self, secrets_file: Path | None = None) -> None:
        self._file: dict[str, SecretStr] = {}
        if secrets_file is not None:
            self._file = _read_secrets_file(secrets_file)

    def get(self, name: str) -> SecretStr | None:
        value = os.environ.get(name)
        if value:
            return SecretStr(value)
        return self._file.get(name)

    def value(self, name: str) -> str | None:
        secret = self.get(name)
        return secret.get_secret_value() if secret is not None else None


def _read_secrets_file(path: Path) -> dict[str, SecretStr]:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot read GASWORKS_SECRETS_FILE {path}: {exc.strerror}",
            details={"file": str(path)},
        ) from exc
    data: object
    if path.suffix in (".json", ".yaml", ".yml"):
        try:
            data = load_data(text, json_only=path.suffix == ".json")
        except DataParseError as exc:
            raise ConfigurationError(
                f"GASWORKS_SECRETS_FILE {path} does not parse: {exc.reason}",
                details={"file": str(path)},
            ) from None
    else:
        pairs: dict[str, str] = {}
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            k, _, v = line.removeprefix("export ").partition("=")
            pairs[k.strip()] = v.strip().strip("'\"")
        data = pairs
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"GASWORKS_SECRETS_FILE {path} must be a mapping of NAME: value.",
            details={"file": str(path)},
        )
    return {str(k): SecretStr(str(v)) for k, v in data.items() if v is not None}
