"""The OpenAI-compatible gateway: ``POST /v1/chat/completions``, ``POST /v1/embeddings`` and
``GET /v1/models``.

Any OpenAI client works against it with a gasworks API key as its ``api_key``. Errors on
``/v1/`` use OpenAI's error shape (``{"error": {"message", "type", "param", "code"}}``) with
the gasworks code in ``code``. A stream's errors before its first chunk get a proper HTTP
status; after it, an ``error`` event ends the stream (the official clients raise on it).
Every authenticated key may call models: spending is bounded by budgets, not by role.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import JSONResponse
from starlette.types import Send

from gasworks.api.deps import ContextDep, RuntimeDep
from gasworks.api.drain import shutting_down
from gasworks.api.openai_wire import (
    ChatCompletionRequest,
    ChunkRenderer,
    EmbeddingsRequest,
    PromptScope,
    error_body,
    render_completion,
    render_embeddings,
    stream_error_event,
)
from gasworks.api.routing import router as guarded_router
from gasworks.api.sse import SSE_HEADERS, EventStreamResponse
from gasworks.errors import GasworksError, InternalError
from gasworks.llm.gateway import aclose_stream
from gasworks.llm.runtime import get_gateway, get_registry
from gasworks.modelcard import ModelEntry
from gasworks.modeltypes import CallScope, ChatRequest, StreamChunk
from gasworks.observability.logging import get_logger
from gasworks.observability.request_id import current_request_id
from gasworks.runtime import Runtime

router = guarded_router(prefix="/v1", tags=["openai-compatible"])
log = get_logger("gasworks.api.openai")


def render_openai_error(exc: GasworksError) -> JSONResponse:
    # the official SDKs read x-should-retry before the status: no retries of what cannot heal
    # (a missing package, a misconfiguration, an exhausted budget)
    headers = {"x-should-retry": "true" if exc.retryable else "false"}
    retry_after = exc.details.get("retryAfterSeconds")
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, int(retry_after)))
    return JSONResponse(error_body(exc), status_code=exc.status, headers=headers)


def _model_card(e: ModelEntry, default_embedding: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "kind": e.kind.value,
        "contextWindow": e.context_window,
        "maxOutputTokens": e.max_output_tokens,
        "capabilities": e.capabilities.model_dump(),
        "deprecationDate": e.deprecation_date.isoformat() if e.deprecation_date else None,
    }
    if e.embedding is not None:
        # what a client needs to size a vector index and its chunks
        meta["embedding"] = e.embedding.model_dump(by_alias=True, mode="json")
        meta["defaultEmbeddingModel"] = e.id == default_embedding
    return {
        "id": e.id,
        "object": "model",
        "created": 0,
        "owned_by": e.provider.value,
        "gasworks": meta,
    }


@router.get("/models", summary="Models callable through this gateway")
async def list_models(ctx: ContextDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Every model a route of this server can call: chat models (``/v1/chat/completions``)
    and embedding models (``/v1/embeddings``); ``gasworks.kind`` tells them apart."""
    registry = get_registry(runtime)
    default = registry.default_embedding_model
    return {"object": "list", "data": [_model_card(e, default) for e in registry.entries()]}


@router.get("/models/{model_id:path}", summary="One model")
async def get_model(model_id: str, ctx: ContextDep, runtime: RuntimeDep) -> dict[str, Any]:
    registry = get_registry(runtime)
    return _model_card(registry.get(model_id), registry.default_embedding_model)


@router.post(
    "/chat/completions",
    summary="Create a chat completion (OpenAI-compatible); `stream: true` answers with "
    "server-sent events",
    responses={200: {"content": {"application/json": {}, "text/event-stream": {}}}},
)
async def chat_completions(
    body: ChatCompletionRequest, ctx: ContextDep, runtime: RuntimeDep
) -> Any:
    gateway = get_gateway(runtime)
    req = body.to_chat_request()
    scope = CallScope(
        tenant_id=ctx.tenant_id, api_key_id=ctx.api_key_id, request_id=current_request_id()
    )
    used: dict[str, Any] | None = None
    headers = dict(SSE_HEADERS) if body.stream else {}
    if body.prompt_scope is not None:
        used = await _apply_prompt_scope(runtime, scope, req, body.prompt_scope)
        headers["X-Gasworks-Prompt-Level"] = used["level"]
        headers["X-Gasworks-Prompt-Version"] = used["versionId"] or "neutral"
    if not body.stream:
        out = render_completion(await gateway.chat(scope, req))
        if used is not None:
            out["gasworks"]["prompt"] = used
        return JSONResponse(out, headers=headers)
    chunks = gateway.stream(scope, req).__aiter__()
    # pull the first chunk now: failures before any output get a real HTTP status
    first = await chunks.__anext__()
    include_usage = body.stream_options.include_usage if body.stream_options else False
    # the gateway names the answering model (and whether it is the demo) on the first chunk
    renderer = ChunkRenderer(first.model or "", include_usage, first.demo)
    return ChatCompletionStream(renderer, first, chunks, headers)


@router.post("/embeddings", summary="Create embeddings (OpenAI-compatible)")
async def embeddings(body: EmbeddingsRequest, ctx: ContextDep, runtime: RuntimeDep) -> Any:
    """One vector per input through ``Gateway.embed`` (breakers, budgets, ledger). Without
    ``model``, the deployment's default embedding model (``GASWORKS_EMBEDDING_MODEL``)."""
    scope = CallScope(
        tenant_id=ctx.tenant_id, api_key_id=ctx.api_key_id, request_id=current_request_id()
    )
    result = await get_gateway(runtime).embed(scope, body.to_embed_request())
    return JSONResponse(render_embeddings(result, body.encoding_format))


async def _apply_prompt_scope(
    runtime: Runtime, scope: CallScope, req: ChatRequest, ps: PromptScope
) -> dict[str, Any]:
    """The ``prompt_scope`` extension: the deployed prompt of (tenant, workflow, model) around
    the client's messages. Returns which prompt answers (level, version, source...)."""
    from gasworks.prompts.chat import apply_prompt
    from gasworks.prompts.service import prompt_service, prompt_used

    scope.workflow_id, scope.conversation_id = ps.workflow_id, ps.conversation_id
    resolver = prompt_service(runtime).resolver
    prepared = await apply_prompt(resolver, scope, req, values=ps.variables, strict=ps.strict)
    return prompt_used(prepared).model_dump(mode="json", by_alias=True)  # camelCase


class ChatCompletionStream(EventStreamResponse):
    """The SSE answer of a streamed chat completion.

    Renders and sends each chunk in the response's own loop, with no generator between the
    gateway's stream and the socket. An error after the first chunk ends the stream with an
    ``error`` event (the official clients raise on it); the gateway's stream is closed on every
    way out, so its accounting runs at once.
    """

    def __init__(
        self,
        renderer: ChunkRenderer,
        first: StreamChunk,
        chunks: AsyncIterator[StreamChunk],
        headers: dict[str, str],
    ) -> None:
        super().__init__((), headers=headers)
        self.renderer, self.first, self.chunks = renderer, first, chunks

    def final_event(self) -> bytes:
        return stream_error_event(shutting_down()).encode()  # OpenAI's clients raise on it

    async def stream_response(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        render, chunks = self.renderer.chunk, self.chunks
        try:
            out, failed = render(self.first), False
            while True:
                await send({"type": "http.response.body", "body": out.encode(), "more_body": True})
                if failed:
                    break
                try:
                    out = render(await chunks.__anext__())
                except StopAsyncIteration:
                    break
                except GasworksError as exc:
                    out, failed = stream_error_event(exc), True
                except Exception:
                    log.exception("stream.crashed")
                    crash = InternalError("The stream failed; the error has been logged.")
                    out, failed = stream_error_event(crash), True
        finally:
            await aclose_stream(chunks)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
