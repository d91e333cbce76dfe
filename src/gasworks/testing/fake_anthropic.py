"""A fake Anthropic Messages server (HTTP + SSE with Anthropic's event types)."""

from __future__ import annotations

import json
from typing import Any

from gasworks.testing.server import FakeProviderServer, Fault, Request

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


class FakeAnthropic(FakeProviderServer):
    async def handle(self, req: Request, fault: Fault | None) -> None:
        if not req.path.split("?")[0].rstrip("/").endswith("/v1/messages"):
            await self.send_json(req, 404, self._error(404, "no such route"))
            return
        if fault is not None and fault.kind == "status":
            headers = {}
            if fault.retry_after is not None:
                headers["retry-after"] = str(fault.retry_after)
            err = self._error(fault.status, fault.message, fault.error_type)
            await self.send_json(req, fault.status, err, headers)
            return
        body: dict[str, Any] = req.json_body or {}
        model = str(body.get("model", "claude-fake"))
        if fault is not None and fault.kind == "malformed":
            if body.get("stream"):
                events = [b"event: message_start\ndata: {not json\n\n"]
                await self.send_events(req, events, "text/event-stream", None)
            else:
                await self.send_bytes(req, 200, b'{"id": "msg_x", "content": [', "application/json")
            return
        if body.get("stream"):
            await self.send_events(req, self._events(model), "text/event-stream", fault)
        else:
            await self.send_json(req, 200, self._message(model))

    @staticmethod
    def _error(status: int, message: str, error_type: str | None = None) -> dict[str, Any]:
        kind = error_type or _ERROR_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}

    def error_event(self, fault: Fault) -> bytes:
        err = self._error(500, fault.message, fault.error_type or "overloaded_error")
        return f"event: error\ndata: {json.dumps(err)}\n\n".encode()

    def _stop_reason(self) -> str:
        r = self.reply
        if r.finish_reason:
            return r.finish_reason
        return "tool_use" if r.tool_calls else "end_turn"

    def _usage(self) -> dict[str, Any]:
        r = self.reply
        return {
            "input_tokens": r.input_tokens - r.cached_input_tokens - r.cache_write_input_tokens,
            "output_tokens": r.output_tokens,
            "cache_read_input_tokens": r.cached_input_tokens,
            "cache_creation_input_tokens": r.cache_write_input_tokens,
        }

    def _tool_blocks(self) -> list[dict[str, Any]]:
        out = []
        for c in self.reply.tool_calls or []:
            fn = c.get("function", {})
            out.append(
                {
                    "type": "tool_use",
                    "id": c.get("id", "toolu_1"),
                    "name": fn.get("name"),
                    "input": json.loads(fn.get("arguments") or "{}"),
                }
            )
        return out

    def _message(self, model: str) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "text", "text": self.reply.text}]
        content += self._tool_blocks()
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": self._stop_reason(),
            "stop_sequence": None,
            "usage": self._usage(),
        }

    def _events(self, model: str) -> list[bytes]:
        def ev(kind: str, data: dict[str, Any]) -> bytes:
            return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()

        start = self._message(model)
        start.update(content=[], stop_reason=None)
        start["usage"] = {**self._usage(), "output_tokens": 1}
        out = [
            ev("message_start", {"message": start}),
            ev("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
            ev("ping", {}),
        ]
        for w in self.words(self.reply.text):
            delta = {"type": "text_delta", "text": w}
            out.append(ev("content_block_delta", {"index": 0, "delta": delta}))
        out.append(ev("content_block_stop", {"index": 0}))
        for i, block in enumerate(self._tool_blocks(), start=1):
            head = {**block, "input": {}}
            out.append(ev("content_block_start", {"index": i, "content_block": head}))
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            out.append(ev("content_block_delta", {"index": i, "delta": delta}))
            out.append(ev("content_block_stop", {"index": i}))
        out.append(
            ev(
                "message_delta",
                {
                    "delta": {"stop_reason": self._stop_reason(), "stop_sequence": None},
                    "usage": {"output_tokens": self.reply.output_tokens},
                },
            )
        )
        out.append(ev("message_stop", {}))
        return out
