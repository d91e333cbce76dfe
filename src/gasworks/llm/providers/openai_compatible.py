"""Any server speaking the OpenAI Chat Completions protocol: vLLM, Ollama, LM Studio,
llama.cpp server, LocalAI, corporate proxies.

Spoken directly over a pooled ``httpx.AsyncClient`` (a core dependency), not through the
``openai`` SDK: such servers need no extra installed, and the SDK's request building and
response models cost about 0.6 ms per call here (measured in ``bench/bench_gateway.py``'s
setup), which is most of the gateway's own share of the added latency. The wire format is
small and stable: a JSON body in, a JSON completion or ``data:`` SSE events out. Errors are
classified with the same rules as the SDK-based adapters. The key is optional (local servers
ignore it) and the answer length goes in ``max_tokens``, which these servers understand.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from gasworks.errors import GasworksError, ProviderBadResponse, ProviderStreamInterrupted
from gasworks.llm.estimate import estimate_prompt_tokens, estimate_tokens
from gasworks.llm.providers.base import classify_sdk_error, classify_status
from gasworks.llm.providers.chat_completions import FINISH, request_params
from gasworks.llm.registry.resolved import ResolvedModel
from gasworks.llm.types import ChatRequest, ChatResult, FinishReason, StreamChunk, Usage


def _usage(u: dict[str, Any] | None) -> Usage | None:
    if not u:
        return None
    details = u.get("prompt_tokens_details") or {}
    return Usage(
        input_tokens=int(u.get("prompt_tokens") or 0),
        output_tokens=int(u.get("completion_tokens") or 0),
        cached_input_tokens=int(details.get("cached_tokens") or 0),
    )


def _estimated(model: ResolvedModel, req: ChatRequest, text: str) -> Usage:
    ratio = model.entry.fallback_token_ratio
    return Usage(
        input_tokens=estimate_prompt_tokens(req.messages, ratio),
        output_tokens=estimate_tokens(text, ratio),
        estimated=True,
    )


class OpenAICompatibleProvider:
    name = "openai_compatible"

    def __init__(self, *, api_key: str | None, base_url: str) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )

    async def _error(self, r: httpx.Response) -> GasworksError:
        await r.aread()
        message = ""
        try:
            body = r.json()
            err = body.get("error", body) if isinstance(body, dict) else {}
            message = str(err.get("message", "") if isinstance(err, dict) else err)[:500]
        except ValueError:
            message = r.text[:200]
        return classify_status(self.name, r.status_code, message, r.headers)

    async def chat(
        self, model: ResolvedModel, req: ChatRequest, attempt_timeout: float
    ) -> ChatResult:
        params = request_params(model, req, "max_tokens")
        try:
            r = await self._http.post("chat/completions", json=params, timeout=attempt_timeout)
            if r.status_code >= 400:
                raise await self._error(r)
            data = r.json()
            choice = data["choices"][0]
            msg = choice.get("message") or {}
            text = msg.get("content") or ""
            usage = _usage(data.get("usage")) or _estimated(model, req, text)
            finish = FINISH.get(choice.get("finish_reason") or "stop", FinishReason.STOP)
        except Exception as exc:
            raise classify_sdk_error(self.name, None, exc) from exc
        return ChatResult(
            text=text,
            finish_reason=finish,
            usage=usage,
            model=model.id,
            provider=self.name,
            tool_calls=msg.get("tool_calls") or None,
        )

    async def stream(
        self, model: ResolvedModel, req: ChatRequest, attempt_timeout: float
    ) -> AsyncIterator[StreamChunk]:
        params = request_params(model, req, "max_tokens")
        params["stream"] = True
        params["stream_options"] = {"include_usage": True}
        parts: list[str] = []
        finish: FinishReason | None = None
        usage: Usage | None = None
        done = False  # [DONE] seen (some servers omit it after the finish reason)
        try:
            async with self._http.stream(
                "POST", "chat/completions", json=params, timeout=attempt_timeout
            ) as r:
                if r.status_code >= 400:
                    raise await self._error(r)
                async for line in r.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        done = True  # read on to the end: the connection goes back to the pool
                        continue
                    event = json.loads(data)
                    if "error" in event and not event.get("choices"):
                        err = event["error"]
                        message = err.get("message", "") if isinstance(err, dict) else str(err)
                        raise classify_status(self.name, 500, str(message)[:500])
                    if event.get("usage"):
                        usage = _usage(event["usage"])
                    for choice in event.get("choices") or []:
                        delta = choice.get("delta") or {}
                        text, calls = delta.get("content") or "", delta.get("tool_calls")
                        if text or calls:
                            parts.append(text)
                            yield StreamChunk(delta=text, tool_calls=calls)
                        if choice.get("finish_reason"):
                            reason = choice["finish_reason"]
                            finish = FINISH.get(reason, FinishReason.STOP)
        except GasworksError:
            raise
        except json.JSONDecodeError as exc:
            raise ProviderBadResponse(
                f"{self.name} sent a stream event that is not JSON.",
                details={"provider": self.name},
            ) from exc
        except Exception as exc:
            raise classify_sdk_error(self.name, None, exc, streaming=True) from exc
        if finish is None:
            raise ProviderStreamInterrupted(
                f"{self.name} ended the stream before its end.",
                details={"provider": self.name, "model": model.id},
            )
        del done
        usage = usage or _estimated(model, req, "".join(parts))
        yield StreamChunk(finish_reason=finish, usage=usage)

    async def aclose(self) -> None:
        await self._http.aclose()
