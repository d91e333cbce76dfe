"""The gasworks Python SDK: chat, stream, embed and models, sync (``Gasworks``) and async
(``AsyncGasworks``), over httpx. Errors raise the same exception classes as the server uses
(``gasworks.errors``), chosen by the stable error code.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Sequence
from types import TracebackType
from typing import Any

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
from gasworks.errors import ConfigurationError
from gasworks.modelcard import ModelEntry
from gasworks.modeltypes import ChatResult, EmbedPurpose, EmbedResult, StreamChunk

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
            transport=transport,
        )

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
            transport=transport,
        )

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

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncGasworks:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _entry(data: dict[str, Any]) -> dict[str, Any]:
    """An /api/models item without the API-only fields."""
    return {k: v for k, v in data.items() if k not in ("source", "overridden")}


__all__ = ["AsyncGasworks", "Gasworks"]
