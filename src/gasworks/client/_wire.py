"""What the sync and async clients share: request bodies, response parsing, error mapping."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from gasworks import errors
from gasworks.modeltypes import (
    ChatResult,
    EmbedResult,
    FinishReason,
    Message,
    StreamChunk,
    Usage,
    decode_base64_floats,
)

MessagesArg = str | list[Message] | list[dict[str, Any]]


def _error_classes() -> dict[str, type[errors.GasworksError]]:
    out: dict[str, type[errors.GasworksError]] = {}
    stack: list[type[errors.GasworksError]] = [errors.GasworksError]
    while stack:
        cls = stack.pop()
        out.setdefault(cls.code, cls)
        stack.extend(cls.__subclasses__())
    return out


_BY_CODE = _error_classes()


#: the classes an error code this process does not know is raised as, by HTTP status
_BY_STATUS: dict[int, type[errors.GasworksError]] = {
    400: errors.BadRequest,
    401: errors.Unauthenticated,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.Conflict,
    422: errors.ValidationFailed,
}


def _unknown_class(code: str, status: int) -> type[errors.GasworksError]:
    """A code whose class is not loaded here (a domain's own, say ``JOB_NOT_FOUND``) keeps
    its code and status: a subclass of the status's class (``NotFound`` for a 404)."""
    if not code:
        return errors.GasworksError
    base = _BY_STATUS.get(status, errors.GasworksError)
    return type(base.__name__, (base,), {"code": code, "status": status})


def to_error(status: int, payload: Any) -> errors.GasworksError:
    """A server error answer (either error shape) as the matching gasworks exception."""
    err = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(err, dict):
        return errors.GasworksError(f"gasworks answered HTTP {status}", details={"status": status})
    code = str(err.get("code") or "")
    message = str(err.get("message") or f"HTTP {status}")
    details = err.get("details")
    if not isinstance(details, dict):
        details = {k: err[k] for k in ("param", "type") if err.get(k) is not None}
    cls = _BY_CODE.get(code) or _unknown_class(code, status)
    exc = cls(message, details=details)
    if err.get("requestId"):
        exc.details.setdefault("requestId", err["requestId"])
    return exc


def messages_payload(messages: MessagesArg, system: str | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if system:
        out.append({"role": "system", "content": system})
    if isinstance(messages, str):
        out.append({"role": "user", "content": messages})
        return out
    for m in messages:
        if isinstance(m, Message):
            d: dict[str, Any] = {"role": m.role, "content": m.content}
            if m.name:
                d["name"] = m.name
            if m.tool_call_id:
                d["tool_call_id"] = m.tool_call_id
            if m.tool_calls:
                d["tool_calls"] = m.tool_calls
            out.append(d)
        else:
            out.append(dict(m))
    return out


def chat_body(
    messages: MessagesArg,
    model: str | None,
    system: str | None,
    stream: bool,
    params: dict[str, Any],
) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": messages_payload(messages, system), "stream": stream}
    if model:
        body["model"] = model
    if stream:
        body["stream_options"] = {"include_usage": True}
    for k, v in params.items():
        if v is not None:
            body[k] = str(v) if isinstance(v, Decimal) else v
    return body


def _usage(u: dict[str, Any] | None, estimated: bool) -> Usage:
    u = u or {}
    details = u.get("prompt_tokens_details") or {}
    return Usage(
        input_tokens=int(u.get("prompt_tokens", 0)),
        output_tokens=int(u.get("completion_tokens", 0)),
        cached_input_tokens=int(details.get("cached_tokens", 0) or 0),
        estimated=estimated,
    )


_META_KEYS = frozenset({"provider", "cost", "usageEstimated", "demo"})


def _notes(meta: dict[str, Any]) -> dict[str, Any]:
    """What the gateway did on the way (fallbacks, truncation, estimate)."""
    return {
        k: v for k, v in meta.items() if k not in ("provider", "cost", "usageEstimated", "demo")
    }


def parse_completion(data: dict[str, Any]) -> ChatResult:
    choice = data["choices"][0]
    meta = data.get("gasworks") or {}
    notes = _notes(meta)
    return ChatResult(
        text=choice["message"].get("content") or "",
        finish_reason=FinishReason(choice.get("finish_reason") or "stop"),
        usage=_usage(data.get("usage"), bool(meta.get("usageEstimated"))),
        model=data.get("model", ""),
        provider=meta.get("provider") or "",
        tool_calls=choice["message"].get("tool_calls"),
        cost=Decimal(meta["cost"]) if meta.get("cost") is not None else Decimal(0),
        demo=bool(meta.get("demo")),
        notes=notes,
    )


def embed_body(
    inputs: str | Sequence[str], model: str | None, dimensions: int | None, purpose: str
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "input": [inputs] if isinstance(inputs, str) else list(inputs),
        "encoding_format": "base64",  # 4 bytes a float instead of ~20 characters
        "purpose": purpose,
    }
    if model is not None:
        body["model"] = model
    if dimensions is not None:
        body["dimensions"] = dimensions
    return body


def parse_embeddings(data: dict[str, Any]) -> EmbedResult:
    meta = data.get("gasworks") or {}
    items = sorted(data["data"], key=lambda d: int(d["index"]))
    vectors = [
        decode_base64_floats(e) if isinstance(e, str) else [float(x) for x in e]
        for e in (d["embedding"] for d in items)
    ]
    return EmbedResult(
        model=data.get("model", ""),
        provider=meta.get("provider") or "",
        vectors=vectors,
        dimensions=int(meta.get("dimensions") or (len(vectors[0]) if vectors else 0)),
        input_tokens=int((data.get("usage") or {}).get("prompt_tokens") or 0),
        cost=Decimal(meta["cost"]) if meta.get("cost") is not None else Decimal(0),
    )


class SSEDecoder:
    """Turns the lines of a /v1/chat/completions stream into ``StreamChunk``s."""

    def __init__(self) -> None:
        self._finish: StreamChunk | None = None
        self.done = False

    def line(self, line: str) -> list[StreamChunk]:
        if not line.startswith("data: "):
            return []
        data = line[6:]
        if data == "[DONE]":
            self.done = True
            return [self._finish] if self._finish is not None else []
        event = json.loads(data)
        if "error" in event and "choices" not in event:
            raise to_error(200, event)
        out: list[StreamChunk] = []
        if event.get("usage") is not None:
            meta = event.get("gasworks") or {}
            final = self._finish or StreamChunk(finish_reason=FinishReason.STOP)
            final.usage = _usage(event["usage"], bool(meta.get("usageEstimated")))
            final.model = event.get("model")
            final.cost = Decimal(meta["cost"]) if meta.get("cost") is not None else None
            final.notes = _notes(meta) or None
            self._finish = None
            out.append(final)
        for choice in event.get("choices") or []:
            delta = choice.get("delta") or {}
            text, calls = delta.get("content") or "", delta.get("tool_calls")
            if text or calls:
                out.append(StreamChunk(delta=text, tool_calls=calls))
            if choice.get("finish_reason"):
                self._finish = StreamChunk(
                    finish_reason=FinishReason(choice["finish_reason"]), model=event.get("model")
                )
        return out


#: one server-sent event whose data is JSON: ``(id, event, data)``
ServerEvent = tuple[int, str, Any]


class SSEEvents:
    """Turns the lines of a server-sent event stream (``id``/``event``/``data``, a blank line
    ends an event) into ``ServerEvent``s; ``event`` is ``message`` when the server named none."""

    def __init__(self) -> None:
        self._fields: dict[str, str] = {}

    def line(self, line: str) -> ServerEvent | None:
        if line:
            field, _, value = line.partition(":")
            self._fields[field] = value.removeprefix(" ")
            return None
        fields, self._fields = self._fields, {}
        if "data" not in fields:
            return None
        data = json.loads(fields["data"])
        return int(fields.get("id") or 0), fields.get("event", "message"), data
