"""Embeddings from any server speaking OpenAI's ``/v1/embeddings``: vLLM, Ollama, Hugging Face
Text Embeddings Inference (TEI), LocalAI, LM Studio.

Spoken over the aiohttp session of the ``openai_compatible`` chat adapter for the same endpoint
(no SDK needed). Vectors are asked as JSON floats (``encoding_format`` left out: several of
these servers do not implement base64) and L2-normalised here when the registry entry says
``normalized`` (servers differ; TEI normalises by default, Ollama does not for every model).
``dimensions`` is sent only when a reduced size is asked (Matryoshka models on vLLM / TEI).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from gasworks.llm.providers.embeddings import (
    EmbedVectors,
    l2_normalize,
    openai_params,
    parse_openai_embeddings,
)
from gasworks.llm.providers.openai_compatible import OpenAICompatibleProvider
from gasworks.llm.registry.resolved import ResolvedModel
from gasworks.modeltypes import EmbedPurpose


class OpenAICompatibleEmbeddings:
    name = "openai_compatible"

    def __init__(self, chat: OpenAICompatibleProvider) -> None:
        self.chat = chat
        self._url = chat._url.removesuffix("/chat/completions") + "/embeddings"

    def count_tokens(self, model: ResolvedModel, inputs: Sequence[str]) -> list[int] | None:
        return None

    async def embed(
        self,
        model: ResolvedModel,
        inputs: list[str],
        dimensions: int | None,
        purpose: EmbedPurpose,
        attempt_timeout: float,
    ) -> EmbedVectors:
        import aiohttp

        params = openai_params(model, inputs, dimensions, None)
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=attempt_timeout, sock_read=attempt_timeout
        )
        chat = self.chat
        with chat._call:  # the chat adapter's error boundary: the transport call only
            async with chat._client().post(
                self._url, data=json.dumps(params), timeout=timeout, proxy=chat._proxy
            ) as r:
                if r.status >= 400:
                    raise await chat._error(r)
                data = json.loads(await r.read())
        out = parse_openai_embeddings(self.name, data, len(inputs))
        spec = model.entry.embedding
        if spec is not None and spec.normalized:
            out.vectors = l2_normalize(out.vectors)
        return out

    async def aclose(self) -> None:
        return None  # the session belongs to the chat adapter, closed with it
