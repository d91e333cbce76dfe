"""What the sync and async clients share around httpx, written once: settings, the
connection-failure error, error mapping of an answer, request bodies and parameters.

Nothing here does I/O (no client, no await): ``_async/client.py`` does, and
``_sync/client.py`` is generated from it (``scripts/unasync_client.py``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import httpx

from gasworks.client._wire import to_error
from gasworks.errors import ConfigurationError, ServerUnreachable

DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=10.0)

#: the REST routes' largest page
PAGE = 500


def settings(base_url: str | None, api_key: str | None) -> tuple[str, str]:
    url = base_url or os.environ.get("GASWORKS_URL") or "http://127.0.0.1:8000"
    key = api_key or os.environ.get("GASWORKS_API_KEY")
    if not key:
        raise ConfigurationError(
            "No gasworks API key: pass api_key= or set GASWORKS_API_KEY.",
            details={"setting": "GASWORKS_API_KEY"},
        )
    return url.rstrip("/"), key


def unreachable(request: httpx.Request, exc: httpx.TransportError) -> ServerUnreachable:
    base = f"{request.url.scheme}://{request.url.netloc.decode()}"
    what = "did not answer in time" if isinstance(exc, httpx.TimeoutException) else "is unreachable"
    return ServerUnreachable(
        f"The gasworks server at {base} {what} ({type(exc).__name__}). Is it running? "
        "Check --server / GASWORKS_URL.",
        details={"server": base, "error": type(exc).__name__},
    )


def check(response: httpx.Response) -> None:
    """An error answer (its body already read) raised as its ``gasworks.errors`` class."""
    if response.status_code >= 400:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        raise to_error(response.status_code, payload)


def upload_files(
    stack: contextlib.ExitStack, paths: Sequence[str | os.PathLike[str]]
) -> list[tuple[str, tuple[str, IO[bytes]]]]:
    """The multipart ``files`` of an upload, opened for httpx to stream from disk (closed
    by ``stack``)."""
    return [("files", (Path(p).name, stack.enter_context(open(p, "rb")))) for p in paths]


def only_set(**params: Any) -> dict[str, Any]:
    """The query parameters that are given (not None, not empty)."""
    return {k: v for k, v in params.items() if v is not None and v != ""}


def run_body(
    inputs: dict[str, Any], conversation_id: str | None, version: int | None, *, stream: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {"input": inputs, "stream": stream}
    if conversation_id is not None:
        body["conversationId"] = conversation_id
    if version is not None:
        body["version"] = version
    return body


def scope_params(scope: dict[str, Any]) -> dict[str, Any]:
    params = {"model": scope["model"], "tenantScoped": bool(scope.get("tenantScoped", True))}
    if scope.get("workflowId"):
        params["workflowId"] = scope["workflowId"]
    return params


def model_entry(data: dict[str, Any]) -> dict[str, Any]:
    """An /api/models item without the API-only fields."""
    return {k: v for k, v in data.items() if k not in ("source", "overridden")}
