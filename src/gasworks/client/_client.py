"""The gasworks Python SDK: chat, stream, embed and models, sync (``Gasworks``) and async
(``AsyncGasworks``), over httpx. Errors raise the same exception classes as the server uses
(``gasworks.errors``), chosen by the stable error code.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import httpx

from gasworks.client._wire import (
    MessagesArg,
    SSEDecoder,
    chat_body,
    embed_body,
    parse_completion,
    parse_embeddings,
    to_error,
)
from gasworks.errors import ConfigurationError, ServerUnreachable
from gasworks.modelcard import ModelEntry
from gasworks.modeltypes import ChatResult, EmbedPurpose, EmbedResult, StreamChunk
from gasworks.searchtypes import SearchRequest, SearchResponse

DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=10.0)


def _settings(base_url: str | None, api_key: str | None) -> tuple[str, str]:
    url = base_url or os.environ.get("GASWORKS_URL") or "http://127.0.0.1:8000"
    key = api_key or os.environ.get("GASWORKS_API_KEY")
    if not key:
        raise ConfigurationError(
            "No gasworks API key: pass api_key= or set GASWORKS_API_KEY.",
            details={"setting": "GASWORKS_API_KEY"},
        )
    return url.rstrip("/"), key


def _unreachable(request: httpx.Request, exc: httpx.TransportError) -> ServerUnreachable:
    base = f"{request.url.scheme}://{request.url.netloc.decode()}"
    what = "did not answer in time" if isinstance(exc, httpx.TimeoutException) else "is unreachable"
    return ServerUnreachable(
        f"The gasworks server at {base} {what} ({type(exc).__name__}). Is it running? "
        "Check --server / GASWORKS_URL.",
        details={"server": base, "error": type(exc).__name__},
    )


class _Transport(httpx.BaseTransport):
    """Raises ``SERVER_UNREACHABLE`` (a ``gasworks.errors`` class) for a connection failure."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return self.inner.handle_request(request)
        except httpx.TransportError as exc:
            raise _unreachable(request, exc) from exc

    def close(self) -> None:
        self.inner.close()


class _AsyncTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self.inner.handle_async_request(request)
        except httpx.TransportError as exc:
            raise _unreachable(request, exc) from exc

    async def aclose(self) -> None:
        await self.inner.aclose()


def _check(response: httpx.Response) -> None:
    if response.status_code >= 400:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        raise to_error(response.status_code, payload)


class Gasworks:
    """Synchronous client. ``base_url`` defaults to ``GASWORKS_URL``, the key to
    ``GASWORKS_API_KEY``."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        url, key = _settings(base_url, api_key)
        self._http = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout,
            transport=_Transport(transport or httpx.HTTPTransport()),
        )

    def search(self, query: str, **params: Any) -> SearchResponse:
        """Search what this key may see. ``params``: k, mode, min_score, documents,
        collections, metadata, model (see ``POST /api/search``)."""
        body = SearchRequest(query=query, **params).model_dump(by_alias=True, exclude_none=True)
        r = self._http.post("/api/search", json=body)
        _check(r)
        return SearchResponse.model_validate(r.json())

    def chat(
        self,
        messages: MessagesArg,
        *,
        model: str | None = None,
        system: str | None = None,
        **params: Any,
    ) -> ChatResult:
        """One complete answer. ``params``: any /v1/chat/completions field (max_tokens, ...)."""
        body = chat_body(messages, model, system, False, params)
        r = self._http.post("/v1/chat/completions", json=body)
        _check(r)
        return parse_completion(r.json())

    def stream(
        self,
        messages: MessagesArg,
        *,
        model: str | None = None,
        system: str | None = None,
        **params: Any,
    ) -> Iterator[StreamChunk]:
        """Chunks as they arrive; the last one has finish reason, usage, model and cost."""
        body = chat_body(messages, model, system, True, params)
        with self._http.stream("POST", "/v1/chat/completions", json=body) as r:
            if r.status_code >= 400:
                r.read()
                _check(r)
            decoder = SSEDecoder()
            for line in r.iter_lines():
                yield from decoder.line(line)

    def embed(
        self,
        inputs: str | Sequence[str],
        *,
        model: str | None = None,
        dimensions: int | None = None,
        purpose: EmbedPurpose = "document",
    ) -> EmbedResult:
        """One vector per input (the deployment's default embedding model when no model)."""
        r = self._http.post("/v1/embeddings", json=embed_body(inputs, model, dimensions, purpose))
        _check(r)
        return parse_embeddings(r.json())

    def models(self, *, include_disabled: bool = False) -> list[ModelEntry]:
        r = self._http.get("/api/models", params={"includeDisabled": include_disabled})
        _check(r)
        return [ModelEntry.model_validate(_entry(m)) for m in r.json()]

    def model(self, model_id: str) -> ModelEntry:
        r = self._http.get(f"/api/models/{model_id}")
        _check(r)
        return ModelEntry.model_validate(_entry(r.json()))

    # -- documents ------------------------------------------------------------------------

    def upload_documents(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        collections: Sequence[str] = (),
        new: bool = False,
    ) -> list[dict[str, Any]]:
        """Upload files (streamed from disk); one ``{"document", "duplicate"}`` per file."""
        with contextlib.ExitStack() as stack:
            files = [("files", (Path(p).name, stack.enter_context(open(p, "rb")))) for p in paths]
            data = {"collection": list(collections), "new": str(new).lower()}
            r = self._http.post("/api/documents", files=files, data=data)
        _check(r)
        return list(r.json()["documents"])

    def document(self, document_id: str) -> dict[str, Any]:
        """A document with its status per stage, attempts and last error."""
        r = self._http.get(f"/api/documents/{document_id}")
        _check(r)
        return dict(r.json())

    def documents(
        self, *, collection: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if collection:
            params["collection"] = collection
        r = self._http.get("/api/documents", params=params)
        _check(r)
        return list(r.json())

    def delete_document(self, document_id: str) -> None:
        _check(self._http.delete(f"/api/documents/{document_id}"))

    def create_collection(self, name: str, **options: Any) -> dict[str, Any]:
        """``options``: chunkTokens, chunkOverlap, description."""
        r = self._http.post("/api/collections", json={"name": name, **options})
        _check(r)
        return dict(r.json())

    def grant(self, collection: str, kind: str, subject: str | None = None) -> dict[str, Any]:
        r = self._http.post(
            f"/api/collections/{collection}/grants", json={"kind": kind, "subject": subject}
        )
        _check(r)
        return dict(r.json())

    def dead_letters(self, *, stage: str | None = None) -> list[dict[str, Any]]:
        r = self._http.get("/api/document-dead-letters", params={"stage": stage} if stage else {})
        _check(r)
        return list(r.json())

    def replay_dead_letters(self, *, stage: str | None = None) -> int:
        r = self._http.post(
            "/api/document-dead-letters/replay", params={"stage": stage} if stage else {}
        )
        _check(r)
        return int(r.json()["count"])

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Gasworks:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncGasworks:
    """Asynchronous client, same methods as ``Gasworks``."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        url, key = _settings(base_url, api_key)
        self._http = httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout,
            transport=_AsyncTransport(transport or httpx.AsyncHTTPTransport()),
        )

    async def search(self, query: str, **params: Any) -> SearchResponse:
        """Search what this key may see. ``params``: k, mode, min_score, documents,
        collections, metadata, model (see ``POST /api/search``)."""
        body = SearchRequest(query=query, **params).model_dump(by_alias=True, exclude_none=True)
        r = await self._http.post("/api/search", json=body)
        _check(r)
        return SearchResponse.model_validate(r.json())

    async def chat(
        self,
        messages: MessagesArg,
        *,
        model: str | None = None,
        system: str | None = None,
        **params: Any,
    ) -> ChatResult:
        body = chat_body(messages, model, system, False, params)
        r = await self._http.post("/v1/chat/completions", json=body)
        _check(r)
        return parse_completion(r.json())

    async def stream(
        self,
        messages: MessagesArg,
        *,
        model: str | None = None,
        system: str | None = None,
        **params: Any,
    ) -> AsyncIterator[StreamChunk]:
        body = chat_body(messages, model, system, True, params)
        async with self._http.stream("POST", "/v1/chat/completions", json=body) as r:
            if r.status_code >= 400:
                await r.aread()
                _check(r)
            decoder = SSEDecoder()
            async for line in r.aiter_lines():
                for chunk in decoder.line(line):
                    yield chunk

    async def embed(
        self,
        inputs: str | Sequence[str],
        *,
        model: str | None = None,
        dimensions: int | None = None,
        purpose: EmbedPurpose = "document",
    ) -> EmbedResult:
        body = embed_body(inputs, model, dimensions, purpose)
        r = await self._http.post("/v1/embeddings", json=body)
        _check(r)
        return parse_embeddings(r.json())

    async def models(self, *, include_disabled: bool = False) -> list[ModelEntry]:
        r = await self._http.get("/api/models", params={"includeDisabled": include_disabled})
        _check(r)
        return [ModelEntry.model_validate(_entry(m)) for m in r.json()]

    async def model(self, model_id: str) -> ModelEntry:
        r = await self._http.get(f"/api/models/{model_id}")
        _check(r)
        return ModelEntry.model_validate(_entry(r.json()))

    # -- documents ------------------------------------------------------------------------

    async def upload_documents(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        collections: Sequence[str] = (),
        new: bool = False,
    ) -> list[dict[str, Any]]:
        """Upload files; one ``{"document", "duplicate"}`` per file."""
        with contextlib.ExitStack() as stack:
            files = [
                ("files", (Path(p).name, stack.enter_context(open(p, "rb"))))  # noqa: ASYNC230
                for p in paths
            ]
            data = {"collection": list(collections), "new": str(new).lower()}
            r = await self._http.post("/api/documents", files=files, data=data)
        _check(r)
        return list(r.json()["documents"])

    async def document(self, document_id: str) -> dict[str, Any]:
        r = await self._http.get(f"/api/documents/{document_id}")
        _check(r)
        return dict(r.json())

    async def delete_document(self, document_id: str) -> None:
        _check(await self._http.delete(f"/api/documents/{document_id}"))

    async def workflows(self) -> list[dict[str, Any]]:
        """The workflows this key may run (``GET /api/workflows``)."""
        r = await self._http.get("/api/workflows", params={"limit": 500})
        _check(r)
        out: list[dict[str, Any]] = r.json()
        return out

    async def usage(
        self,
        *,
        group_by: list[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        model: str | None = None,
        workflow_id: str | None = None,
        api_key_id: str | None = None,
    ) -> dict[str, Any]:
        """Requests, attempts, tokens and cost of the key's tenant (``GET /api/usage``)."""
        params: dict[str, Any] = {"groupBy": group_by or [], "limit": 500}
        for name, value in (
            ("since", since),
            ("until", until),
            ("model", model),
            ("workflowId", workflow_id),
            ("apiKeyId", api_key_id),
        ):
            if value is not None:
                params[name] = value
        r = await self._http.get("/api/usage", params=params)
        _check(r)
        out: dict[str, Any] = r.json()
        return out

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One REST call; the decoded JSON body (``None`` for 204), or the server's error
        raised as its ``gasworks.errors`` class."""
        r = await self._http.request(method, path, **kwargs)
        _check(r)
        return r.json() if r.content else None  # 204, or 202 with no body

    # --- tenants and keys (``/api/tenants``, ``/api/keys``) --------------------------------

    async def tenants(self) -> list[dict[str, Any]]:
        """The tenants the key can see (its own; every tenant for a platform admin)."""
        out: list[dict[str, Any]] = await self._call("GET", "/api/tenants", params={"limit": 500})
        return out

    async def create_tenant(self, name: str, display_name: str | None = None) -> dict[str, Any]:
        """Create a tenant (a platform-admin key)."""
        body = {"name": name, "displayName": display_name}
        out: dict[str, Any] = await self._call("POST", "/api/tenants", json=body)
        return out

    async def keys(self) -> list[dict[str, Any]]:
        """The API keys of the key's tenant (never their secrets)."""
        out: list[dict[str, Any]] = await self._call("GET", "/api/keys", params={"limit": 500})
        return out

    async def create_key(
        self, *, name: str = "api key", role: str = "viewer", expires_at: str | None = None
    ) -> dict[str, Any]:
        """Create an API key in the key's tenant; the secret is in ``key``, shown once."""
        body: dict[str, Any] = {"name": name, "role": role}
        if expires_at is not None:
            body["expiresAt"] = expires_at
        out: dict[str, Any] = await self._call("POST", "/api/keys", json=body)
        return out

    async def revoke_key(self, key_id: str) -> dict[str, Any]:
        """Revoke an API key of the key's tenant."""
        out: dict[str, Any] = await self._call("POST", f"/api/keys/{key_id}/revoke")
        return out

    # --- breakers and budgets (``/api/breakers``, ``/api/budgets``) ---------------------------

    async def breakers(self) -> list[dict[str, Any]]:
        """Every circuit breaker with its state and window statistics."""
        out: list[dict[str, Any]] = await self._call("GET", "/api/breakers", params={"limit": 500})
        return out

    async def breaker_events(
        self, breaker: str | None = None, *, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Breaker transitions, newest first (the audit trail)."""
        params: dict[str, Any] = {"limit": limit}
        if breaker is not None:
            params["breaker"] = breaker
        out: list[dict[str, Any]] = await self._call("GET", "/api/breakers/events", params=params)
        return out

    async def breaker_action(
        self, breaker: str, action: Literal["trip", "reset", "disable"], reason: str
    ) -> dict[str, Any]:
        """Trip, reset or disable a breaker (a platform-admin key; audited with ``reason``)."""
        out: dict[str, Any] = await self._call(
            "POST", f"/api/breakers/{breaker}/{action}", json={"reason": reason}
        )
        return out

    async def budgets(self, *, api_key_id: str | None = None) -> list[dict[str, Any]]:
        """The tenant's spend limits with the current period's spend."""
        params: dict[str, Any] = {"limit": 500}
        if api_key_id is not None:
            params["apiKeyId"] = api_key_id
        out: list[dict[str, Any]] = await self._call("GET", "/api/budgets", params=params)
        return out

    async def set_budget(
        self,
        period: Literal["day", "month"],
        *,
        api_key_id: str | None = None,
        cost_limit: Decimal | None = None,
        token_limit: int | None = None,
    ) -> dict[str, Any] | None:
        """Set a spend limit of the tenant (or of one key); no limit at all removes it (None)."""
        body = {
            "period": period,
            "apiKeyId": api_key_id,
            "costLimit": None if cost_limit is None else str(cost_limit),
            "tokenLimit": token_limit,
        }
        out: dict[str, Any] | None = await self._call("PUT", "/api/budgets", json=body)
        return out

    # --- workflows (``/api/workflows``) -------------------------------------------------------

    async def validate_workflow(self, document: dict[str, Any]) -> dict[str, Any]:
        """Every problem of a workflow document, nothing stored
        (``POST /api/workflows/validate``): ``{"valid": bool, "issues": [...]}``."""
        out: dict[str, Any] = await self._call("POST", "/api/workflows/validate", json=document)
        return out

    async def publish_workflow(self, document: dict[str, Any]) -> dict[str, Any]:
        """Publish a new version (``POST /api/workflows``); an invalid document raises
        ``WorkflowInvalid`` with every issue in its details."""
        out: dict[str, Any] = await self._call("POST", "/api/workflows", json=document)
        return out

    async def share_workflow(
        self, workflow: str, kind: str = "tenant", subject: str | None = None
    ) -> dict[str, Any]:
        """Share a workflow with the whole tenant, a role or a user
        (``POST /api/workflows/{id}/shares``)."""
        body: dict[str, Any] = {"kind": kind}
        if subject is not None:
            body["subject"] = subject
        out: dict[str, Any] = await self._call(
            "POST", f"/api/workflows/{workflow}/shares", json=body
        )
        return out

    async def workflow_graph(self, workflow: str, version: int | None = None) -> dict[str, Any]:
        """A version as a Mermaid flowchart: ``{"workflow", "version", "mermaid"}``."""
        params = {"version": version} if version is not None else {}
        out: dict[str, Any] = await self._call(
            "GET", f"/api/workflows/{workflow}/graph", params=params
        )
        return out

    async def run_workflow(
        self,
        workflow: str,
        inputs: dict[str, Any],
        *,
        conversation_id: str | None = None,
        version: int | None = None,
    ) -> dict[str, Any]:
        """Run a workflow to its end; the run (``POST /api/workflows/{id}/runs``)."""
        body = _run_body(inputs, conversation_id, version, stream=False)
        r = await self._http.post(f"/api/workflows/{workflow}/runs", json=body)
        _check(r)
        out: dict[str, Any] = r.json()
        return out

    async def stream_workflow(
        self,
        workflow: str,
        inputs: dict[str, Any],
        *,
        conversation_id: str | None = None,
        version: int | None = None,
    ) -> AsyncIterator[tuple[int, str, dict[str, Any]]]:
        """A run's events as they happen: ``(id, event, data)``; the last is ``run.finished``."""
        body = _run_body(inputs, conversation_id, version, stream=True)
        async with self._http.stream("POST", f"/api/workflows/{workflow}/runs", json=body) as r:
            if r.status_code >= 400:
                await r.aread()
                _check(r)
            event: dict[str, str] = {}
            async for line in r.aiter_lines():
                if line:
                    field, _, value = line.partition(":")
                    event[field] = value.removeprefix(" ")
                elif "data" in event:
                    yield (
                        int(event.get("id") or 0),
                        event.get("event", ""),
                        json.loads(event["data"]),
                    )
                    event = {}
                else:
                    event = {}

    async def _pages(self, path: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Every item of a paged list route (``?limit=&offset=``), page after page."""
        out: list[Any] = []
        while True:
            page: list[Any] = await self._call(
                "GET", path, params={**(params or {}), "limit": _PAGE, "offset": len(out)}
            )
            out.extend(page)
            if len(page) < _PAGE:
                return out

    async def me(self) -> dict[str, Any]:
        """Who the key is: tenant id and name, principal, role, platform admin (``/api/me``)."""
        out: dict[str, Any] = await self._call("GET", "/api/me")
        return out

    # --- models and the ledger (``/api/models``, ``/api/usage/calls``) -----------------------

    async def set_model_enabled(self, model_id: str, enabled: bool) -> ModelEntry:
        """Enable or disable a model (a platform-admin key)."""
        out = await self._call("PUT", f"/api/models/{model_id}/enabled", json={"enabled": enabled})
        return ModelEntry.model_validate(_entry(out))

    async def usage_calls(
        self, *, limit: int = 50, model: str | None = None
    ) -> list[dict[str, Any]]:
        """The most recent model calls of the key's tenant, newest first."""
        params: dict[str, Any] = {"limit": limit}
        if model is not None:
            params["model"] = model
        out: list[dict[str, Any]] = await self._call("GET", "/api/usage/calls", params=params)
        return out

    # --- prompts (``/api/prompts``) -----------------------------------------------------------
    # ``scope``: ``{"model": ..., "workflowId": ..., "tenantScoped": bool}``

    async def create_prompt_version(
        self, name: str, content: dict[str, Any], message: str = ""
    ) -> dict[str, Any]:
        """Save a version; identical content returns the existing one (``created`` false)."""
        body = {"name": name, "content": content, "message": message}
        out: dict[str, Any] = await self._call("POST", "/api/prompts/versions", json=body)
        return out

    async def prompt_versions(
        self, *, name: str | None = None, include_archived: bool = False
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"includeArchived": include_archived}
        if name is not None:
            params["name"] = name
        return await self._pages("/api/prompts/versions", params)

    async def prompt_version(self, version_id: str) -> dict[str, Any]:
        out: dict[str, Any] = await self._call("GET", f"/api/prompts/versions/{version_id}")
        return out

    async def archive_prompt_version(self, version_id: str) -> dict[str, Any]:
        out: dict[str, Any] = await self._call(
            "POST", f"/api/prompts/versions/{version_id}/archive"
        )
        return out

    async def prompt_diff(self, from_id: str, to_id: str) -> dict[str, Any]:
        out: dict[str, Any] = await self._call(
            "GET", "/api/prompts/diff", params={"from": from_id, "to": to_id}
        )
        return out

    async def prompt_pointer(self, scope: dict[str, Any]) -> dict[str, Any]:
        """The pointer of one scope (``PromptPointerNotFound`` when it has none)."""
        out: dict[str, Any] = await self._call(
            "GET", "/api/prompts/pointer", params=_scope_params(scope)
        )
        return out

    async def prompt_history(self, scope: dict[str, Any]) -> list[dict[str, Any]]:
        return await self._pages("/api/prompts/pointer/history", _scope_params(scope))

    async def prompt_pointer_action(
        self,
        action: Literal["move", "rollback", "canary", "canary/promote", "canary/abort"],
        body: dict[str, Any],
    ) -> dict[str, Any]:
        """A compare-and-set change of a pointer: ``body`` has ``scope``, ``expectedVersion``
        and, as the action needs, ``versionId``, ``percent``, ``reason``."""
        out: dict[str, Any] = await self._call("POST", f"/api/prompts/pointer/{action}", json=body)
        return out

    async def prompt_dead_letters(self, *, status: str | None = None) -> list[dict[str, Any]]:
        return await self._pages("/api/prompts/dead-letters", {"status": status} if status else {})

    async def replay_prompt_dead_letter(
        self, dead_letter_id: str, *, rebase: bool = False
    ) -> dict[str, Any]:
        out: dict[str, Any] = await self._call(
            "POST", f"/api/prompts/dead-letters/{dead_letter_id}/replay", json={"rebase": rebase}
        )
        return out

    async def resolve_prompt(self, body: dict[str, Any]) -> dict[str, Any]:
        """Which prompt a call would get, rendered (``POST /api/prompts/resolve``)."""
        out: dict[str, Any] = await self._call("POST", "/api/prompts/resolve", json=body)
        return out

    async def prompt_retention(
        self, *, days: int | None = None, dry_run: bool = False
    ) -> dict[str, Any]:
        """Delete archived versions past retention (a platform-admin key)."""
        params: dict[str, Any] = {"dryRun": dry_run}
        if days is not None:
            params["days"] = days
        out: dict[str, Any] = await self._call("POST", "/api/prompts/retention/run", params=params)
        return out

    async def stream_prompt_chat(
        self, body: dict[str, Any]
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """A prompted chat's events as they come: ``("prompt", ...)``, ``("delta", ...)``…,
        ``("done", ...)``; an ``error`` event is raised as its ``gasworks.errors`` class."""
        async with self._http.stream("POST", "/api/prompts/chat/stream", json=body) as r:
            if r.status_code >= 400:
                await r.aread()
                _check(r)
            async for kind, data in _sse_events(r.aiter_lines()):
                if kind == "error":
                    raise to_error(500, data)
                yield kind, data

    # --- documents, collections, dead letters (``/api/documents`` …) ------------------------

    async def documents(
        self, *, collection: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        """Every document the key may read (optionally of a collection, in a status)."""
        params = {k: v for k, v in (("collection", collection), ("status", status)) if v}
        return await self._pages("/api/documents", params)

    async def document_events(self, document_id: str) -> list[dict[str, Any]]:
        return await self._pages(f"/api/documents/{document_id}/events")

    async def collections(self) -> list[dict[str, Any]]:
        return await self._pages("/api/collections")

    async def create_collection(self, name: str, **options: Any) -> dict[str, Any]:
        """``options``: chunkTokens, chunkOverlap, description."""
        out: dict[str, Any] = await self._call(
            "POST", "/api/collections", json={"name": name, **options}
        )
        return out

    async def delete_collection(self, collection: str) -> None:
        await self._call("DELETE", f"/api/collections/{collection}")

    async def grant(self, collection: str, kind: str, subject: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = await self._call(
            "POST", f"/api/collections/{collection}/grants", json={"kind": kind, "subject": subject}
        )
        return out

    async def dead_letters(self, *, stage: str | None = None) -> list[dict[str, Any]]:
        """The ingestion pipeline's dead letters (of a stage)."""
        return await self._pages("/api/document-dead-letters", {"stage": stage} if stage else {})

    async def replay_dead_letters(
        self, ids: Sequence[str] = (), *, stage: str | None = None
    ) -> int:
        """Queue dead letters again: those named, or every one (of a stage)."""
        if ids:
            n = 0
            for i in ids:
                n += (await self._call("POST", f"/api/document-dead-letters/{i}/replay"))["count"]
            return n
        params = {"stage": stage} if stage else {}
        out = await self._call("POST", "/api/document-dead-letters/replay", params=params)
        return int(out["count"])

    async def discard_dead_letters(
        self, ids: Sequence[str] = (), *, stage: str | None = None
    ) -> int:
        """Drop dead letters: those named, or every one (of a stage)."""
        if ids:
            n = 0
            for i in ids:
                n += (await self._call("DELETE", f"/api/document-dead-letters/{i}"))["count"]
            return n
        params = {"stage": stage} if stage else {}
        out = await self._call("POST", "/api/document-dead-letters/discard", params=params)
        return int(out["count"])

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncGasworks:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _run_body(
    inputs: dict[str, Any], conversation_id: str | None, version: int | None, *, stream: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {"input": inputs, "stream": stream}
    if conversation_id is not None:
        body["conversationId"] = conversation_id
    if version is not None:
        body["version"] = version
    return body


_PAGE = 500  # the REST routes' largest page


def _scope_params(scope: dict[str, Any]) -> dict[str, Any]:
    params = {"model": scope["model"], "tenantScoped": bool(scope.get("tenantScoped", True))}
    if scope.get("workflowId"):
        params["workflowId"] = scope["workflowId"]
    return params


async def _sse_events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """``(event, data)`` of a server-sent event stream whose data are JSON objects."""
    event: dict[str, str] = {}
    async for line in lines:
        if line:
            field, _, value = line.partition(":")
            event[field] = value.removeprefix(" ")
        elif "data" in event:
            yield event.get("event", "message"), json.loads(event["data"])
            event = {}
        else:
            event = {}


def _entry(data: dict[str, Any]) -> dict[str, Any]:
    """An /api/models item without the API-only fields."""
    return {k: v for k, v in data.items() if k not in ("source", "overridden")}


__all__ = ["AsyncGasworks", "Gasworks"]
