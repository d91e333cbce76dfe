"""The one interface every provider adapter implements, and the shared error classifier.

An adapter turns a ``ChatRequest`` into its vendor's wire call and the answer back into a
``ChatResult`` / ``StreamChunk`` stream. Every SDK error is translated into the gasworks
provider error family *inside* the adapter, so nothing above it ever sees a vendor exception.
Adapters never retry (the SDKs' own retries are switched off): the gateway owns retries,
fallbacks and accounting.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any, Protocol

import httpx

from gasworks.errors import (
    CapabilityNotSupported,
    ContentFiltered,
    GasworksError,
    ProviderAuthFailed,
    ProviderBadRequest,
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderStreamInterrupted,
    ProviderTimeout,
    ProviderUnavailable,
)
from gasworks.llm.registry.resolved import ResolvedModel
from gasworks.modelcard import ModelKind
from gasworks.modeltypes import ChatRequest, ChatResult, StreamChunk


class Provider(Protocol):
    """A model vendor's wire protocol. ``attempt_timeout`` is seconds for this one attempt."""

    name: str

    async def chat(
        self, model: ResolvedModel, req: ChatRequest, attempt_timeout: float
    ) -> ChatResult:
        """One complete answer. ``cost`` is left at zero: the gateway prices usage."""
        ...

    def stream(
        self, model: ResolvedModel, req: ChatRequest, attempt_timeout: float
    ) -> AsyncIterator[StreamChunk]:
        """Chunks of the answer; the last one has ``finish_reason`` and ``usage``.

        Must raise ``ProviderStreamInterrupted`` when the vendor's stream ends before its end
        marker, and report estimated usage (``Usage.estimated``) when the vendor gave none.
        """
        ...

    async def aclose(self) -> None: ...


#: providers whose wire protocol returns token log probabilities (Chat Completions)
_LOGPROBS_PROVIDERS = frozenset({"openai", "openai_compatible"})


def check_capabilities(model: ResolvedModel, req: ChatRequest, *, streaming: bool) -> None:
    """Refuse, before any network call, parameters the model cannot honour."""
    caps = model.entry.capabilities
    problems: list[tuple[str, str]] = []
    if model.entry.kind is not ModelKind.CHAT:
        problems.append(("model", "chat completions (it is an embedding model)"))
    if streaming and not caps.streaming:
        problems.append(("stream", "streaming"))
    if (req.tools or req.tool_choice not in (None, "none")) and not caps.function_calling:
        problems.append(("tools", "function calling"))
    json_mode = req.response_format and req.response_format.get("type") not in (None, "text")
    if json_mode and not caps.json_mode:
        problems.append(("response_format", "JSON mode"))
    wants_logprobs = req.extra.get("logprobs") or req.extra.get("top_logprobs") is not None
    if wants_logprobs and model.entry.provider.value not in _LOGPROBS_PROVIDERS:
        problems.append(("logprobs", "logprobs (its provider returns none)"))
    if not caps.multimodal_input:
        for m in req.messages:
            if isinstance(m.content, list) and any(p.get("type") != "text" for p in m.content):
                problems.append(("messages", "multimodal input"))
                break
    if problems:
        param, what = problems[0]
        raise CapabilityNotSupported(
            f"Model '{model.id}' does not support {what}.",
            details={"model": model.id, "param": param, "capability": what},
        )


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from ``Retry-After`` (seconds or HTTP date) or ``retry-after-ms``."""
    if not headers:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


_FILTER_WORDS = ("content filter", "content_filter", "content management policy", "safety")


def classify_status(
    provider: str,
    status: int,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> ProviderError:
    """A vendor HTTP status (and message) as a gasworks provider error."""
    details = {"provider": provider, "providerStatus": status}
    text = f"{provider} answered {status}: {message}" if message else f"{provider}: {status}"
    if status == 429:
        return ProviderRateLimited(text, details=details, retry_after=parse_retry_after(headers))
    if status in (401, 403):
        return ProviderAuthFailed(
            f"{provider} refused the deployment's credentials ({status}); check its API key.",
            details=details,
        )
    if status == 408 or status >= 500:
        return ProviderUnavailable(text, details=details, retry_after=parse_retry_after(headers))
    lowered = message.lower()
    if any(w in lowered for w in _FILTER_WORDS):
        return ContentFiltered(text, details=details)
    return ProviderBadRequest(text, details=details)


def _http_error_classes() -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]]:
    """Timeout and transport error classes of httpx, of httpx2 and of aiohttp (the
    ``openai_compatible`` adapter; its timeouts are ``TimeoutError``).

    httpx2 is not speculative: the anthropic SDK's aiohttp transport (``DefaultAioHttpClient``,
    vendored ``httpx_aiohttp``) raises ``httpx2`` errors for a cut stream
    (tests/llm/test_provider_anthropic.py ``test_stream_cut_mid_answer`` fails without them).
    """
    import aiohttp

    timeouts: list[type[Exception]] = [httpx.TimeoutException, TimeoutError]
    transports: list[type[Exception]] = [httpx.TransportError, aiohttp.ClientError]
    try:
        import httpx2  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        pass
    else:
        timeouts.append(httpx2.TimeoutException)
        transports.append(httpx2.TransportError)
    return tuple(timeouts), tuple(transports)


_HTTP_TIMEOUTS, _HTTP_TRANSPORT = _http_error_classes()

#: what a transport raises when the bytes it received do not decode (JSON, UTF-8)
_UNDECODABLE = (json.JSONDecodeError, UnicodeDecodeError)
#: what reading a decoded payload raises when it is not in the documented shape
_MALFORMED = (KeyError, IndexError, TypeError, ValueError, AttributeError)

#: translates an exception raised by an SDK / transport call, or None: not one of theirs
Translate = Callable[[BaseException, bool], GasworksError | None]


class CallErrors:
    """The error boundary around one SDK / transport call (``with boundary: ...``).

    Like httpx's ``map_httpcore_exceptions`` and pydantic-ai's ``_map_api_errors``: only the
    code inside the ``with`` is translated, and only exceptions ``translate`` recognises
    (the SDK's, the transport's, undecodable bytes); anything else, a bug of ours included,
    propagates unchanged and surfaces as ``INTERNAL`` (not retried, not counted against the
    provider's breaker). Stateless: an adapter builds one per mode and reuses it.
    """

    __slots__ = ("streaming", "translate")

    def __init__(self, translate: Translate, *, streaming: bool = False) -> None:
        self.translate = translate
        self.streaming = streaming

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None or isinstance(exc, GasworksError) or not isinstance(exc, Exception):
            return
        mapped = self.translate(exc, self.streaming)
        if mapped is not None:
            raise mapped from exc


class PayloadErrors:
    """The boundary around reading one decoded vendor payload (an answer or a stream event).

    The readers index the vendor's JSON as documented (``data["choices"][0]``); when the
    payload is not in that shape the lookup fails, and that failure, inside this ``with``
    only, is the provider's: ``ProviderBadResponse``. Request building and our own state
    stay outside it.
    """

    __slots__ = ("provider",)

    def __init__(self, provider: str) -> None:
        self.provider = provider

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and isinstance(exc, _MALFORMED) and not isinstance(exc, GasworksError):
            raise bad_response(self.provider, exc) from exc


def bad_response(provider: str, exc: BaseException | None = None) -> ProviderBadResponse:
    """``ProviderBadResponse`` for a payload that is not in the vendor's documented shape."""
    details: dict[str, Any] = {"provider": provider}
    if exc is not None:
        details["error"] = type(exc).__name__
    return ProviderBadResponse(
        f"{provider} answered something that is not its documented format.", details=details
    )


async def mapped_events(
    stream: AsyncIterator[Any], errors: CallErrors, *, end: Any = None
) -> AsyncIterator[Any]:
    """The events of an SDK stream, each read inside ``errors`` (the reading only: what the
    caller does with an event is outside the boundary); then ``end``, if not None."""
    it = stream.__aiter__()
    while True:
        with errors:
            try:
                event = await it.__anext__()
            except StopAsyncIteration:
                break
        yield event
    if end is not None:
        yield end


#: idle upstream connections are kept this long unless the deployment says otherwise
#: (``GASWORKS_PROVIDER_KEEPALIVE_SECONDS``); the SDKs' own default is 5 s
DEFAULT_KEEPALIVE_SECONDS = 30.0


def sdk_http_client(sdk: Any, keepalive: float = DEFAULT_KEEPALIVE_SECONDS) -> dict[str, Any]:
    """``http_client=`` the SDK's own aiohttp-backed client (``DefaultAioHttpClient``), as
    keyword arguments for the SDK's client class (none when the SDK has no such client).

    The OpenAI and Anthropic SDKs speak through httpx by default; their documented aiohttp
    transport takes about 0.3 ms of CPU less per call (``bench/results/gateway.md``). SDK
    versions without it (or without their ``aiohttp`` extra) keep their default client.

    ``keepalive``: seconds an idle pooled connection is kept. The SDKs' default limits keep
    one 5 s, so a burst after a few idle seconds opened every upstream connection anew (a TLS
    handshake each against a hosted API; issue #19); the SDK's connection counts are kept.
    """
    cls = getattr(sdk, "DefaultAioHttpClient", None)
    if cls is None:
        return {}
    kwargs: dict[str, Any] = {}
    limits = getattr(sdk, "DEFAULT_CONNECTION_LIMITS", None)
    if limits is not None:
        kwargs["limits"] = type(limits)(
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=keepalive,
        )
    try:
        return {"http_client": cls(**kwargs)}
    except RuntimeError:  # the SDK says its aiohttp extra is missing
        return {}


async def sdk_post_json(
    sdk: Any, client: Any, path: str, params: dict[str, Any], attempt_timeout: float
) -> Any:
    """POST ``params`` through an OpenAI / Anthropic SDK client; the answer as plain JSON.

    The SDKs' typed methods (``chat.completions.create``, ``messages.create``) walk every
    parameter against their TypedDict annotations (0.3-0.5 ms per call here) and build a
    pydantic model per answer and per stream event, which cost more again. Our parameters are
    already plain JSON, so they go straight to the client's ``post`` with ``cast_to=object``
    (the decoded JSON back): same transport, auth headers, error classes and event-stream
    decoding (the SDK's ``AsyncStream`` still raises its error for an ``error`` event).
    ``params["stream"]`` picks a stream (``AsyncStream`` of dicts) or one answer (a dict).
    """
    stream = bool(params.get("stream"))
    return await client.post(
        path,
        body=params,
        cast_to=object,
        options={"timeout": attempt_timeout},
        stream=stream,
        stream_cls=sdk.AsyncStream[object] if stream else None,
    )


#: the SDKs' telemetry headers (language, package version, OS, architecture, runtime, async
#: library, retry count, read timeout). Left out of the ``openai`` adapter's calls: the SDK
#: computes and normalises them on every call (about 8 % of its CPU per call here), they tell
#: the vendor nothing it needs to answer, and the gateway, not the SDK, retries.
SDK_TELEMETRY_HEADERS = (
    "X-Stainless-Lang",
    "X-Stainless-Package-Version",
    "X-Stainless-OS",
    "X-Stainless-Arch",
    "X-Stainless-Runtime",
    "X-Stainless-Runtime-Version",
    "X-Stainless-Async",
    "x-stainless-retry-count",
    "x-stainless-read-timeout",
)


def sdk_lean_headers(sdk: Any) -> dict[str, Any]:
    """Per-call ``headers`` that remove ``SDK_TELEMETRY_HEADERS`` (the SDK's ``Omit``)."""
    omit = getattr(sdk, "Omit", None)
    return {} if omit is None else {h: omit() for h in SDK_TELEMETRY_HEADERS}


async def sdk_post_raw(
    client: Any,
    path: str,
    params: dict[str, Any],
    attempt_timeout: float,
    headers: dict[str, Any],
) -> Any:
    """POST ``params`` through an OpenAI / Anthropic SDK client; the SDK's HTTP response.

    Like ``sdk_post_json`` (the SDK builds the request, authenticates, sends it over its
    transport and raises its own error for a 4xx/5xx), but the answer is not wrapped: with
    ``cast_to=httpx.Response`` the SDK hands back its HTTP response as it is (the SDK's
    documented way to a raw response, for its httpx and its httpx2 clients alike). Not
    streamed (``params["stream"]`` false), the body is already read: ``json.loads(r.content)``;
    streamed, the caller reads ``r.aiter_bytes()`` and closes it: no ``AsyncAPIResponse``, no
    ``AsyncStream`` and no SDK SSE decoder per event (about a third of a stream's CPU here).
    """
    return await client.post(
        path,
        body=params,
        cast_to=httpx.Response,
        options={"timeout": attempt_timeout, "headers": headers},
        stream=bool(params.get("stream")),
    )


class EventLines:
    """The ``data:`` payloads of a server-sent event stream, from its bytes as they come.

    ``feed(piece)`` returns the payloads completed by ``piece`` (``b""``: the stream ended;
    what is left is the last line). ``[DONE]`` is dropped. The Chat Completions stream is one
    ``data:`` line per event, so the lines need no SSE event assembly.
    """

    __slots__ = ("buffer",)

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, piece: bytes) -> list[bytes]:
        if piece:
            self.buffer += piece
            if b"\n" not in piece:
                return []
            *lines, self.buffer = self.buffer.split(b"\n")
        else:
            lines, self.buffer = [self.buffer], b""
        out = []
        for line in lines:
            if line.startswith(b"data:"):
                data = line[5:].strip()
                if data != b"[DONE]":
                    out.append(data)
        return out


#: error types vendors put in an error *event* of a stream (HTTP status already 200)
_STREAM_ERROR_STATUS = {
    "overloaded_error": 529,
    "api_error": 500,
    "server_error": 500,
    "rate_limit_error": 429,
    "timeout_error": 504,
}


def stream_error_status(err_type: object, default: int) -> int:
    """The HTTP status an error *event* of a stream stands for, by its vendor ``type``."""
    return _STREAM_ERROR_STATUS.get(err_type, default) if isinstance(err_type, str) else default


def _sdk_error_message(exc: Any) -> tuple[str, str | None]:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return str(err.get("message", ""))[:500], err.get("type")
    return str(getattr(exc, "message", ""))[:500], None


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from (or during), innermost last."""
    chain = [exc]
    while len(chain) < 10:
        nxt = chain[-1].__cause__ or chain[-1].__context__
        if nxt is None:
            break
        chain.append(nxt)
    return chain


def _refused(exc: BaseException) -> bool:
    """A connection failure the SDK's aiohttp transport reports as a timeout.

    That transport maps every ``aiohttp.ClientConnectionError``, a refused connection
    included, to ``httpx.ConnectTimeout``; the aiohttp error underneath says what happened.
    """
    import aiohttp

    for e in _causes(exc):
        if isinstance(e, aiohttp.ClientError):
            return not isinstance(e, TimeoutError)
    return False


def classify_sdk_error(
    provider: str, sdk: Any, exc: BaseException, *, streaming: bool = False
) -> GasworksError | None:
    """Errors of the OpenAI / Anthropic SDKs (same exception design), httpx and aiohttp, and
    bytes that do not decode; None for anything else (not theirs: it must surface as is)."""
    if isinstance(exc, GasworksError):
        return exc
    details = {"provider": provider}
    if sdk is not None:
        if isinstance(exc, sdk.APITimeoutError) and not _refused(exc):
            return ProviderTimeout(f"{provider} did not answer in time.", details=details)
        if isinstance(exc, sdk.APIConnectionError):
            cause = type(_causes(exc)[-1]).__name__  # the OS-level reason, e.g. refused
            cls = ProviderStreamInterrupted if streaming else ProviderUnavailable
            return cls(f"Cannot reach {provider} ({cause}).", details=details)
        if isinstance(exc, sdk.APIResponseValidationError):
            return ProviderBadResponse(
                f"{provider} answered something that is not a valid response.", details=details
            )
        if isinstance(exc, sdk.APIStatusError):
            message, err_type = _sdk_error_message(exc)
            status = exc.status_code
            if status < 400:  # an error event inside a 200 stream
                status = stream_error_status(err_type, 400)
            return classify_status(provider, status, message, exc.response.headers)
        if isinstance(exc, sdk.APIError):
            message, err_type = _sdk_error_message(exc)
            status = stream_error_status(err_type, 500)
            return classify_status(provider, status, message or exc.message)
    if isinstance(exc, _HTTP_TIMEOUTS) and not _refused(exc):
        return ProviderTimeout(f"{provider} did not answer in time.", details=details)
    if isinstance(exc, _HTTP_TRANSPORT):
        cls = ProviderStreamInterrupted if streaming else ProviderUnavailable
        return cls(f"The connection to {provider} broke ({type(exc).__name__}).", details=details)
    if isinstance(exc, _UNDECODABLE):
        return bad_response(provider, exc)
    if sdk is not None and isinstance(exc, sdk_base_error(sdk)):
        return ProviderError(f"{provider} failed ({type(exc).__name__}).", details=details)
    return None


def sdk_base_error(sdk: Any) -> type[Exception]:
    """The root of an SDK's exception tree (``openai.OpenAIError``, ``AnthropicError``)."""
    root: type[Exception] = (
        getattr(sdk, "OpenAIError", None) or getattr(sdk, "AnthropicError", None) or sdk.APIError
    )
    return root
