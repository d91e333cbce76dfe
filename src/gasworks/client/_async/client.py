"""The gasworks Python SDK over httpx: every method of the REST and ``/v1`` API the SDK
covers. Errors raise the same exception classes as the server uses (``gasworks.errors``),
chosen by the stable error code; a connection failure raises ``ServerUnreachable``.

Both clients have one source: ``_async/client.py`` (``AsyncGasworks``) is written by hand,
``_sync/client.py`` (``Gasworks``) is generated from it by ``scripts/unasync_client.py``
(``make sdk``; the unasync library drops ``async``/``await`` and renames the async names).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from os import PathLike
from types import TracebackType
from typing import Any, Literal

import httpx

from gasworks.client._http import (
    DEFAULT_TIMEOUT,
    PAGE,
    check,
    model_entry,
    only_set,
    run_body,
    scope_params,
    settings,
    unreachable,
    upload_files,
)
from gasworks.client._wire import (
    MessagesArg,
    ServerEvent,
    SSEDecoder,
    SSEEvents,
    chat_body,
    embed_body,
    parse_completion,
    parse_embeddings,
    to_error,
)
from gasworks.modelcard import ModelEntry
from gasworks.modeltypes import ChatResult, EmbedPurpose, EmbedResult, StreamChunk
from gasworks.searchtypes import SearchRequest, SearchResponse


class _AsyncTransport(httpx.AsyncBaseTransport):
    """Raises ``SERVER_UNREACHABLE`` (a ``gasworks.errors`` class) for a connection failure,
    never httpx's own exception."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self.inner.handle_async_request(request)
        except httpx.TransportError as exc:
            raise unreachable(request, exc) from exc

    async def aclose(self) -> None:
        await self.inner.aclose()


class AsyncGasworks:
    """The gasworks client. ``base_url`` defaults to ``GASWORKS_URL``, the key to
    ``GASWORKS_API_KEY``; use it as a context manager, or close it."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        url, key = settings(base_url, api_key)
        self._http = httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout,
            transport=_AsyncTransport(transport or httpx.AsyncHTTPTransport()),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncGasworks:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- the calls every method is made of --------------------------------------------------

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One REST call; the decoded JSON body (``None`` for 204), or the server's error
        raised as its ``gasworks.errors`` class."""
        r = await self._http.request(method, path, **kwargs)
        check(r)
        return r.json() if r.content else None  # 204, or 202 with no body

    async def _pages(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Any]:
        """The items of a paged list route (``?limit=&offset=``) from ``offset``: every one,
        or the first ``limit``; page after page."""
        out: list[Any] = []
        while limit is None or len(out) < limit:
            size = PAGE if limit is None else min(PAGE, limit - len(out))
            query = {**(params or {}), "limit": size, "offset": offset + len(out)}
            page: list[Any] = await self._call("GET", path, params=query)
            out.extend(page)
            if len(page) < size:
                break
        return out

    @asynccontextmanager
    async def _stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[httpx.Response]:
        """A streamed POST whose answer is a success (an error answer is raised)."""
        async with self._http.stream("POST", path, json=body) as r:
            if r.status_code >= 400:
                await r.aread()
                check(r)
            yield r

    async def _events(self, path: str, body: dict[str, Any]) -> AsyncIterator[ServerEvent]:
        """The server-sent events of a streamed POST, as they come."""
        async with self._stream(path, body) as r:
            parser = SSEEvents()
            async for line in r.aiter_lines():
                event = parser.line(line)
                if event is not None:
                    yield event

    # --- models: chat, stream, embed, search (``/v1``, ``/api/search``) -----------------------

    async def search(self, query: str, **params: Any) -> SearchResponse:
        """Search what this key may see. ``params``: k, mode, min_score, documents,
        collections, metadata, model (see ``POST /api/search``)."""
        body = SearchRequest(query=query, **params).model_dump(by_alias=True, exclude_none=True)
        return SearchResponse.model_validate(await self._call("POST", "/api/search", json=body))

    async def chat(
        self,
        messages: MessagesArg,
        *,
        model: str | None = None,
        system: str | None = None,
        **params: Any,
    ) -> ChatResult:
        """One complete answer. ``params``: any /v1/chat/completions field (max_tokens, ...)."""
        body = chat_body(messages, model, system, False, params)
        return parse_completion(await self._call("POST", "/v1/chat/completions", json=body))

    async def stream(
        self,
        messages: MessagesArg,
        *,
        model: str | None = None,
        system: str | None = None,
        **params: Any,
    ) -> AsyncIterator[StreamChunk]:
        """Chunks as they arrive; the last one has finish reason, usage, model and cost."""
        body = chat_body(messages, model, system, True, params)
        async with self._stream("/v1/chat/completions", body) as r:
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
        """One vector per input (the deployment's default embedding model when no model)."""
        body = embed_body(inputs, model, dimensions, purpose)
        return parse_embeddings(await self._call("POST", "/v1/embeddings", json=body))

    # --- models and the ledger (``/api/models``, ``/api/usage``) ----------------------------

    async def models(self, *, include_disabled: bool = False) -> list[ModelEntry]:
        params = {"includeDisabled": include_disabled}
        found = await self._call("GET", "/api/models", params=params)
        return [ModelEntry.model_validate(model_entry(m)) for m in found]

    async def model(self, model_id: str) -> ModelEntry:
        found = await self._call("GET", f"/api/models/{model_id}")
        return ModelEntry.model_validate(model_entry(found))

    async def set_model_enabled(self, model_id: str, enabled: bool) -> ModelEntry:
        """Enable or disable a model (a platform-admin key)."""
        out = await self._call("PUT", f"/api/models/{model_id}/enabled", json={"enabled": enabled})
        return ModelEntry.model_validate(model_entry(out))

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
        params = only_set(
            groupBy=group_by or [],
            limit=PAGE,
            since=since,
            until=until,
            model=model,
            workflowId=workflow_id,
            apiKeyId=api_key_id,
        )
        out: dict[str, Any] = await self._call("GET", "/api/usage", params=params)
        return out

    async def usage_calls(
        self, *, limit: int = 50, model: str | None = None
    ) -> list[dict[str, Any]]:
        """The most recent model calls of the key's tenant, newest first."""
        params = only_set(limit=limit, model=model)
        out: list[dict[str, Any]] = await self._call("GET", "/api/usage/calls", params=params)
        return out

    # --- tenants and keys (``/api/me``, ``/api/tenants``, ``/api/keys``) ----------------------

    async def me(self) -> dict[str, Any]:
        """Who the key is: tenant id and name, principal, role, platform admin (``/api/me``)."""
        out: dict[str, Any] = await self._call("GET", "/api/me")
        return out

    async def tenants(self) -> list[dict[str, Any]]:
        """The tenants the key can see (its own; every tenant for a platform admin)."""
        out: list[dict[str, Any]] = await self._call("GET", "/api/tenants", params={"limit": PAGE})
        return out

    async def create_tenant(self, name: str, display_name: str | None = None) -> dict[str, Any]:
        """Create a tenant (a platform-admin key)."""
        body = {"name": name, "displayName": display_name}
        out: dict[str, Any] = await self._call("POST", "/api/tenants", json=body)
        return out

    async def keys(self) -> list[dict[str, Any]]:
        """The API keys of the key's tenant (never their secrets)."""
        out: list[dict[str, Any]] = await self._call("GET", "/api/keys", params={"limit": PAGE})
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
        params = {"limit": PAGE}
        out: list[dict[str, Any]] = await self._call("GET", "/api/breakers", params=params)
        return out

    async def breaker_events(
        self, breaker: str | None = None, *, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Breaker transitions, newest first (the audit trail)."""
        params = only_set(limit=limit, breaker=breaker)
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
        params = only_set(limit=PAGE, apiKeyId=api_key_id)
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

    async def workflows(self) -> list[dict[str, Any]]:
        """The workflows this key may run (``GET /api/workflows``)."""
        params = {"limit": PAGE}
        out: list[dict[str, Any]] = await self._call("GET", "/api/workflows", params=params)
        return out

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
        params = only_set(version=version)
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
        body = run_body(inputs, conversation_id, version, stream=False)
        out: dict[str, Any] = await self._call("POST", f"/api/workflows/{workflow}/runs", json=body)
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
        body = run_body(inputs, conversation_id, version, stream=True)
        async for event in self._events(f"/api/workflows/{workflow}/runs", body):
            yield event

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
        params = only_set(includeArchived=include_archived, name=name)
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
            "GET", "/api/prompts/pointer", params=scope_params(scope)
        )
        return out

    async def prompt_history(self, scope: dict[str, Any]) -> list[dict[str, Any]]:
        return await self._pages("/api/prompts/pointer/history", scope_params(scope))

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
        return await self._pages("/api/prompts/dead-letters", only_set(status=status))

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
        params = only_set(dryRun=dry_run, days=days)
        out: dict[str, Any] = await self._call("POST", "/api/prompts/retention/run", params=params)
        return out

    async def stream_prompt_chat(
        self, body: dict[str, Any]
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """A prompted chat's events as they come: ``("prompt", ...)``, ``("delta", ...)``…,
        ``("done", ...)``; an ``error`` event is raised as its ``gasworks.errors`` class."""
        async for _, kind, data in self._events("/api/prompts/chat/stream", body):
            if kind == "error":
                raise to_error(500, data)
            yield kind, data

    # --- documents, collections, dead letters (``/api/documents`` …) ------------------------

    async def upload_documents(
        self,
        paths: Sequence[str | PathLike[str]],
        *,
        collections: Sequence[str] = (),
        new: bool = False,
    ) -> list[dict[str, Any]]:
        """Upload files (streamed from disk); one ``{"document", "duplicate"}`` per file."""
        data = {"collection": list(collections), "new": str(new).lower()}
        with contextlib.ExitStack() as stack:
            files = upload_files(stack, paths)
            out = await self._call("POST", "/api/documents", files=files, data=data)
        return list(out["documents"])

    async def document(self, document_id: str) -> dict[str, Any]:
        """A document with its status per stage, attempts and last error."""
        out: dict[str, Any] = await self._call("GET", f"/api/documents/{document_id}")
        return out

    async def documents(
        self,
        *,
        collection: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """The documents the key may read (optionally of a collection, in a status): every
        one, or ``limit`` of them, from ``offset``."""
        params = only_set(collection=collection, status=status)
        return await self._pages("/api/documents", params, limit=limit, offset=offset)

    async def delete_document(self, document_id: str) -> None:
        await self._call("DELETE", f"/api/documents/{document_id}")

    async def document_events(self, document_id: str) -> list[dict[str, Any]]:
        return await self._pages(f"/api/documents/{document_id}/events")

    async def document_ingestion(self) -> dict[str, Any]:
        """Readable documents by status and, for tenant admins, the pipeline queue per stage
        (``queue``: waiting, running, dead, oldestAgeSeconds; null for other roles)."""
        out: dict[str, Any] = await self._call("GET", "/api/documents/ingestion")
        return out

    async def document_audit(
        self, *, collection: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Collection and dead-letter events, newest first (tenant admins; a collection's
        owner with ``collection``): every one, or ``limit`` of them, from ``offset``."""
        params = only_set(collection=collection)
        return await self._pages("/api/documents/audit", params, limit=limit, offset=offset)

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
        return await self._pages("/api/document-dead-letters", only_set(stage=stage))

    async def replay_dead_letters(
        self, ids: Sequence[str] = (), *, stage: str | None = None
    ) -> int:
        """Queue dead letters again: those named, or every one (of a stage)."""
        each = [("POST", f"/api/document-dead-letters/{i}/replay") for i in ids]
        return await self._count(each, "/api/document-dead-letters/replay", stage)

    async def discard_dead_letters(
        self, ids: Sequence[str] = (), *, stage: str | None = None
    ) -> int:
        """Drop dead letters: those named, or every one (of a stage)."""
        each = [("DELETE", f"/api/document-dead-letters/{i}") for i in ids]
        return await self._count(each, "/api/document-dead-letters/discard", stage)

    async def _count(self, each: list[tuple[str, str]], every: str, stage: str | None) -> int:
        """The calls ``each`` (one a named dead letter), or the one call to ``every`` (of a
        stage) when none is named; how many dead letters they touched."""
        if not each:
            out = await self._call("POST", every, params=only_set(stage=stage))
            return int(out["count"])
        n = 0
        for method, path in each:
            n += int((await self._call(method, path))["count"])
        return n
