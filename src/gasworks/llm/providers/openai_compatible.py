"""Any server speaking the OpenAI Chat Completions protocol: vLLM, Ollama, LM Studio,
llama.cpp server, LocalAI, corporate proxies.

Spoken directly over one pooled ``aiohttp.ClientSession`` per event loop, not through the
``openai`` SDK: such servers need no extra installed, and the SDK's request building and
response models cost about 0.6 ms per call. aiohttp rather than httpx: on this path httpx
spends ~0.8 ms of CPU per call, aiohttp ~0.2 ms (``bench/results/gateway.md``), which was
most of the gateway's own share of the added latency. The wire format is small and stable:
a JSON body in, a JSON completion or ``data:`` SSE events out. Errors are classified with
the same rules as the SDK-based adapters. The key is optional (local servers ignore it) and
the answer length goes in ``max_tokens``, which these servers understand. Proxy environment
variables (``HTTPS_PROXY``, ``NO_PROXY``...) are honoured, as httpx and the SDKs do.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp.client_exceptions import SocketTimeoutError

from gasworks.errors import GasworksError
from gasworks.llm.providers.base import (
    DEFAULT_KEEPALIVE_SECONDS,
    CallErrors,
    EventLines,
    PayloadErrors,
    classify_sdk_error,
    classify_status,
)
from gasworks.llm.providers.chat_completions import (
    StreamParser,
    parse_completion,
    request_params,
)
from gasworks.llm.registry.resolved import ResolvedModel
from gasworks.modeltypes import ChatRequest, ChatResult, StreamChunk


class OpenAICompatibleProvider:
    name = "openai_compatible"

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str,
        keepalive: float = DEFAULT_KEEPALIVE_SECONDS,
    ) -> None:
        self._keepalive = keepalive
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._proxy = _env_proxy(self._url)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._call = CallErrors(self._translate)
        self._stream_call = CallErrors(self._translate, streaming=True)
        self._payload = PayloadErrors(self.name)

    def _translate(self, exc: BaseException, streaming: bool) -> GasworksError | None:
        return classify_sdk_error(self.name, None, exc, streaming=streaming)

    def _client(self) -> aiohttp.ClientSession:
        """The session of the running event loop (sessions cannot cross loops)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=self._keepalive),
                headers=self._headers,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self._loop = loop
        return self._session

    def _post(self, params: dict[str, Any], attempt_timeout: float, *, per_read: bool) -> Any:
        # like httpx's timeout: each connect and each read may take attempt_timeout (a stream
        # watches its reads itself: see _StallWatch)
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=attempt_timeout,
            sock_read=attempt_timeout if per_read else None,
        )
        return self._client().post(
            self._url, data=json.dumps(params), timeout=timeout, proxy=self._proxy
        )

    async def _error(self, r: aiohttp.ClientResponse) -> GasworksError:
        raw = await r.read()
        message = ""
        try:
            body = json.loads(raw)
            err = body.get("error", body) if isinstance(body, dict) else {}
            message = str(err.get("message", "") if isinstance(err, dict) else err)[:500]
        except ValueError:
            message = raw[:200].decode(errors="replace")
        return classify_status(self.name, r.status, message, r.headers)

    async def chat(
        self, model: ResolvedModel, req: ChatRequest, attempt_timeout: float
    ) -> ChatResult:
        params = request_params(model, req, "max_tokens")
        with self._call:
            async with self._post(params, attempt_timeout, per_read=True) as r:
                if r.status >= 400:
                    raise await self._error(r)
                data = json.loads(await r.read())
        with self._payload:
            return parse_completion(self.name, model, req, data)

    async def stream(
        self, model: ResolvedModel, req: ChatRequest, attempt_timeout: float
    ) -> AsyncIterator[StreamChunk]:
        params = request_params(model, req, "max_tokens")
        params["stream"] = True
        params["stream_options"] = {"include_usage": True}
        parser = StreamParser(self.name)
        # the transport and our line splitting inside the boundary; each event read as a
        # payload (not JSON, or not in the documented shape: a bad response)
        with self._stream_call:
            async with asyncio.timeout(attempt_timeout) as head:  # until the answer's head
                async with self._post(params, attempt_timeout, per_read=False) as r:
                    head.reschedule(None)
                    if r.status >= 400:
                        raise await self._error(r)
                    body = r.content
                    watch = _StallWatch(body, attempt_timeout)
                    try:
                        lines, piece = EventLines(), b"-"
                        # read on past [DONE] to the end: the connection then goes back to
                        # the pool; at the end, what is left in the buffer is the last line
                        while piece:
                            watch.since = watch.loop.time()
                            piece = await body.readany()
                            watch.since = None
                            for data in lines.feed(piece):
                                with self._payload:
                                    chunk = parser.feed(json.loads(data))
                                if chunk is not None:
                                    yield chunk
                    finally:
                        watch.close()
        yield parser.last(model, req)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed and self._loop is _running_loop():
            await session.close()


class _StallWatch:
    """The per-read timeout of a stream, for one timer per stream instead of one per read.

    aiohttp's ``sock_read`` cancels and re-arms a timer on every read: one timer handle per
    stream event. Here the reader only notes when it started waiting (``since``; ``None`` while
    it is not waiting), and one timer checks that note every ``seconds``: when a read has
    waited ``seconds``, the body gets aiohttp's own read-timeout error. A read that is not
    waiting (the gateway is busy sending to a slow client) never times out.
    """

    __slots__ = ("body", "handle", "loop", "seconds", "since")

    def __init__(self, body: aiohttp.StreamReader, seconds: float) -> None:
        self.body = body
        self.seconds = seconds
        self.loop = asyncio.get_running_loop()
        self.since: float | None = None
        self.handle = self.loop.call_later(seconds, self._check)

    def _check(self) -> None:
        now, since = self.loop.time(), self.since
        if since is not None and now - since >= self.seconds:
            self.body.set_exception(SocketTimeoutError("Timeout on reading data from socket"))
            return
        due = since + self.seconds if since is not None else now + self.seconds
        self.handle = self.loop.call_at(due, self._check)

    def close(self) -> None:
        self.handle.cancel()


def _env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (resolved once, not per request)."""
    host = url.split("://", 1)[-1].split("/", 1)[0]
    if urllib.request.proxy_bypass(host):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(url.split("://", 1)[0])


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
