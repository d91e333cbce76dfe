"""AWS Bedrock through boto3's ``bedrock-runtime`` Converse / ConverseStream APIs.

boto3 is synchronous. Calls run in a dedicated thread pool (``asyncio`` loop stays free): one
``converse`` call per attempt, and for streams one blocking ``next()`` per event. We chose
this over aiobotocore because aiobotocore pins exact botocore versions (conflicting with the
boto3 the rest of a deployment uses) and lags new Bedrock features; the thread hop costs tens
of microseconds against network latencies of hundreds of milliseconds.

botocore's own retries are off (``total_max_attempts=1``): the gateway retries. Timeouts are
set per model (one client per timeout value). Inference-profile ids (``us.anthropic.…``) are
sent as they were asked. Errors are classified from the AWS error code.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gasworks.errors import (
    ContentFiltered,
    GasworksError,
    MissingDependency,
    ProviderAuthFailed,
    ProviderBadRequest,
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderStreamInterrupted,
    ProviderTimeout,
    ProviderUnavailable,
)
from gasworks.llm.credentials import Credentials
from gasworks.llm.providers.base import (
    CallErrors,
    PayloadErrors,
    bad_response,
    parse_retry_after,
)
from gasworks.llm.registry.resolved import ResolvedModel
from gasworks.modeltypes import ChatRequest, ChatResult, FinishReason, Message, StreamChunk, Usage

try:
    import boto3
    import botocore.config
    import botocore.eventstream as beventstream
    import botocore.exceptions as bexc
    import botocore.parsers as bparsers
    import urllib3.exceptions as u3exc
except ImportError:  # pragma: no cover - exercised only without the extra
    boto3 = None  # type: ignore[assignment]

#: concurrent Bedrock calls / stream reads per process
MAX_CONCURRENCY = 64
_END = object()

_FINISH = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "guardrail_intervened": FinishReason.CONTENT_FILTER,
    "content_filtered": FinishReason.CONTENT_FILTER,
}
_RETRYABLE_CODES = {
    "InternalServerException": ProviderUnavailable,
    "ServiceUnavailableException": ProviderUnavailable,
    "ModelNotReadyException": ProviderUnavailable,
    "ModelStreamErrorException": ProviderStreamInterrupted,
    "ModelTimeoutException": ProviderTimeout,
    "ThrottlingException": ProviderRateLimited,
    "ServiceQuotaExceededException": ProviderRateLimited,
}
_AUTH_CODES = {
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
}


def classify(exc: BaseException, *, streaming: bool = False) -> GasworksError | None:
    """An error of boto3 / botocore / urllib3 as a gasworks error; None if not theirs."""
    if isinstance(exc, GasworksError):
        return exc
    details: dict[str, Any] = {"provider": "bedrock"}
    if isinstance(exc, bexc.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        message = str(err.get("Message", ""))[:500]
        meta = exc.response.get("ResponseMetadata", {})
        status = int(meta.get("HTTPStatusCode", 0) or 0)
        details.update(awsCode=code, providerStatus=status)
        text = f"bedrock {code or status}: {message}"
        # an exception *event* of a stream names its type as the event-stream member
        # (``throttlingException``), an HTTP error as the shape (``ThrottlingException``)
        shape = code[:1].upper() + code[1:]
        cls = _RETRYABLE_CODES.get(shape)
        if cls is not None:
            return cls(
                text, details=details, retry_after=parse_retry_after(meta.get("HTTPHeaders"))
            )
        if shape in _AUTH_CODES or status in (401, 403):
            return ProviderAuthFailed(
                f"bedrock refused the deployment's AWS credentials ({code}).", details=details
            )
        if status >= 500:
            return ProviderUnavailable(text, details=details)
        if status == 429:
            return ProviderRateLimited(text, details=details)
        if "content filter" in message.lower() or "guardrail" in message.lower():
            return ContentFiltered(text, details=details)
        return ProviderBadRequest(text, details=details)
    if isinstance(exc, bexc.ReadTimeoutError | bexc.ConnectTimeoutError | u3exc.ReadTimeoutError):
        return ProviderTimeout("bedrock did not answer in time.", details=details)
    if isinstance(exc, bexc.NoCredentialsError | bexc.PartialCredentialsError):
        return ProviderAuthFailed(
            "No AWS credentials for bedrock: set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY "
            "(environment or GASWORKS_SECRETS_FILE), a profile or an instance role.",
            details=details,
        )
    if isinstance(
        exc, bexc.ResponseStreamingError | bexc.ConnectionClosedError | u3exc.ProtocolError
    ):
        cls2 = ProviderStreamInterrupted if streaming else ProviderUnavailable
        return cls2(f"The connection to bedrock broke ({type(exc).__name__}).", details=details)
    if isinstance(exc, bexc.EndpointConnectionError | bexc.ConnectionError):
        return ProviderUnavailable(f"Cannot reach bedrock ({type(exc).__name__}).", details=details)
    if isinstance(
        exc,
        bparsers.ResponseParserError
        | beventstream.ParserError
        | json.JSONDecodeError
        | UnicodeDecodeError,
    ):
        return bad_response("bedrock", exc)
    if isinstance(exc, bexc.BotoCoreError):
        return ProviderError(f"bedrock failed ({type(exc).__name__}).", details=details)
    return None


def _translate(exc: BaseException, streaming: bool) -> GasworksError | None:
    return classify(exc, streaming=streaming)


CALL_ERRORS = CallErrors(_translate)
STREAM_CALL_ERRORS = CallErrors(_translate, streaming=True)
PAYLOAD_ERRORS = PayloadErrors("bedrock")


def _content(m: Message) -> list[dict[str, Any]]:
    if isinstance(m.content, str):
        return [{"text": m.content}] if m.content else []
    out: list[dict[str, Any]] = []
    for part in m.content:
        if part.get("type") == "text":
            out.append({"text": part.get("text", "")})
        elif part.get("type") == "image_url":
            url = str((part.get("image_url") or {}).get("url", ""))
            if not url.startswith("data:"):
                raise ProviderBadRequest(
                    "Bedrock takes images inline only (data: URLs).",
                    details={"provider": "bedrock", "param": "messages"},
                )
            header, _, data = url.partition(",")
            fmt = header[5:].split(";")[0].removeprefix("image/") or "png"
            out.append({"image": {"format": fmt, "source": {"bytes": base64.b64decode(data)}}})
    return out


def to_converse(messages: list[Message]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI-style messages as Converse ``system`` and ``messages``."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            system.append({"text": m.text()})
            continue
        if m.role == "tool":
            block = {"toolResult": {"toolUseId": m.tool_call_id, "content": [{"text": m.text()}]}}
            role, content = "user", [block]
        elif m.role == "assistant" and m.tool_calls:
            role, content = "assistant", _content(m)
            for call in m.tool_calls:
                fn = call.get("function", {})
                args = fn.get("arguments") or "{}"
                content.append(
                    {
                        "toolUse": {
                            "toolUseId": call.get("id"),
                            "name": fn.get("name"),
                            "input": json.loads(args) if isinstance(args, str) else args,
                        }
                    }
                )
        else:
            role, content = m.role, _content(m)
        if out and out[-1]["role"] == role:  # Converse wants alternating roles
            out[-1]["content"].extend(content)
        else:
            out.append({"role": role, "content": content})
    return system, out


def _tool_config(req: ChatRequest) -> dict[str, Any] | None:
    if not req.tools:
        return None
    tools = []
    for t in req.tools:
        fn = t.get("function", t)
        spec: dict[str, Any] = {
            "name": fn["name"],
            "inputSchema": {"json": fn.get("parameters") or {"type": "object"}},
        }
        if fn.get("description"):
            spec["description"] = fn["description"]
        tools.append({"toolSpec": spec})
    cfg: dict[str, Any] = {"tools": tools}
    choice = req.tool_choice
    if choice == "auto":
        cfg["toolChoice"] = {"auto": {}}
    elif choice == "required":
        cfg["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict) and (choice.get("function") or {}).get("name"):
        cfg["toolChoice"] = {"tool": {"name": choice["function"]["name"]}}
    return cfg


def _usage(u: dict[str, Any] | None) -> Usage | None:
    if not u:
        return None
    cached = int(u.get("cacheReadInputTokens", 0) or 0)
    written = int(u.get("cacheWriteInputTokens", 0) or 0)
    return Usage(
        input_tokens=int(u.get("inputTokens", 0)) + cached + written,
        output_tokens=int(u.get("outputTokens", 0)),
        cached_input_tokens=cached,
        cache_write_input_tokens=written,
    )


class _ConverseEvents:
    """Reads ConverseStream events, one at a time, into ``StreamChunk`` s."""

    __slots__ = ("finish", "tool_index", "usage")

    def __init__(self) -> None:
        self.finish: FinishReason | None = None
        self.usage: Usage | None = None
        self.tool_index: dict[int, int] = {}

    def feed(self, ev: dict[str, Any]) -> StreamChunk | None:
        """The chunk an event carries (text or a tool call piece), or None."""
        if "contentBlockDelta" in ev:
            d = ev["contentBlockDelta"]
            delta = d.get("delta", {})
            if "text" in delta:
                return StreamChunk(delta=delta["text"])
            if "toolUse" in delta and d.get("contentBlockIndex") in self.tool_index:
                call = {
                    "index": self.tool_index[d["contentBlockIndex"]],
                    "function": {"arguments": delta["toolUse"].get("input", "")},
                }
                return StreamChunk(tool_calls=[call])
        elif "contentBlockStart" in ev:
            s = ev["contentBlockStart"]
            tool = s.get("start", {}).get("toolUse")
            if tool:
                idx = s.get("contentBlockIndex", len(self.tool_index))
                self.tool_index[idx] = len(self.tool_index)
                call = {
                    "index": self.tool_index[idx],
                    "id": tool["toolUseId"],
                    "type": "function",
                    "function": {"name": tool["name"], "arguments": ""},
                }
                return StreamChunk(tool_calls=[call])
        elif "messageStop" in ev:
            reason = ev["messageStop"].get("stopReason", "end_turn")
            self.finish = _FINISH.get(reason, FinishReason.STOP)
        elif "metadata" in ev:
            self.usage = _usage(ev["metadata"].get("usage"))
        return None


class BedrockProvider:
    name = "bedrock"

    def __init__(
        self, *, region: str | None, endpoint_url: str | None, credentials: Credentials
    ) -> None:
        if boto3 is None:
            raise MissingDependency.package("The Bedrock provider", "boto3", "bedrock")
        self.endpoint_url = endpoint_url
        self._session = boto3.session.Session(
            aws_access_key_id=credentials.value("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=credentials.value("AWS_SECRET_ACCESS_KEY"),
            aws_session_token=credentials.value("AWS_SESSION_TOKEN"),
            region_name=region or credentials.value("AWS_REGION") or "us-east-1",
        )
        self._clients: dict[float, Any] = {}
        self._pool = ThreadPoolExecutor(MAX_CONCURRENCY, thread_name_prefix="bedrock")

    def _client(self, timeout: float) -> Any:
        client = self._clients.get(timeout)
        if client is None:
            config = botocore.config.Config(
                read_timeout=timeout,
                connect_timeout=min(timeout, 10.0),
                retries={"total_max_attempts": 1, "mode": "standard"},
                max_pool_connections=MAX_CONCURRENCY,
            )
            client = self._session.client(
                "bedrock-runtime", endpoint_url=self.endpoint_url, config=config
            )
            self._clients[timeout] = client
        return client

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    @staticmethod
    def _params(model: ResolvedModel, req: ChatRequest) -> dict[str, Any]:
        system, messages = to_converse(req.messages)
        p: dict[str, Any] = {"modelId": model.provider_model_id, "messages": messages}
        if system:
            p["system"] = system
        inference: dict[str, Any] = {}
        if req.max_tokens is not None:
            inference["maxTokens"] = req.max_tokens
        if req.temperature is not None:
            inference["temperature"] = req.temperature
        if req.top_p is not None:
            inference["topP"] = req.top_p
        if req.stop:
            inference["stopSequences"] = req.stop
        if inference:
            p["inferenceConfig"] = inference
        tools = _tool_config(req)
        if tools:
            p["toolConfig"] = tools
        if req.extra.get("additionalModelRequestFields"):
            p["additionalModelRequestFields"] = req.extra["additionalModelRequestFields"]
        return p

    async def chat(
        self, model: ResolvedModel, req: ChatRequest, attempt_timeout: float
    ) -> ChatResult:
        params = self._params(model, req)
        with CALL_ERRORS:
            client = self._client(attempt_timeout)
            resp = await self._run(client.converse, **params)
        with PAYLOAD_ERRORS:
            blocks = resp["output"]["message"]["content"]
            texts = [b["text"] for b in blocks if "text" in b]
            calls = [
                {
                    "id": b["toolUse"]["toolUseId"],
                    "type": "function",
                    "function": {
                        "name": b["toolUse"]["name"],
                        "arguments": json.dumps(b["toolUse"].get("input", {})),
                    },
                }
                for b in blocks
                if "toolUse" in b
            ]
            usage = _usage(resp.get("usage"))
            finish = _FINISH.get(resp.get("stopReason", "end_turn"), FinishReason.STOP)
        if usage is None:
            raise ProviderBadResponse(
                "bedrock answered without usage.", details={"model": model.id}
            )
        return ChatResult(
            text="".join(texts),
            finish_reason=finish,
            usage=usage,
            model=model.id,
            provider=self.name,
            tool_calls=calls or None,
        )

    async def stream(
        self, model: ResolvedModel, req: ChatRequest, attempt_timeout: float
    ) -> AsyncIterator[StreamChunk]:
        params = self._params(model, req)
        reader = _ConverseEvents()
        with STREAM_CALL_ERRORS:
            client = self._client(attempt_timeout)
            resp = await self._run(client.converse_stream, **params)
        events = resp["stream"]
        try:
            it = iter(events)
            while True:
                with STREAM_CALL_ERRORS:
                    ev = await self._run(next, it, _END)
                if ev is _END:
                    break
                with PAYLOAD_ERRORS:
                    chunk = reader.feed(ev)
                if chunk is not None:
                    yield chunk
        finally:
            events.close()
        if reader.finish is None or reader.usage is None:
            raise ProviderStreamInterrupted(
                "bedrock ended the stream before messageStop / metadata.",
                details={"provider": self.name, "model": model.id},
            )
        yield StreamChunk(finish_reason=reader.finish, usage=reader.usage)

    async def aclose(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
