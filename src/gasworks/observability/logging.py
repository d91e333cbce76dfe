"""structlog configuration: JSON in production, readable in a terminal.

Context (requestId, tenantId, later workflowId/modelId) is bound with
``structlog.contextvars.bind_contextvars`` and appears on every line logged in that context.
A processor drops values of keys that look like secrets, as a last line of defence.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_SECRET_KEY = re.compile(r"(api[_-]?key|secret|password|token|authorization)$", re.I)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._\-]+")
_GW_KEY = re.compile(r"gw_[A-Za-z0-9]{6,}_[A-Za-z0-9]+")


_MASK = "**********"
_NOT_SECRET = frozenset({"tokens", "token_count"})
#: key -> whether its value is masked (log keys repeat: the regex runs once per key)
_SECRET_KEYS: dict[str, bool] = {}
#: the level configured last (``enabled_for``)
_LEVEL = logging.INFO


def _is_secret_key(key: str) -> bool:
    hit = _SECRET_KEYS.get(key)
    if hit is None:
        hit = bool(_SECRET_KEY.search(key)) and key not in _NOT_SECRET
        if len(_SECRET_KEYS) < 4096:
            _SECRET_KEYS[key] = hit
    return hit


def _scrub(value: Any, depth: int = 0) -> Any:
    """Mask secret-looking keys and key material in strings, inside dicts and lists too."""
    if isinstance(value, str):
        # substring tests first: the regexes only run on strings that may hold a secret
        if "Bearer" in value:
            value = _BEARER.sub(r"\1" + _MASK, value)
        if "gw_" in value:
            value = _GW_KEY.sub("gw_" + _MASK, value)
        return value
    if depth > 8:
        return value
    if isinstance(value, dict):
        return {
            k: _MASK if isinstance(k, str) and _is_secret_key(k) else _scrub(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(v, depth + 1) for v in value]
    return value


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if _is_secret_key(key):
            event[key] = _MASK
        elif isinstance(value, str | dict | list | tuple):
            event[key] = _scrub(value)
    return event


def enabled_for(level: int) -> bool:
    """Whether a line at ``level`` is written (lets a hot path skip building its fields)."""
    return level >= _LEVEL


def configure_logging(*, json: bool, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Configure structlog for the process (may be called again, e.g. by each app).

    Loggers are not cached on first use, so a logger created at import time follows the
    latest configuration (the CLI configures logging before the server reconfigures it).
    """
    global _LEVEL
    lvl = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    _LEVEL = lvl
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,  # before _redact: tracebacks get scrubbed too
        _redact,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=(stream or sys.stderr).isatty())
    )
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        # sys.stderr is looked up per logger, not frozen here: it may be replaced later
        # (pytest's capture, a daemon redirecting it)
        logger_factory=lambda *_: structlog.PrintLogger(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
