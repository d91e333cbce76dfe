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
from typing import Any

import structlog

_SECRET_KEY = re.compile(r"(api[_-]?key|secret|password|token|authorization)$", re.I)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._\-]+")
_GW_KEY = re.compile(r"gw_[A-Za-z0-9]{6,}_[A-Za-z0-9]+")


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if _SECRET_KEY.search(key) and key not in {"tokens", "token_count"}:
            event[key] = "**********"
        elif isinstance(value, str):
            event[key] = _GW_KEY.sub("gw_**********", _BEARER.sub(r"\1**********", value))
    return event


def configure_logging(*, json: bool, level: str = "INFO") -> None:
    lvl = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
