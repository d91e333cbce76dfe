"""A fake Bedrock runtime (Converse over HTTP, ConverseStream as an AWS event stream, and
InvokeModel for the embedding models: Titan Text Embeddings v2, Cohere Embed v3).

Point boto3 at it with ``endpoint_url`` (``GASWORKS_BEDROCK_ENDPOINT_URL`` or the entry's
``base_url``) and any fake credentials: requests are signed as usual, the fake ignores it.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from gasworks.testing.eventstream import event, exception
from gasworks.testing.fake_vectors import fake_tokens, fake_vector
from gasworks.testing.server import FakeProviderServer, Fault, Request

_ERROR_CODES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


class FakeBedrock(FakeProviderServer):
    #: model ids seen in request paths (decoded), in order
    @property
    def model_ids(self) -> list[str]:
        return [
            unquote(r.path.split("/")[2]) for r in self.requests if r.path.startswith("/model/")
        ]

    async def handle(self, req: Request, fault: Fault | None) -> None:
        parts = req.path.split("?")[0].strip("/").split("/")
        if (
            len(parts) != 3
            or parts[0] != "model"
            or parts[2] not in ("converse", "converse-stream", "invoke")
        ):
            await self.send_json(req, 404, {"message": "no such route"})
            return
        streaming = parts[2] == "converse-stream"
        if fault is not None and fault.kind == "status":
            code = fault.error_type or _ERROR_CODES.get(fault.status, "InternalServerException")
            headers = {"x-amzn-errortype": f"{code}:http://internal.amazon.com/coral/"}
            if fault.retry_after is not None:
                headers["retry-after"] = str(fault.retry_after)
            await self.send_json(req, fault.status, {"message": fault.message}, headers)
            return
        if parts[2] == "invoke":
            if fault is not None and fault.kind == "malformed":
                await self.send_bytes(req, 200, b'{"embedding": [0.1, ', "application/json")
                return
            answer = self._invoke(unquote(parts[1]), json.loads(req.body or b"{}"))
            if answer is None:
                await self.send_json(
                    req,
                    400,
                    {"message": "The provided model is not supported"},
                    {"x-amzn-errortype": "ValidationException:"},
                )
            else:
                await self.send_json(req, 200, answer)
            return
        body = json.loads(req.body or b"{}")
        if fault is not None and fault.kind == "malformed":
            if streaming:
                bad = bytearray(event("messageStart", {"role": "assistant"}))
                bad[-1] ^= 0xFF  # broken message checksum
                await self.send_events(
                    req, [bytes(bad)], "application/vnd.amazon.eventstream", None
                )
            else:
                await self.send_bytes(req, 200, b'{"output": {"message": ', "application/json")
            return
        if streaming:
            events = self._events(body)
            await self.send_events(req, events, "application/vnd.amazon.eventstream", fault)
        else:
            await self.send_json(req, 200, self._response())

    @staticmethod
    def _invoke(model_id: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """InvokeModel of an embedding model, in its own request/response format."""
        if "titan-embed-text-v2" in model_id:
            text = str(body["inputText"])
            v = fake_vector(text, int(body.get("dimensions", 1024)))
            return {
                "embedding": v,
                "embeddingsByType": {"float": v},
                "inputTextTokenCount": fake_tokens(text),
            }
        if "cohere.embed" in model_id:
            texts = [str(t) for t in body["texts"]]
            # Cohere's vectors are not unit length
            vectors = [[x * 3 for x in fake_vector(t, 1024)] for t in texts]
            return {
                "id": "fake",
                "embeddings": vectors,
                "response_type": "embeddings_floats",
                "texts": texts,
            }
        return None

    def _stop_reason(self) -> str:
        r = self.reply
        return r.finish_reason or ("tool_use" if r.tool_calls else "end_turn")

    def _usage(self) -> dict[str, Any]:
        r = self.reply
        return {
            "inputTokens": r.input_tokens - r.cached_input_tokens - r.cache_write_input_tokens,
            "outputTokens": r.output_tokens,
            "totalTokens": r.input_tokens + r.output_tokens,
            "cacheReadInputTokens": r.cached_input_tokens,
            "cacheWriteInputTokens": r.cache_write_input_tokens,
        }

    def _tool_uses(self) -> list[dict[str, Any]]:
        out = []
        for c in self.reply.tool_calls or []:
            fn = c.get("function", {})
            out.append(
                {
                    "toolUseId": c.get("id", "tooluse_1"),
                    "name": fn.get("name"),
                    "input": json.loads(fn.get("arguments") or "{}"),
                }
            )
        return out

    def _response(self) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"text": self.reply.text}]
        content += [{"toolUse": t} for t in self._tool_uses()]
        return {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": self._stop_reason(),
            "usage": self._usage(),
            "metrics": {"latencyMs": 12},
        }

    def _events(self, body: dict[str, Any]) -> list[bytes]:
        out = [event("messageStart", {"role": "assistant"})]
        for w in self.words(self.reply.text):
            out.append(event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": w}}))
        out.append(event("contentBlockStop", {"contentBlockIndex": 0}))
        for i, t in enumerate(self._tool_uses(), start=1):
            start = {"toolUse": {"toolUseId": t["toolUseId"], "name": t["name"]}}
            out.append(event("contentBlockStart", {"contentBlockIndex": i, "start": start}))
            delta = {"toolUse": {"input": json.dumps(t["input"])}}
            out.append(event("contentBlockDelta", {"contentBlockIndex": i, "delta": delta}))
            out.append(event("contentBlockStop", {"contentBlockIndex": i}))
        out.append(event("messageStop", {"stopReason": self._stop_reason()}))
        out.append(event("metadata", {"usage": self._usage(), "metrics": {"latencyMs": 12}}))
        return out

    def error_event(self, fault: Fault) -> bytes:
        return exception(fault.error_type or "throttlingException", fault.message)

    @staticmethod
    def throttling_event(message: str = "Too many requests") -> bytes:
        """An in-stream exception event (for custom scripts)."""
        return exception("throttlingException", message)
