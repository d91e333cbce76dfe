"""A fake OpenAI server for the official ``openai`` SDK: Chat Completions (HTTP + SSE) and
embeddings (``/v1/embeddings``, float or base64 vectors, ``dimensions``).

Also stands in for any OpenAI-compatible server (vLLM, Ollama, TEI, ...).
"""

from __future__ import annotations

import json
import time
from typing import Any

from gasworks.modeltypes import encode_base64_floats
from gasworks.testing.fake_vectors import fake_tokens, fake_vector
from gasworks.testing.server import FakeProviderServer, Fault, Request

#: native dimensions of the embedding models the fake knows (others: ``embedding_dimensions``)
EMBEDDING_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}

_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 429: "rate_limit_error"}


class FakeOpenAI(FakeProviderServer):
    #: dimensions of an embedding model not in ``EMBEDDING_DIMENSIONS``
    embedding_dimensions = 8

    async def handle(self, req: Request, fault: Fault | None) -> None:
        if req.method == "GET" and req.path.rstrip("/").endswith("/models"):
            await self.send_json(req, 200, {"object": "list", "data": []})
            return
        embeddings = req.path.rstrip("/").endswith("/embeddings")
        if not embeddings and not req.path.rstrip("/").endswith("/chat/completions"):
            await self.send_json(req, 404, {"error": {"message": "no such route"}})
            return
        if fault is not None and fault.kind == "status":
            headers = {}
            if fault.retry_after is not None:
                headers["retry-after"] = str(fault.retry_after)
            err = {
                "error": {
                    "message": fault.message,
                    "type": fault.error_type or _ERROR_TYPES.get(fault.status, "server_error"),
                    "param": None,
                    "code": None,
                }
            }
            await self.send_json(req, fault.status, err, headers)
            return
        body: dict[str, Any] = req.json_body or {}
        model = body.get("model", "fake")
        if embeddings:
            if fault is not None and fault.kind == "malformed":
                await self.send_bytes(req, 200, b'{"object": "list", "data": [', "application/json")
            else:
                await self.send_json(req, 200, self._embeddings(model, body))
            return
        if fault is not None and fault.kind == "malformed":
            if body.get("stream"):
                await self.send_events(
                    req, [b"data: {not json\n\n", b"data: [DONE]\n\n"], "text/event-stream", None
                )
            else:
                await self.send_bytes(req, 200, b'{"id": "x", "choices": [', "application/json")
            return
        if body.get("stream"):
            await self.send_events(req, self._events(model, body), "text/event-stream", fault)
        else:
            await self.send_json(req, 200, self._completion(model, body))

    def _embeddings(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        inputs = body.get("input", [])
        texts = [inputs] if isinstance(inputs, str) else [str(t) for t in inputs]
        dims = body.get("dimensions") or EMBEDDING_DIMENSIONS.get(model, self.embedding_dimensions)
        base64 = body.get("encoding_format") == "base64"
        data = []
        for i, t in enumerate(texts):
            v = fake_vector(t, int(dims))
            data.append(
                {
                    "object": "embedding",
                    "index": i,
                    "embedding": encode_base64_floats(v) if base64 else v,
                }
            )
        tokens = sum(fake_tokens(t) for t in texts)
        return {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def error_event(self, fault: Fault) -> bytes:
        err = {"message": fault.message, "type": fault.error_type or "server_error"}
        return f"data: {json.dumps({'error': err})}\n\n".encode()

    def _usage(self) -> dict[str, Any]:
        r = self.reply
        return {
            "prompt_tokens": r.input_tokens,
            "completion_tokens": r.output_tokens,
            "total_tokens": r.input_tokens + r.output_tokens,
            "prompt_tokens_details": {"cached_tokens": r.cached_input_tokens},
        }

    @staticmethod
    def logprobs(body: dict[str, Any], tokens: list[str]) -> dict[str, Any] | None:
        """As OpenAI: per output token when the request asks with ``logprobs: true``."""
        if not body.get("logprobs"):
            return None
        top = int(body.get("top_logprobs") or 0)

        def entry(token: str) -> dict[str, Any]:
            alt = {"token": token, "logprob": -0.25, "bytes": list(token.encode())}
            return {**alt, "top_logprobs": [alt] * top}

        return {"content": [entry(t) for t in tokens], "refusal": None}

    def _completion(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.reply
        message: dict[str, Any] = {"role": "assistant", "content": r.text}
        finish = r.finish_reason or "stop"
        if r.tool_calls:
            message["tool_calls"] = r.tool_calls
            finish = r.finish_reason or "tool_calls"
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": finish,
                    "logprobs": self.logprobs(body, self.words(r.text)),
                }
            ],
            "usage": self._usage(),
        }

    def _events(self, model: str, body: dict[str, Any]) -> list[bytes]:
        r = self.reply
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0}
        base["model"] = model

        def ev(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n".encode()

        out = [ev([{"index": 0, "delta": {"role": "assistant", "content": ""}}])]
        for w in self.words(r.text):
            choice: dict[str, Any] = {"index": 0, "delta": {"content": w}}
            lp = self.logprobs(body, [w])
            if lp is not None:
                choice["logprobs"] = lp
            out.append(ev([choice]))
        finish = r.finish_reason or "stop"
        if r.tool_calls:
            finish = r.finish_reason or "tool_calls"
            calls = [{"index": i, **c} for i, c in enumerate(r.tool_calls)]
            out.append(ev([{"index": 0, "delta": {"tool_calls": calls}}]))
        out.append(ev([{"index": 0, "delta": {}, "finish_reason": finish}]))
        wants_usage = (body.get("stream_options") or {}).get("include_usage")
        if wants_usage and r.stream_usage:
            out.append(ev([], usage=self._usage()))
        out.append(b"data: [DONE]\n\n")
        return out
