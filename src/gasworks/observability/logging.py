"""structlog configuration: JSON in production, readable in a terminal.

Context (requestId, tenantId, later workflowId/modelId) is bound with
``structlog.contextvars.bind_contextvars`` and appears on every line logged in that context.
A processor drops values of keys that look like secrets, as a last line of defence.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json as _json
import logging
import re
import sys
import time
from collections.abc import MutableMapping
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, TextIO

import structlog
from structlog.contextvars import STRUCTLOG_KEY_PREFIX

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


def _json_value(value: Any) -> str:
    """``value`` as structlog's JSONRenderer writes it (``json.dumps``, ``repr`` fallback)."""
    if isinstance(value, str):
        return str(_quote(value))
    return _json.dumps(value, default=repr)


class AccessLog:
    """The INFO access line of every HTTP request, written without structlog's processor
    chain (issue #19: the chain — bind, context merge, timestamp, redaction, ``json.dumps``
    of the whole event, print — cost more than the guardrails hook on a busy server).

    The line is the one structlog would write, with the same keys in the same order:
    ``method``, ``route``, ``status``, ``durationMs``, ``event``, the context bound with
    ``bind_contextvars`` (``requestId``, ``tenantId``, ...), ``level``, ``timestamp``. Its
    constant parts are rendered once per configuration (the prefix per method and route, the
    timestamp per second); the context values pass through the same redaction as every other
    line. Console (non-JSON) output goes through structlog as before: it is for terminals.
    """

    def __init__(self, *, json: bool, stream: TextIO | None) -> None:
        self.json = json
        self._stream = stream
        self._heads: dict[tuple[str, str], str] = {}
        self._second = -1
        self._stamp = ""
        #: (buffer, loop) of the flush scheduled for this turn (once per loop turn)
        self._flush_due: tuple[Any, asyncio.AbstractEventLoop] | None = None
        self._log: Any = structlog.get_logger("gasworks.http")

    def write(self, method: str, route: str, status: int, duration_ms: float) -> None:
        if not self.json:
            self._log.info(
                "http.request", method=method, route=route, status=status, durationMs=duration_ms
            )
            return
        head = self._heads.get((method, route))
        if head is None:
            head = (
                f'{{"method": {_json_value(_scrub(method))}, '
                f'"route": {_json_value(_scrub(route))}, "status": '
            )
            if len(self._heads) < 10_000:
                self._heads[(method, route)] = head
        bound = ""
        keys = _BOUND_KEYS
        for var, value in contextvars.copy_context().items():
            key = keys.get(var)
            if key is None:
                key = _bound_key(var.name)
                if len(keys) < _MAX_BOUND_KEYS:
                    keys[var] = key
            if not key or value is Ellipsis:
                continue
            if key[0] == "*":  # a secret-looking key: its value masked
                bound += f"{key[1:]}{_MASK_JSON}"
            elif type(value) is str:  # redacted by ``_scrub``, the one place of its rules
                bound += f"{key}{_quote(_scrub(value))}"
            else:
                bound += f"{key}{_json_value(_scrub(value))}"
        self._emit(
            f'{head}{int(status)}, "durationMs": {float(duration_ms)!r}, "event": '
            f'"http.request"{bound}, "level": "info", "timestamp": "{self._timestamp()}"}}\n'
        )

    def _emit(self, line: str) -> None:
        """Write ``line``. Into a text stream over a binary buffer (``sys.stderr``: line
        buffered, so one ``write`` system call per line), the bytes go into the buffer and
        the buffer is flushed once per turn of the event loop: the lines of the requests that
        finish in one turn leave in one system call. Other lines written to the same stream
        (structlog's, printed whole and flushed at once: the text layer holds nothing between
        lines) push the waiting access lines out first, so the order of lines is kept. Without
        a running loop, or into a stream without a binary buffer, the line is written and
        flushed at once."""
        out = self._stream or sys.stderr  # looked up per line, as structlog's PrintLogger
        raw: Any = getattr(out, "buffer", None)
        loop = _running_loop()
        if raw is None or loop is None:
            out.write(line)
            out.flush()
            return
        raw.write(line.encode())
        # one flush per turn: already scheduled for this buffer on this loop (a flush left
        # behind by a loop that stopped before running it does not count)
        if self._flush_due != (raw, loop):
            self._flush_due = (raw, loop)
            loop.call_soon(self._flush, raw)

    def _flush(self, raw: Any) -> None:
        self._flush_due = None
        # the stream was closed, or its reader went away
        with contextlib.suppress(OSError, ValueError):
            raw.flush()

    def _timestamp(self) -> str:
        """ISO 8601 UTC with microseconds and ``Z``; the date and time part is rendered once
        per second."""
        second, micros = divmod(time.time_ns() // 1000, 1_000_000)
        if second != self._second:
            self._second = second
            self._stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._stamp}.{micros:06d}Z"


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


#: keys of the access line itself (a bound context key of the same name is not repeated)
_ACCESS_KEYS = frozenset({"method", "route", "status", "durationMs", "event", "level", "timestamp"})
_MASK_JSON = _quote(_MASK)
#: per context variable, what the access line writes before its value: ``, "key": `` (``*``
#: before it when the value is masked), or "" when the line leaves the variable out (not
#: bound with ``bind_contextvars``, or one of the line's own keys); the context's variables
#: are few and long-lived (structlog keeps one per key for the process's life), and at most
#: ``_MAX_BOUND_KEYS`` are kept here
_BOUND_KEYS: dict[contextvars.ContextVar[Any], str] = {}
_MAX_BOUND_KEYS = 4096


def _bound_key(name: str) -> str:
    if not name.startswith(STRUCTLOG_KEY_PREFIX):
        return ""
    key = name[len(STRUCTLOG_KEY_PREFIX) :]
    if key in _ACCESS_KEYS:  # the line's own keys win, as in structlog's merge
        return ""
    return ("*" if _is_secret_key(key) else "") + f", {_quote(key)}: "


#: the access line of the configuration made last (``access_log``)
_ACCESS = AccessLog(json=False, stream=None)


def access_log() -> AccessLog:
    """The access-line writer of the current logging configuration."""
    return _ACCESS


def enabled_for(level: int) -> bool:
    """Whether a line at ``level`` is written (lets a hot path skip building its fields)."""
    return level >= _LEVEL


def configure_logging(*, json: bool, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Configure structlog for the process (may be called again, e.g. by each app).

    Loggers are not cached on first use, so a logger created at import time follows the
    latest configuration (the CLI configures logging before the server reconfigures it).
    """
    global _LEVEL, _ACCESS
    lvl = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    _LEVEL = lvl
    _ACCESS = AccessLog(json=json, stream=stream)
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
