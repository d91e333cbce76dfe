"""The id of the request being served (a context variable: one value per request's task).

Set by the HTTP middleware (``api.middleware``); read by the error envelope, the ledger and
the domains (a prompt call records it) without any of them importing the API layer.
"""

from __future__ import annotations

from contextvars import ContextVar

REQUEST_ID: ContextVar[str | None] = ContextVar("gasworks_request_id", default=None)


def current_request_id() -> str | None:
    return REQUEST_ID.get()
